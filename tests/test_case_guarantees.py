"""The case workflow's core guarantees, on the real dev server, sandbox and PostgreSQL.

- A side effect that fails (a dead escalation webhook) is recorded on the case and retried; the case stays
  open and still files. Media whose analysis fails (the database down) waits and is analysed again, never
  called unhashable for it. A screening step that gives up leaves the item in triage with the reason.
- Filing runs in a child workflow: content that arrives meanwhile is preserved, hashed and matched at once and
  is the user's next case; a decision names its case number, and a late one is refused with 409.
- A case that needs attention with its report open can be decided again (the report is retracted first) or
  dismissed; a permanent refusal is not retried.

Set ``TIPLINE_RECORD_HISTORIES=1`` to export the new paths' histories into tests/fixtures/histories.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.detection import DetectionActivities
from activities.triage import TriageActivities
from api.app import create_app
from api.deps import create_api_key
from models.case import (
    CaseStart,
    ContentItem,
    FilingPolicy,
    MediaAnalysis,
    MediaSource,
    ReviewPolicy,
)
from models.filing import AnalyzeMediaBatch, filing_workflow_id
from models.history_export import HistoryExport
from models.history_export_messages import ExportedHistory, ExportHistoryInput
from models.records import Role, TriageItem
from models.screening import TriageClosed, TriageRecord
from tests.conftest import make_org
from tests.helpers import FakePlatform, Sandbox, eventually, fake_platform, new_callback_secret
from tests.history_payloads import decrypt_in_place, patch_ids
from tipline.audit_log import AuditLog
from tipline.evidence import EvidenceStore
from tipline.filing_watch import notice_stopped_filings
from tipline.history_export import HistoryExporter
from tipline.registry import RefRegistry
from tipline.settings import Settings, orgs_toml
from tipline.synthetic import synthetic_image
from worker import case_worker
from workflows.case_media import ANALYSIS_RETRY_TIMER_PATCH
from workflows.history_export import history_export_workflow_id

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
DEAD_HOOK_ORG = "deadhook"
HISTORIES = Path(__file__).parent / "fixtures" / "histories"
FAILED_ENDINGS = (WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.TERMINATED,
                  WorkflowExecutionStatus.TIMED_OUT)


def refused_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Stack:
    """A worker, an API and keys of their own, for an org whose escalation webhook is dead."""

    def __init__(self, api: httpx.AsyncClient, client: Client, settings: Settings, keys: dict[Role, str],
                 engine: Engine) -> None:
        self.api, self.client, self.settings, self.keys, self.engine = api, client, settings, keys, engine
        self.store = EvidenceStore.from_settings(settings)

    def as_(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}

    async def case(self, case_ref: str, case_number: int | None = None) -> dict:
        params = {"case_number": case_number} if case_number is not None else {}
        response = await self.api.get(f"/v1/cases/{case_ref}", params=params, headers=self.as_())
        assert response.status_code == 200, response.text
        return response.json()

    async def start_case(self, user_id: str, content_id: str, seed: int, *, review_within: timedelta,
                         policy: FilingPolicy) -> str:
        """The user's case, started as intake starts it, with review and retry windows short enough to watch."""
        # The id as intake issues it: recorded as the org's, so the API finds the case.
        case_ref = RefRegistry.from_settings(self.settings, self.engine).case_ref_for(DEAD_HOOK_ORG, user_id)
        await self.client.start_workflow(
            "CaseWorkflow",
            CaseStart(org_id=DEAD_HOOK_ORG, user_id=user_id, policy=policy,
                      review=ReviewPolicy(urgent_within=review_within, elevated_within=review_within,
                                          normal_within=review_within)),
            id=case_ref, task_queue=self.settings.task_queue, start_signal="add_content",
            start_signal_args=[self.item(user_id, content_id, seed)],
        )
        return case_ref

    def item(self, user_id: str, content_id: str, seed: int) -> ContentItem:
        evidence = self.store.put_bytes(synthetic_image(seed, size=(48, 40)))
        return ContentItem(content_id=content_id, org_id=DEAD_HOOK_ORG, user_id=user_id,
                           media=MediaSource(evidence=evidence), file_name=f"{content_id}.png",
                           content_type="image/png", received_at=datetime.now(UTC))

    async def add(self, case_ref: str, user_id: str, content_id: str, seed: int) -> None:
        await self.client.get_workflow_handle(case_ref).signal("add_content", self.item(user_id, content_id, seed))

    async def decide(self, case_ref: str, case_number: int, media: list[str], **extra: object) -> httpx.Response:
        body = {"case_number": case_number, "incident_type": INCIDENT,
                "media": [{"media_id": m, "reported": True, "classification": "B1"} for m in media], **extra}
        return await self.api.post(f"/v1/cases/{case_ref}/decision", json=body, headers=self.as_())

    async def settled(self, case_ref: str, media_ids: list[str], case_number: int | None = None) -> dict:
        async def ready() -> dict | None:
            case = await self.case(case_ref, case_number)
            analysed = {m["media_id"] for m in case["media"] if m["analysis"] is not None}
            return case if analysed >= set(media_ids) else None

        return await eventually(ready, what="the media preserved, hashed and matched")

    async def until_status(self, case_ref: str, status: str, case_number: int | None = None,
                           timeout: float = 60) -> dict:
        async def reached() -> dict | None:
            case = await self.case(case_ref, case_number)
            return case if case["status"] == status else None

        return await eventually(reached, timeout=timeout, what=f"case {case_number or ''} {status}")

    async def runs(self, workflow_id: str) -> list[WorkflowExecutionStatus]:
        return [w.status async for w in self.client.list_workflows(f'WorkflowId = "{workflow_id}"')
                if w.status is not None]


@pytest.fixture(scope="module")
async def stack(settings: Settings, temporal_client: Client, engine: Engine,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    orgs_file = tmp_path_factory.mktemp("deadhook") / "orgs.toml"
    dead_hook = f"127.0.0.1:{refused_port()}"
    org = make_org(DEAD_HOOK_ORG).model_copy(update={
        "escalation_webhook_url": f"http://{dead_hook}/escalations",
        "callback_secret": SecretStr(new_callback_secret())})
    orgs_file.write_text(orgs_toml([org]))
    # The dead webhook is exempt from the egress guard, so the call really reaches a port that refuses it.
    local = settings.model_copy(update={
        "orgs_file": orgs_file, "task_queue": f"tipline-h1-{uuid.uuid4().hex[:8]}",
        "egress_private_exemptions": [*settings.egress_private_exemptions, dead_hook]})
    local.__dict__.pop("orgs", None)  # a copy keeps the cached org directory: read the orgs file given here
    keys = {role: create_api_key(engine, DEAD_HOOK_ORG, role, f"test {role}") for role in Role}
    app = create_app(local, temporal=temporal_client, engine=engine)
    async with case_worker(temporal_client, local, engine), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tipline.test"
    ) as api:
        yield Stack(api, temporal_client, local, keys, engine)


@pytest.fixture(autouse=True)
def calm_sandbox(sandbox: Sandbox) -> AsyncIterator[None]:
    yield
    sandbox.state.faults.reset()


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[FakePlatform]:
    async with fake_platform() as served:
        yield served


QUICK = FilingPolicy(call_timeout=timedelta(seconds=5), side_effect_retry_every=timedelta(seconds=1),
                     side_effect_retries=1)


def fresh_seed() -> int:
    """Evidence is content-addressed: a seed of its own keeps one test's bytes apart from another's."""
    return uuid.uuid4().int % 10_000_000 + 1_000


async def record(client: Client, name: str, workflow_id: str, run_id: str | None = None) -> None:
    if os.environ.get("TIPLINE_RECORD_HISTORIES") != "1":
        return
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    assert client.data_converter.payload_codec is not None
    # Decrypted, as every fixture is: the replayer has none of this run's keys.
    history = await decrypt_in_place(history, client.data_converter.payload_codec)
    (HISTORIES / f"{name}.json").write_text(json.dumps(history.to_json_dict(), separators=(",", ":")) + "\n")


async def test_a_dead_escalation_webhook_is_recorded_retried_and_the_case_still_files(
    stack: Stack, sandbox: Sandbox
) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = await stack.start_case(user, "item-1", fresh_seed(), review_within=timedelta(seconds=1), policy=QUICK)

    async def given_up() -> dict | None:
        case = await stack.case(case_ref)
        failures = [f for f in case["side_effect_failures"] if f["what"] == "escalation_webhook"]
        return case if failures and failures[0]["attempts"] == 2 and failures[0]["retry_at"] is None else None

    case = await eventually(given_up, timeout=60, what="the webhook failure recorded, retried once, given up")
    [failure] = case["side_effect_failures"]
    assert "127.0.0.1" not in failure["reason"]  # the reviewer sees why, not where the org's systems are
    assert case["status"] == "awaiting_review" and case["escalated_at"] is not None
    assert await stack.runs(case_ref) == [WorkflowExecutionStatus.RUNNING]
    queue = (await stack.api.get("/v1/cases", headers=stack.as_())).json()
    assert [(e["case_ref"], e["escalated_at"] is not None) for e in queue if e["case_ref"] == case_ref] == [
        (case_ref, True)]

    assert (await stack.decide(case_ref, 1, ["item-1"])).status_code == 200
    filed = await stack.until_status(case_ref, "filed")
    assert filed["side_effect_failures"][0]["what"] == "escalation_webhook"
    [report] = [r for r in await sandbox.reports() if r["report_id"] == filed["filing"]["report_id"]]
    assert report["status"] == "finished"
    assert not set(await stack.runs(case_ref)) & set(FAILED_ENDINGS)


async def test_content_arriving_while_a_case_files_is_the_next_case_at_once_and_a_late_decision_is_refused(
    stack: Stack, sandbox: Sandbox
) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = await stack.start_case(user, "first", fresh_seed(), review_within=timedelta(hours=1), policy=QUICK)
    await stack.settled(case_ref, ["first"])
    sandbox.state.faults.configure(latency_ms=700)  # NCMEC is slow today: filing takes a few seconds
    assert (await stack.decide(case_ref, 1, ["first"])).status_code == 200
    await stack.add(case_ref, user, "second", fresh_seed())

    # Preserved, hashed and matched while case 1 is still with NCMEC: nothing waits on the filing.
    second = await stack.settled(case_ref, ["second"], case_number=2)
    assert (await stack.case(case_ref, 1))["status"] == "filing"
    assert second["status"] == "awaiting_review" and [m["media_id"] for m in second["media"]] == ["second"]
    viewed = await stack.api.get(second["media"][0]["content_url"], headers=stack.as_())
    assert viewed.status_code == 200 and viewed.content.startswith(b"\x89PNG")
    queue = {(e["case_number"], e["status"]) for e in (await stack.api.get("/v1/cases", headers=stack.as_())).json()
             if e["case_ref"] == case_ref}
    assert queue == {(1, "filing"), (2, "awaiting_review")}

    for late in (1, 3):  # a retried decision for the case already filing, one for a case that is not there
        refused = await stack.decide(case_ref, late, ["second"])
        assert refused.status_code == 409, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["case_number"]
    unchanged = await stack.case(case_ref, 2)
    assert unchanged["decision"] is None and unchanged["status"] == "awaiting_review"

    # Decided while case 1 is still with NCMEC: it files next, naming case 1's CyberTip.
    assert (await stack.decide(case_ref, 2, ["second"])).status_code == 200
    queued = await stack.case(case_ref, 2)
    if (await stack.case(case_ref, 1))["status"] == "filing":
        assert queued["status"] == "filing" and "earlier case" in queued["waiting_reason"]
    first = await stack.until_status(case_ref, "filed", case_number=1)
    second = await stack.until_status(case_ref, "filed", case_number=2)
    assert second["prior_report_ids"] == [first["filing"]["report_id"]]
    assert second["filing"]["report_id"] != first["filing"]["report_id"]
    for number in (1, 2):
        child = stack.client.get_workflow_handle(filing_workflow_id(case_ref, number, 1))
        assert (await child.describe()).status is WorkflowExecutionStatus.COMPLETED

    async def closed() -> bool:
        return await stack.runs(case_ref) == [WorkflowExecutionStatus.COMPLETED]

    await eventually(closed, what="the user's workflow closed once both cases were filed")
    await record(stack.client, "user_workflow_files_in_children", case_ref)
    # child_filing.json is this history from before files went in batches: it stays as recorded then.
    await record(stack.client, "child_filing_in_batches", filing_workflow_id(case_ref, 1, 1))


async def test_banking_that_fails_after_the_filing_is_recorded_retried_and_the_case_still_closes_filed(
    stack: Stack, sandbox: Sandbox
) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = await stack.start_case(user, "item-1", fresh_seed(), review_within=timedelta(hours=1), policy=QUICK)
    case = await stack.settled(case_ref, ["item-1"])
    sandbox.state.faults.configure(latency_ms=1000)  # seconds between the upload and the end of the filing
    assert (await stack.decide(case_ref, 1, ["item-1"])).status_code == 200

    async def uploaded() -> bool:
        return any(r["files"] for r in await sandbox.reports() if f"<espIdentifier>{user}<" in r["report_xml"])

    await eventually(uploaded, what="the file at NCMEC")
    # NCMEC has the bytes; the evidence store's copy now fails its integrity check, so banking cannot read it.
    path = stack.store.path_for(case["media"][0]["evidence"]["sha256"])
    path.write_bytes(path.read_bytes()[:40])

    async def given_up() -> dict | None:
        current = await stack.case(case_ref)
        failures = [f for f in current["side_effect_failures"] if f["what"] == "bank_reported_media"]
        return current if failures and failures[0]["retry_at"] is None else None

    filed = await eventually(given_up, timeout=60, what="banking failed, retried and given up")
    [failure] = filed["side_effect_failures"]
    assert filed["status"] == "filed" and failure["attempts"] == 2 and "truncated" in failure["reason"]
    await eventually(lambda: _closed(stack, case_ref), what="the user's workflow closed")


async def test_hashing_and_banking_heartbeat_so_a_worker_that_dies_mid_step_costs_seconds(
    stack: Stack,
) -> None:
    """The user's workflow waits for banking before it publishes the filed row and takes in new content, and a
    case reaches the queue once hashed: an attempt lost with its worker must be noticed by its heartbeat, not
    after 2 minutes (the chaos benchmark found filed cases shown as filing, and cases unassessed, for minutes)."""
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = await stack.start_case(user, "item-1", fresh_seed(), review_within=timedelta(hours=1), policy=QUICK)
    await stack.settled(case_ref, ["item-1"])
    assert (await stack.decide(case_ref, 1, ["item-1"])).status_code == 200
    await eventually(lambda: _closed(stack, case_ref), what="the user's workflow closed")
    history = await stack.client.get_workflow_handle(case_ref).fetch_history()
    banking = [e.activity_task_scheduled_event_attributes for e in history.events
               if e.HasField("activity_task_scheduled_event_attributes")
               and e.activity_task_scheduled_event_attributes.activity_type.name == "bank_reported_media"]
    assert banking, "the reported item was banked"
    assert all(timedelta(0) < b.heartbeat_timeout.ToTimedelta() <= timedelta(seconds=30) for b in banking)
    hashing = [e.activity_task_scheduled_event_attributes for e in history.events
               if e.HasField("activity_task_scheduled_event_attributes")
               and e.activity_task_scheduled_event_attributes.activity_type.name == "analyze_media_batch"]
    assert hashing and all(timedelta(0) < h.heartbeat_timeout.ToTimedelta() <= timedelta(seconds=30)
                           for h in hashing)
    completed = [e for e in history.events if e.HasField("activity_task_completed_event_attributes")]
    assert len(completed) >= len(banking)  # it heartbeats often enough to finish within its heartbeat timeout
    assert (await stack.case(case_ref))["status"] == "filed"


async def case_stuck_with_an_open_report(stack: Stack) -> tuple[str, int]:
    """A decided case whose second file cannot be uploaded (its evidence fails the integrity check): NCMEC
    refuses nothing, but the filing cannot go on, and the report stays open."""
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = await stack.start_case(user, "good", fresh_seed(), review_within=timedelta(hours=1), policy=QUICK)
    await stack.add(case_ref, user, "damaged", fresh_seed())
    case = await stack.settled(case_ref, ["good", "damaged"])
    damaged = next(m for m in case["media"] if m["media_id"] == "damaged")
    path = stack.store.path_for(damaged["evidence"]["sha256"])
    path.write_bytes(path.read_bytes()[:40])
    assert (await stack.decide(case_ref, 1, ["good", "damaged"])).status_code == 200
    stuck = await stack.until_status(case_ref, "needs_attention", case_number=1)
    assert stuck["attention_permanent"] and "integrity" in stuck["attention_reason"]
    assert stuck["filing"]["report_id"] is not None
    return case_ref, stuck["filing"]["report_id"]


async def test_a_case_stuck_with_an_open_report_is_decided_again_after_the_report_is_retracted(
    stack: Stack, sandbox: Sandbox
) -> None:
    case_ref, first_report = await case_stuck_with_an_open_report(stack)
    retry = await stack.api.post(f"/v1/cases/{case_ref}/retry", json={"case_number": 1}, headers=stack.as_())
    assert retry.status_code == 409 and "decide the case again" in retry.text  # the same refusal, forever: no

    assert (await stack.decide(case_ref, 1, ["good"])).status_code == 200
    filed = await stack.until_status(case_ref, "filed", case_number=1)
    assert filed["filing"]["abandoned_report_ids"] == [first_report]
    assert filed["decision"]["media"] == [{"media_id": "good", "reported": True, "classification": "B1",
                                           "annotations": [], "supplemental": False, "viewed": False}]
    statuses = {r["report_id"]: r["status"] for r in await sandbox.reports()
                if r["report_id"] in (first_report, filed["filing"]["report_id"])}
    assert statuses == {first_report: "retracted", filed["filing"]["report_id"]: "finished"}
    await eventually(lambda: _closed(stack, case_ref), what="the user's workflow closed")
    # The auditor's timeline names the retraction and the report it withdrew, and the refile after it.
    timeline = (await stack.api.get(f"/v1/cases/{case_ref}/timeline", headers=stack.as_(Role.AUDITOR))).json()
    [retracted] = [e for e in timeline["entries"] if e["kind"] == "ncmec.report_retracted"]
    assert retracted["detail"]["report_id"] == first_report and retracted["detail"]["outcome"] == "retracted"
    opened = [e["detail"]["report_id"] for e in timeline["entries"] if e["kind"] == "ncmec.report_opened"]
    assert opened == [first_report, filed["filing"]["report_id"]]
    await record(stack.client, "redecision_after_needs_attention", case_ref)
    await record(stack.client, "child_filing_retracts_then_files", filing_workflow_id(case_ref, 1, 2))


async def test_a_case_stuck_with_an_open_report_is_dismissed_with_its_reason_and_the_report_retracted(
    stack: Stack, sandbox: Sandbox
) -> None:
    case_ref, report_id = await case_stuck_with_an_open_report(stack)
    dismissed = await stack.api.post(f"/v1/cases/{case_ref}/dismissal", headers=stack.as_(),
                                     json={"case_number": 1, "reason": "Evidence damaged; re-reported by hand"})
    assert dismissed.status_code == 200, dismissed.text
    case = await stack.until_status(case_ref, "dismissed", case_number=1)
    assert case["dismissal"]["reason"] == "Evidence damaged; re-reported by hand"

    async def retracted() -> bool:
        return any(r["report_id"] == report_id and r["status"] == "retracted" for r in await sandbox.reports())

    await eventually(retracted, what="the open report retracted")


async def _closed(stack: Stack, case_ref: str) -> bool:
    return await stack.runs(case_ref) == [WorkflowExecutionStatus.COMPLETED]


async def test_a_screening_step_that_gives_up_leaves_the_item_in_triage_with_the_reason(
    api: httpx.AsyncClient, api_keys: dict, platform: FakePlatform
) -> None:
    name = uuid.uuid4().hex[:12]
    body = {"content_id": f"c-{name}", "creator_id": f"user-{name}", "media_url": f"{platform.url}/media/{name}"}
    reviewer = {"X-API-Key": api_keys["acme"][Role.ADMIN]}
    response = await api.post("/v1/screenings", json=body, headers={"X-API-Key": api_keys["acme"][Role.PLATFORM]})
    assert response.status_code == 202, response.text
    ref = response.json()["screening_ref"]

    entry = await eventually(lambda: _triage_entry(api, reviewer, ref), what="the unscreenable item in triage")
    assert entry["classifier_priority"] == "unscreened" and entry["content_url"] is None
    assert "no longer has this media" in entry["screening_error"]
    outcome = (await api.get(f"/v1/screenings/{ref}", headers=reviewer)).json()
    assert outcome["route"] == "triage" and outcome["error"] == entry["screening_error"]


async def test_the_triage_table_is_written_however_long_the_database_is_down(
    stack: Stack, temporal_client: Client, engine: Engine, platform: FakePlatform
) -> None:
    """Triage is where an item goes when nothing else can take it: its writes are retried until they land, past
    any count of attempts, so a database outage neither fails the screening nor drops the item."""
    local = stack.settings.model_copy(update={"task_queue": f"tipline-h1-triage-{uuid.uuid4().hex[:8]}"})
    triage = TriageActivities(local, engine, temporal_client)
    failures = {"record_triage": 3, "close_triage": 3}

    def down_for_a_while(step: str) -> None:
        if failures[step]:
            failures[step] -= 1
            raise ApplicationError("connection to the database failed", type="OperationalError")

    @activity.defn(name="record_triage")
    def record_while_the_database_recovers(record: TriageRecord) -> None:
        down_for_a_while("record_triage")
        triage.record_triage(record)

    @activity.defn(name="close_triage")
    def close_while_the_database_recovers(closed: TriageClosed) -> None:
        down_for_a_while("close_triage")
        triage.close_triage(closed)

    app = create_app(local, temporal=temporal_client, engine=engine)
    overrides = [record_while_the_database_recovers, close_while_the_database_recovers]
    async with case_worker(temporal_client, local, engine, activity_overrides=overrides), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as api:
        name = uuid.uuid4().hex[:12]
        body = {"content_id": f"c-{name}", "creator_id": f"user-{name}", "media_url": f"{platform.url}/media/{name}"}
        response = await api.post("/v1/screenings", json=body, headers=stack.as_(Role.PLATFORM))
        assert response.status_code == 202, response.text
        ref = response.json()["screening_ref"]
        entry = await eventually(lambda: _triage_entry(api, stack.as_(), ref), what="the item in triage")
        assert "no longer has this media" in entry["screening_error"]
        dismissed = await api.post(f"/v1/triage/{ref}/dismissal", json={"reason": "gone"}, headers=stack.as_())
        assert dismissed.status_code == 200, dismissed.text

        def closed_row() -> TriageItem | None:
            with Session(engine) as session:
                row = session.get(TriageItem, ref)
            return row if row is not None and row.status != "pending" else None

        async def closed() -> TriageItem | None:
            return await asyncio.to_thread(closed_row)

        row = await eventually(closed, timeout=60, what="the dismissal recorded")
        assert row.status == "dismissed" and row.reason == "gone"
        assert failures == {"record_triage": 0, "close_triage": 0}
        # No attempt limit at the call: an outage longer than any count of attempts still ends in the row.
        history = await temporal_client.get_workflow_handle(ref).fetch_history()
        writes = {e.activity_task_scheduled_event_attributes.activity_type.name:
                  e.activity_task_scheduled_event_attributes.retry_policy.maximum_attempts
                  for e in history.events if e.HasField("activity_task_scheduled_event_attributes")}
        assert writes["record_triage"] == 0 and writes["close_triage"] == 0, writes

        async def finished() -> bool:
            described = await temporal_client.get_workflow_handle(ref).describe()
            return described.status is WorkflowExecutionStatus.COMPLETED

        await eventually(finished, what="the screening finished")


async def test_one_item_that_cannot_be_downloaded_does_not_cost_its_batch(
    settings: Settings, platform: FakePlatform
) -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.media import MEDIA_NOT_FETCHED, MediaActivities
    from models.filing import PreserveMediaBatch, PreserveMediaInput
    from worker import egress_client

    name = uuid.uuid4().hex[:12]
    good = platform.add(name, fresh_seed())
    dead_host = f"127.0.0.1:{refused_port()}"
    dead = f"http://{dead_host}/media/{name}"
    store = EvidenceStore.from_settings(settings)
    # The dead host is exempt from the egress guard, so the download really meets a refused connection.
    local = settings.model_copy(update={"egress_private_exemptions": [*settings.egress_private_exemptions, dead_host]})
    async with egress_client(local) as egress:
        batch = PreserveMediaBatch(items=[
            PreserveMediaInput(org_id="acme", workflow_id="case-acme-batch", media_id=media_id,
                               source=MediaSource(url=url))
            for media_id, url in (("good", good), ("dead", dead), ("gone", f"{platform.url}/media/missing"))])
        activities = MediaActivities(local, store, egress)
        kept, refused, gone = await ActivityEnvironment().run(activities.preserve_media_batch, batch)
    assert kept.evidence is not None and store.read_bytes(kept.evidence.sha256) == platform.media[name]
    # What answered (or refused) at which address stays in the worker's log: the case gets the generic reason.
    assert refused.evidence is None and refused.error == MEDIA_NOT_FETCHED
    assert gone.evidence is None and "no longer has this media" in (gone.error or "")


async def test_a_classifier_that_stays_unavailable_leaves_the_item_in_triage_with_the_reason(
    api: httpx.AsyncClient, api_keys: dict, platform: FakePlatform, temporal_client: Client
) -> None:
    name = uuid.uuid4().hex[:12]
    # The sandbox classifier answers this image with "unavailable" on every attempt, until the step gives up.
    url = platform.add_bytes(name, noise_with_outage_marker(fresh_seed()))
    body = {"content_id": f"c-{name}", "creator_id": f"user-{name}", "media_url": url}
    response = await api.post("/v1/screenings", json=body, headers={"X-API-Key": api_keys["acme"][Role.PLATFORM]})
    assert response.status_code == 202, response.text
    ref = response.json()["screening_ref"]
    reviewer = {"X-API-Key": api_keys["acme"][Role.ADMIN]}

    entry = await eventually(lambda: _triage_entry(api, reviewer, ref), timeout=60,
                             what="the unclassified item in triage")
    assert entry["classifier_priority"] == "unscreened" and "classifier" in entry["screening_error"]
    assert entry["content_url"] is not None  # preserved: the reviewer can look at it
    escalated = await api.post(f"/v1/triage/{ref}/escalation", json={"reason": "looked at it"}, headers=reviewer)
    assert escalated.status_code == 200, escalated.text
    assert escalated.json()["route"] == "triage"
    outcome = await eventually(lambda: _screening_case_ref(api, reviewer, ref), what="the item in its case")
    assert outcome.startswith("case-")

    async def finished() -> bool:
        return (await temporal_client.get_workflow_handle(ref).describe()).status is WorkflowExecutionStatus.COMPLETED

    await eventually(finished, what="the screening finished")
    await record(temporal_client, "screening_unclassifiable_waits_in_triage", ref)


def noise_with_outage_marker(seed: int) -> bytes:
    """Pixel noise that no banked item of the session can resemble (the smooth sandbox images share flat and
    evenly shaded regions), with the marker that makes the sandbox classifier answer "unavailable"."""
    import io

    import numpy as np
    from PIL import Image, ImageDraw

    from detection.classifier import SANDBOX_MARKER_SIZE, SANDBOX_OUTAGE_MARKER

    pixels = np.random.default_rng(seed).integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    corner = (0, 0, SANDBOX_MARKER_SIZE - 1, SANDBOX_MARKER_SIZE - 1)
    ImageDraw.Draw(image).rectangle(corner, fill=SANDBOX_OUTAGE_MARKER)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def _triage_entry(api: httpx.AsyncClient, reviewer: dict, ref: str) -> dict | None:
    """The screening's entry in the triage list, once it is there; fails at once if it was routed elsewhere."""
    listed = (await api.get("/v1/triage", headers=reviewer)).json()
    outcome = (await api.get(f"/v1/screenings/{ref}", headers=reviewer)).json()  # None while it runs
    assert outcome is None or outcome["route"] == "triage", outcome  # matched or cleared: the image is wrong
    return next((e for e in listed if e["screening_ref"] == ref), None)


async def _screening_case_ref(api: httpx.AsyncClient, reviewer: dict, ref: str) -> str | None:
    return (await api.get(f"/v1/screenings/{ref}", headers=reviewer)).json().get("case_ref")


async def test_a_filing_attempt_terminated_by_an_operator_leaves_the_case_needing_attention_and_retryable(
    stack: Stack, sandbox: Sandbox
) -> None:
    """The attempt never sends its end; the worker's filing watch notices it closed and tells the user's
    workflow, so the case is no longer shown as filing forever, and a retry files it."""
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = await stack.start_case(user, "m", fresh_seed(), review_within=timedelta(hours=1), policy=QUICK)
    await stack.settled(case_ref, ["m"])
    looked_from = datetime.now(UTC)
    sandbox.state.faults.configure(outage=True)  # the attempt keeps trying to open its report
    assert (await stack.decide(case_ref, 1, ["m"])).status_code == 200
    child = stack.client.get_workflow_handle(filing_workflow_id(case_ref, 1, 1))

    async def child_running() -> bool:
        try:
            return (await child.describe()).status is WorkflowExecutionStatus.RUNNING
        except RPCError:
            return False

    await eventually(child_running, what="the filing attempt running")
    await child.terminate("an operator's mistake")
    assert (await stack.case(case_ref, 1))["status"] == "filing"  # nobody told the user's workflow yet

    async def noticed() -> list[str] | None:
        return await notice_stopped_filings(stack.client, looked_from) or None

    assert await eventually(noticed, what="the terminated attempt found") == [child.id]
    stuck = await stack.until_status(case_ref, "needs_attention", case_number=1)
    assert "terminated" in stuck["attention_reason"] and not stuck["attention_permanent"]
    await notice_stopped_filings(stack.client, looked_from)  # told twice: changes nothing

    sandbox.state.faults.reset()
    retry = await stack.api.post(f"/v1/cases/{case_ref}/retry", json={"case_number": 1}, headers=stack.as_())
    assert retry.status_code == 200, retry.text
    filed = await stack.until_status(case_ref, "filed", case_number=1)
    assert filed["filing"]["report_id"] is not None
    second = stack.client.get_workflow_handle(filing_workflow_id(case_ref, 1, 2))
    assert (await second.describe()).status is WorkflowExecutionStatus.COMPLETED


async def test_media_whose_analysis_fails_waits_and_is_analysed_again_instead_of_being_called_unhashable(
    stack: Stack, temporal_client: Client, engine: Engine
) -> None:
    """Every attempt of the first analysis fails as a database outage does; the item stays unjudged (not
    broken), the failure is on the case, and the next try hashes and matches it."""
    local = stack.settings.model_copy(update={"task_queue": f"tipline-h1-analysis-{uuid.uuid4().hex[:8]}"})
    detection = DetectionActivities(local, stack.store, engine, None)
    calls = 0

    @activity.defn(name="analyze_media_batch")
    def analysis_failing_once(batch: AnalyzeMediaBatch) -> list[MediaAnalysis]:
        nonlocal calls
        calls += 1
        if calls == 1:  # non-retryable: the attempts are spent at once, as five failed ones would be
            raise ApplicationError("connection to the database failed", type="OperationalError", non_retryable=True)
        return detection.analyze_media_batch(batch)

    app = create_app(local, temporal=temporal_client, engine=engine)
    async with case_worker(temporal_client, local, engine, activity_overrides=[analysis_failing_once]), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as api:
        here = Stack(api, temporal_client, local, stack.keys, engine)
        user = f"user-{uuid.uuid4().hex[:10]}"
        policy = QUICK.model_copy(update={"analysis_retry_every": timedelta(seconds=1)})
        case_ref = await here.start_case(user, "item-1", fresh_seed(), review_within=timedelta(hours=1),
                                         policy=policy)
        case = await here.settled(case_ref, ["item-1"])
        [item] = case["media"]
        assert item["analysis"]["unhashable_reason"] is None and item["analysis"]["pdq"], item["analysis"]
        assert item["broken"] is None
        [failure] = case["side_effect_failures"]
        assert failure["what"] == "media_analysis" and failure["attempts"] == 1
        assert "database" in failure["reason"] and failure["resolved_at"] is not None
        assert calls == 2
        assert (await here.decide(case_ref, 1, ["item-1"])).status_code == 200
        await here.until_status(case_ref, "filed")
        # Retried when a timer of its own fired (an event the replay sees too), not by comparing the clock.
        history = await temporal_client.get_workflow_handle(case_ref).fetch_history()
        assert ANALYSIS_RETRY_TIMER_PATCH in patch_ids(history.to_json())
        assert any(e.HasField("timer_fired_event_attributes") for e in history.events)
        await record(temporal_client, "media_analysis_retried_on_a_timer", case_ref)


async def test_a_history_export_that_cannot_be_stored_is_retried_without_holding_up_the_user(
    stack: Stack, temporal_client: Client, engine: Engine
) -> None:
    """A closed case's histories are exported by a workflow of their own, retried until stored: the user's workflow
    goes on (here: it completes), and the export lands once the store is back, however many tries that takes."""
    local = stack.settings.model_copy(update={"task_queue": f"tipline-h1-export-{uuid.uuid4().hex[:8]}"})
    exporter = HistoryExporter(engine, EvidenceStore.from_settings(local), temporal_client,
                               AuditLog.from_settings(local, engine))
    store_back = asyncio.Event()
    refused: list[int] = []

    @activity.defn(name="export_case_history")
    async def export_once_the_store_is_back(request: ExportHistoryInput) -> ExportedHistory:
        if not store_back.is_set():
            refused.append(activity.info().attempt)
            raise ApplicationError("the evidence store is unreachable", type="EvidenceStoreDown")
        return await exporter.export(request)

    app = create_app(local, temporal=temporal_client, engine=engine)
    async with case_worker(temporal_client, local, engine, activity_overrides=[export_once_the_store_is_back]), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as api:
        local_stack = Stack(api, temporal_client, local, stack.keys, engine)
        user = f"user-{uuid.uuid4().hex[:10]}"
        case_ref = await local_stack.start_case(user, "item-1", fresh_seed(), review_within=timedelta(hours=1),
                                                policy=QUICK)
        await local_stack.settled(case_ref, ["item-1"])
        response = await api.post(f"/v1/cases/{case_ref}/dismissal", headers=local_stack.as_(),
                                  json={"case_number": 1, "reason": "not abuse material"})
        assert response.status_code == 200, response.text

        async def user_done() -> bool:
            described = await temporal_client.get_workflow_handle(case_ref).describe()
            return described.status is WorkflowExecutionStatus.COMPLETED and bool(refused)

        await eventually(user_done, timeout=60, what="the user's workflow completed while the export failed")
        export = temporal_client.get_workflow_handle(history_export_workflow_id(case_ref, 1),
                                                     result_type=ExportedHistory)
        assert (await export.describe()).status is WorkflowExecutionStatus.RUNNING
        store_back.set()
        exported = await export.result()
        assert exported.runs >= 1 and not exported.missing

        def row() -> HistoryExport | None:
            with Session(engine) as session:
                return session.exec(select(HistoryExport).where(HistoryExport.case_ref == case_ref)).first()

        kept = await asyncio.to_thread(row)
        assert kept is not None and kept.sha256 == exported.sha256
        history = await export.fetch_history()
        [scheduled] = [e.activity_task_scheduled_event_attributes for e in history.events
                       if e.HasField("activity_task_scheduled_event_attributes")]
        assert scheduled.retry_policy.maximum_attempts == 0  # no attempt limit: retried until stored
        await record(temporal_client, "history_export_retried_until_stored", export.id)
        await record(temporal_client, "dismissal_with_history_export_workflow", case_ref)
