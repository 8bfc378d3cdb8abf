"""A reviewer's request accepted while the case is busy is applied at the top of the loop, and replays.

An update comes to a worker as a message beside the new history events. A worker that took a case over cold has
been seen to run the handler after the activity results that came with it, where replay runs it before them
(histories of a chaos run, tests/fixtures/known_nondeterminism): a handler that changed the case at once made
the run's commands depend on that order. The case workflow therefore only queues decisions, dismissals and
retries; the run applies them after its wait, where both orders meet. Here, on the real dev server, a review is
accepted while hashing is held on another worker, the workflow worker goes away, the hashing ends, and a cold
worker takes it all over: the review is applied once, to the case it named, and the history replays.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.worker import Replayer, Worker

from activities.case_index import CaseIndexActivities
from activities.detection import DetectionActivities
from models.case import (
    CaseStart,
    CaseState,
    CaseStatus,
    ContentItem,
    Dismissal,
    MediaAnalysis,
    MediaDecision,
    MediaSource,
    ReviewDecision,
    ReviewPolicy,
)
from models.filing import AnalyzeMediaBatch
from tests.conftest import ORG
from tests.helpers import eventually
from tests.test_case_guarantees import fresh_seed, record
from tipline.evidence import EvidenceStore
from tipline.settings import Settings
from tipline.synthetic import synthetic_image
from worker import WORKFLOWS, case_worker

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"


class Gate:
    """Holds the hashing activity until the test lets it finish."""

    def __init__(self) -> None:
        # Threading events: the activity runs on the worker's thread pool, as the real one does.
        self.open = threading.Event()
        self.entered = threading.Event()
        self.open.set()


@asynccontextmanager
async def hashing_worker(client: Client, settings: Settings, engine: Engine, gate: Gate) -> AsyncIterator[None]:
    """Every activity of a case, on a worker that runs no workflows; hashing waits at the gate."""
    detection = DetectionActivities(settings, EvidenceStore.from_settings(settings), engine)

    @activity.defn(name="analyze_media_batch")
    def gated_analysis(batch: AnalyzeMediaBatch) -> list[MediaAnalysis]:
        gate.entered.set()
        while not gate.open.wait(timeout=1):
            activity.heartbeat()
        return detection.analyze_media_batch(batch)

    async with case_worker(client, settings, engine, run_workflows=False, activity_overrides=[gated_analysis]):
        yield


@asynccontextmanager
async def cold_workflow_worker(client: Client, settings: Settings, engine: Engine) -> AsyncIterator[None]:
    """Workflows and their local activities only; its first task for a case it takes cold."""
    index = CaseIndexActivities(engine)
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(client, task_queue=settings.task_queue, workflows=WORKFLOWS,
                          activities=[index.publish_case_summary, index.user_history], activity_executor=executor,
                          no_remote_activities=True,
                          # Stopped, it leaves its sticky queue: the case's next task finds another worker soon.
                          sticky_queue_schedule_to_start_timeout=timedelta(seconds=1)):
            yield


def item(store: EvidenceStore, user_id: str, content_id: str, seed: int) -> ContentItem:
    return ContentItem(content_id=content_id, org_id=ORG, user_id=user_id,
                       media=MediaSource(evidence=store.put_bytes(synthetic_image(seed, size=(48, 40)))),
                       file_name=f"{content_id}.png", content_type="image/png", received_at=datetime.now(UTC))


def review_of_case_one(kind: str) -> tuple[str, Dismissal | ReviewDecision]:
    """A review as the API sends it while the second item is still hashing: only the first was there to see."""
    if kind == "dismissal":
        return "dismiss", Dismissal(reviewer_id="reviewer-1", case_number=1, reason="not abuse material",
                                    media_seen=["first"])
    return "decide", ReviewDecision(reviewer_id="reviewer-1", case_number=1, incident_type=INCIDENT,
                                    media=[MediaDecision(media_id="first", reported=True, classification="B1")],
                                    media_seen=["first"])


@pytest.mark.parametrize("request_kind", ["dismissal", "decision"])
async def test_a_review_accepted_mid_gathering_is_applied_by_a_cold_worker_and_replays(
        request_kind: str, temporal_client: Client, settings: Settings, engine: Engine) -> None:
    local = settings.model_copy(update={"task_queue": f"tipline-race-{uuid.uuid4().hex[:8]}"})
    store = EvidenceStore.from_settings(local)
    user_id = f"race-user-{uuid.uuid4().hex[:6]}"
    gate = Gate()
    name, review = review_of_case_one(request_kind)
    async with hashing_worker(temporal_client, local, engine, gate):
        async with cold_workflow_worker(temporal_client, local, engine):
            handle = await temporal_client.start_workflow(
                "CaseWorkflow", CaseStart(org_id=ORG, user_id=user_id, review=ReviewPolicy()),
                id=f"case-race-{uuid.uuid4().hex[:10]}", task_queue=local.task_queue, start_signal="add_content",
                start_signal_args=[item(store, user_id, "first", fresh_seed())])

            async def first_hashed() -> bool:
                case = await handle.query("case", result_type=CaseState)
                return bool(case.media) and all(m.analysis is not None for m in case.media)

            await eventually(first_hashed, timeout=60, what="the first item hashed")
            gate.open.clear()
            gate.entered.clear()  # the first item's hashing set it
            await handle.signal("add_content", item(store, user_id, "second", fresh_seed()))
            assert await asyncio.to_thread(gate.entered.wait, 30), "the second hashing never started"

            # Accepted at once, though the run is busy hashing; applied when the run gets back to its loop.
            accepted = await handle.execute_update(name, review, rpc_timeout=timedelta(seconds=30))
            assert accepted["status"] == ("dismissed" if request_kind == "dismissal" else "filing")
            with pytest.raises(WorkflowUpdateFailedError) as twice:
                await handle.execute_update(name, review, rpc_timeout=timedelta(seconds=30))
            assert "case_number" in str(twice.value.cause)
            held = await handle.query("case_numbered", 1, result_type=CaseState)
            assert held is not None and held.status is CaseStatus.AWAITING_REVIEW
        # The worker that accepted it is gone; the hashing ends meanwhile; a cold worker takes both over.
        gate.open.set()
        async with cold_workflow_worker(temporal_client, local, engine):
            async def reviewed() -> CaseState | None:
                case = await handle.query("case_numbered", 1, result_type=CaseState)
                return case if case is not None and case.status is not CaseStatus.AWAITING_REVIEW else None

            case_one = await eventually(reviewed, timeout=30, what="the review applied")
            # The item that was still hashing when the reviewer acted went on to case 2, though hashed by now.
            assert [m.media_id for m in case_one.media] == ["first"]
            case_two = await handle.query("case_numbered", 2, result_type=CaseState)
            assert case_two is not None and [m.media_id for m in case_two.media] == ["second"]
            history = await handle.fetch_history()
            await record(temporal_client, f"review_queued_while_hashing_{request_kind}_a_task_later", handle.id)
    replayed = await Replayer(workflows=WORKFLOWS, data_converter=temporal_client.data_converter).replay_workflow(
        history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure
    failed_tasks = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    assert not failed_tasks, failed_tasks[0].workflow_task_failed_event_attributes.failure.message


async def test_a_decision_that_reaches_a_cold_worker_with_the_review_deadline_escalates_first_and_replays(
        temporal_client: Client, settings: Settings, engine: Engine) -> None:
    """Nobody ran the case when its review deadline passed; a reviewer then decided it. The worker that takes it
    over cold gets the deadline's timer and the decision in one task: the case is raised as overdue (it was), the
    decision applied after, and the history replays whichever of the two the SDK ran first (chaos seed 1)."""
    local = settings.model_copy(update={"task_queue": f"tipline-late-{uuid.uuid4().hex[:8]}"})
    store = EvidenceStore.from_settings(local)
    user_id = f"late-user-{uuid.uuid4().hex[:6]}"
    window = timedelta(seconds=3)
    gate = Gate()
    gate.open.set()
    decision = ReviewDecision(reviewer_id="reviewer-1", case_number=1, incident_type=INCIDENT,
                              media=[MediaDecision(media_id="first", reported=True, classification="B1")],
                              media_seen=["first"])
    async with hashing_worker(temporal_client, local, engine, gate):
        async with cold_workflow_worker(temporal_client, local, engine):
            handle = await temporal_client.start_workflow(
                "CaseWorkflow", CaseStart(org_id=ORG, user_id=user_id, review=ReviewPolicy(
                    urgent_within=window, elevated_within=window, normal_within=window)),
                id=f"case-late-{uuid.uuid4().hex[:10]}", task_queue=local.task_queue, start_signal="add_content",
                start_signal_args=[item(store, user_id, "first", fresh_seed())])

            async def waiting_for_its_deadline() -> bool:
                case = await handle.query("case", result_type=CaseState)
                return case.review_deadline is not None and all(m.analysis is not None for m in case.media)

            await eventually(waiting_for_its_deadline, timeout=60, what="the item hashed, the deadline set")

        async def deadline_fired_unseen() -> bool:
            history = await handle.fetch_history()
            return any(e.HasField("timer_fired_event_attributes") for e in history.events)

        await eventually(deadline_fired_unseen, timeout=30, what="the review deadline's timer fired, no worker")
        # No worker: the server holds the update for the case's next task, and the call gives up waiting.
        with pytest.raises(WorkflowUpdateRPCTimeoutOrCancelledError):
            await handle.execute_update("decide", decision, id="late-decision", rpc_timeout=timedelta(seconds=2))
        async with cold_workflow_worker(temporal_client, local, engine):
            accepted = await handle.get_update_handle("late-decision").result(rpc_timeout=timedelta(seconds=30))
            assert accepted["status"] == "filing"
            await handle.signal("review_queued")  # as the API does after every review

            async def decided() -> CaseState | None:
                case = await handle.query("case_numbered", 1, result_type=CaseState)
                return case if case is not None and case.decision is not None else None

            case_one = await eventually(decided, timeout=30, what="the decision applied")
            assert case_one.escalated_at is not None, "the review was overdue when the decision came"
            history = await handle.fetch_history()
            await record(temporal_client, "decision_with_the_review_deadline_at_a_cold_worker_a_task_later", handle.id)

    replayed = await Replayer(workflows=WORKFLOWS, data_converter=temporal_client.data_converter).replay_workflow(
        history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure
    failed_tasks = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    assert not failed_tasks, failed_tasks[0].workflow_task_failed_event_attributes.failure.message


async def test_a_review_is_applied_in_a_task_after_the_one_that_accepted_it(
        temporal_client: Client, settings: Settings, engine: Engine) -> None:
    """Whichever order a cold worker's SDK delivers an update in among a task's other work, nothing that task does
    depends on it: the case applies it only in a later task, the one the API's ``review_queued`` signal brings."""
    local = settings.model_copy(update={"task_queue": f"tipline-later-{uuid.uuid4().hex[:8]}"})
    store = EvidenceStore.from_settings(local)
    user_id = f"later-user-{uuid.uuid4().hex[:6]}"
    name, review = review_of_case_one("decision")
    async with case_worker(temporal_client, local, engine):
        handle = await temporal_client.start_workflow(
            "CaseWorkflow", CaseStart(org_id=ORG, user_id=user_id, review=ReviewPolicy()),
            id=f"case-later-{uuid.uuid4().hex[:10]}", task_queue=local.task_queue, start_signal="add_content",
            start_signal_args=[item(store, user_id, "first", fresh_seed())])

        async def idle() -> bool:  # hashed, assessed and published: nothing in flight that would bring a task
            case = await handle.query("case", result_type=CaseState)
            return case.media_listed and case.urgency is not None and all(m.analysis for m in case.media)

        await eventually(idle, timeout=60, what="the case hashed and waiting for review")
        accepted = await handle.execute_update(name, review, rpc_timeout=timedelta(seconds=30))
        assert accepted["status"] == "filing"
        held = await handle.query("case_numbered", 1, result_type=CaseState)
        assert held is not None and held.status is CaseStatus.AWAITING_REVIEW and held.decision is None
        await handle.signal("review_queued")

        async def applied() -> CaseState | None:
            case = await handle.query("case_numbered", 1, result_type=CaseState)
            return case if case is not None and case.decision is not None else None

        assert (await eventually(applied, timeout=30, what="the decision applied")).status is not \
            CaseStatus.AWAITING_REVIEW
