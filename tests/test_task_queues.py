"""Each kind of activity runs on its own task queue with that queue's worker settings; hashing runs in a process
pool so the case worker keeps answering; a worker stopped mid-upload leaves the upload to resume cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.api.enums.v1 import EventType, PendingActivityState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle

from models.case import CaseStart, CaseState, ContentItem, MediaSource, ReviewPolicy
from tests.helpers import ORG, Sandbox, eventually
from tests.test_durable_filing import (
    WorkerProcess,
    assert_exactly_one_finished,
    reports_of,
    submitted_case,
    wait_until_filed,
)
from tipline.evidence import EvidenceStore
from tipline.settings import Settings
from tipline.synthetic import synthetic_image
from worker import case_worker
from workflows import task_queues as tq

NCMEC_ACTIVITIES = {"open_report", "send_files", "finish_report"}


async def scheduled_queues(client: Client, workflow_id: str) -> dict[str, set[str]]:
    """Activity type -> the task queues it was scheduled on, over the workflow and its children."""
    queues: dict[str, set[str]] = {}
    pending = [workflow_id]
    while pending:
        history = await client.get_workflow_handle(pending.pop()).fetch_history()
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                queues.setdefault(attributes.activity_type.name, set()).add(attributes.task_queue.name)
            elif event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                pending.append(event.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id)
    return queues


async def pollers(client: Client, queue: str) -> int:
    request = DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    return len((await client.workflow_service.describe_task_queue(request)).pollers)


async def test_a_filed_case_ran_its_activities_on_their_queues(
        api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client) -> None:
    case_ref, _ = await submitted_case(api, api_keys, files=1)
    await wait_until_filed(api, api_keys, case_ref)
    queues = await scheduled_queues(temporal_client, case_ref)
    base = settings.task_queue
    detection = {name for name in queues if name.startswith("analyze_media")}
    assert detection, queues
    for name in detection:
        assert queues[name] == {f"{base}-detection"}, (name, queues[name])
    assert set(queues) >= NCMEC_ACTIVITIES, queues
    for name in NCMEC_ACTIVITIES:
        assert queues[name] == {f"{base}-ncmec-{ORG}"}, (name, queues[name])
    # Nothing but the case's own database writes stayed on the case queue (a case that closed within the test
    # also exported its history there).
    assert not {name for name, names in queues.items() if base in names} - {
        "record_triage", "close_triage", "enqueue_in_case", "export_case_history"}, queues
    for queue in (f"{base}-detection", f"{base}-platform", f"{base}-ncmec-{ORG}", base):
        assert await pollers(temporal_client, queue), f"nobody polls {queue}"


async def test_each_queue_gets_its_own_worker_settings_and_a_process_serves_only_the_queues_it_names(
        temporal_client: Client, settings: Settings, engine: Engine) -> None:
    local = settings.model_copy(update={
        "task_queue": f"tipline-tq-{uuid.uuid4().hex[:8]}", "worker_queues": ["ncmec", "platform"],
        "ncmec_activities_per_second": 0.5, "ncmec_max_concurrent_activities": 3,
        "platform_max_concurrent_activities": 7, "ncmec_shutdown_grace_seconds": 90})
    async with case_worker(temporal_client, local, engine) as workers:
        assert set(workers.by_role) == {"ncmec", "platform"} and workers.hashing is None
        ncmec = {worker.task_queue: worker.config() for worker in workers.by_role["ncmec"]}
        # One queue per org: the server-side rate limit of each is that org's alone.
        assert set(ncmec) == {tq.queue_name(local.task_queue, tq.NCMEC, org) for org in local.orgs.orgs}
        for config in ncmec.values():
            assert config["max_task_queue_activities_per_second"] == 0.5
            assert config["max_concurrent_activities"] == 3
            assert config["graceful_shutdown_timeout"].total_seconds() == 90
        [platform] = workers.by_role["platform"]
        assert platform.config()["max_concurrent_activities"] == 7
        assert platform.config().get("max_task_queue_activities_per_second") is None
        assert not await pollers(temporal_client, local.task_queue)  # no case worker in this process


def test_the_queues_a_process_serves_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIPLINE_WORKER_QUEUES", "cases, detection")
    assert Settings().worker_queues == ["cases", "detection"]
    monkeypatch.setenv("TIPLINE_WORKER_QUEUES", "cases,hashing")
    with pytest.raises(ValueError, match="worker_queues"):
        Settings()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_hashing_runs_in_the_pool_while_the_case_worker_answers_queries_promptly(
        temporal_client: Client, settings: Settings, engine: Engine) -> None:
    local = settings.model_copy(update={"task_queue": f"tipline-pool-{uuid.uuid4().hex[:8]}",
                                        "detection_processes": 2})
    store = EvidenceStore.from_settings(local)
    user_id = f"pool-user-{uuid.uuid4().hex[:6]}"
    images = await asyncio.gather(*(asyncio.to_thread(synthetic_image, 9100 + n, size=(2400, 2400))
                                    for n in range(12)))
    evidence = [await asyncio.to_thread(store.put_bytes, image) for image in images]

    def item(n: int) -> ContentItem:
        return ContentItem(content_id=f"big-{n}", org_id=ORG, user_id=user_id,
                           media=MediaSource(evidence=evidence[n]), file_name=f"big-{n}.png",
                           content_type="image/png", received_at=datetime.now(UTC))

    async with case_worker(temporal_client, local, engine) as workers:
        assert workers.hashing is not None
        pool_pids = await eventually(lambda: _ready_pids(workers.hashing), what="the hashing processes")
        before = sum(cpu_seconds(pid) for pid in pool_pids)
        handle: WorkflowHandle = await temporal_client.start_workflow(
            "CaseWorkflow", CaseStart(org_id=ORG, user_id=user_id, review=ReviewPolicy()),
            id=f"case-pool-{uuid.uuid4().hex[:10]}", task_queue=local.task_queue, start_signal="add_content",
            start_signal_args=[item(0)])
        for n in range(1, len(evidence)):
            await handle.signal("add_content", item(n))
        slowest, queries = 0.0, 0
        while True:
            started = time.perf_counter()
            case = await handle.query("case", result_type=CaseState)
            slowest, queries = max(slowest, time.perf_counter() - started), queries + 1
            if len(case.media) == len(evidence) and all(m.analysis is not None for m in case.media):
                break
            await asyncio.sleep(0.02)
        await handle.terminate("test over")
        hashed_in_pool = sum(cpu_seconds(pid) for pid in pool_pids) - before
    assert all(m.analysis is not None and m.analysis.pdq for m in case.media), case.media
    # The hashing burned its CPU in the pool's processes, not in the worker's.
    assert hashed_in_pool > 0.5, hashed_in_pool
    assert queries >= 3
    # Generous for a shared 2-core machine; a stalled worker takes seconds per query.
    assert slowest < 2.0, f"a query waited {slowest:.2f} s while media hashed"


REPO = Path(__file__).resolve().parents[1]
HOLDS_A_POOL = """
import json, sys
from pathlib import Path
from activities.hashing_pool import HashingPool
from tipline.settings import Settings
pool = HashingPool(Settings(data_dir=Path(sys.argv[1])), 2)
pool.warm_up()
print(json.dumps(pool.pids()), flush=True)
sys.stdin.read()  # until the test kills it
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent (here init) has not reaped it yet


def test_a_hash_that_takes_long_keeps_its_activity_heartbeating(settings: Settings) -> None:
    """The activity blocks on the pool while an item is hashed: it heartbeats meanwhile, so a short heartbeat
    timeout tells a dead worker from a slow item (here the pool's first process still starting)."""
    from activities.hashing_pool import HashingPool
    from detection.media_hashes import MediaHashes

    store = EvidenceStore.from_settings(settings)
    evidence = store.put_bytes(synthetic_image(901, size=(64, 48)))
    pool = HashingPool(settings, 1)
    beats: list[float] = []
    try:
        hashes = MediaHashes.model_validate_json(
            pool.hash(evidence, dihedral=False, while_waiting=lambda: beats.append(time.monotonic()), every=0.02))
    finally:
        pool.shutdown()
    assert hashes.image is not None and hashes.image.pdq
    assert beats, "no heartbeat while the process started and hashed"


async def test_the_hashing_processes_of_a_worker_killed_outright_exit_with_it(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a supervisor giving up) gives the worker no chance to stop its pool: the pool's
    processes notice and exit instead of living on, one set more for every restart."""
    worker = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLDS_A_POOL, str(tmp_path),
                                                  stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                  cwd=REPO)
    try:
        assert worker.stdout is not None
        pids = json.loads(await asyncio.wait_for(worker.stdout.readline(), 60))
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    finally:
        worker.kill()
        await worker.wait()

    async def all_gone() -> bool:
        return not any(_alive(pid) for pid in pids)

    await eventually(all_gone, timeout=20, what="the pool's processes to exit with their worker")


async def _ready_pids(pool: object) -> list[int] | None:
    pids = pool.pids()  # type: ignore[attr-defined]
    return pids if len(pids) == 2 else None


async def test_a_worker_stopped_mid_upload_drains_and_the_upload_resumes_on_the_next_worker(
        settings: Settings, temporal_client: Client, engine: Engine, api_keys: dict, sandbox: Sandbox,
        tmp_path: Path) -> None:
    from api.app import create_app

    local = settings.model_copy(update={
        "task_queue": f"tipline-stop-{uuid.uuid4().hex[:8]}", "ncmec_call_timeout_seconds": 5,
        "upload_heartbeat_timeout_seconds": 2, "upload_concurrency": 1})
    app = create_app(local, temporal=temporal_client, engine=engine)
    worker = WorkerProcess(local, tmp_path / "worker.log")
    # The upload outlives the stopping worker's grace: it is cancelled, and must be retried from the start.
    worker.environment = lambda: {**WorkerProcess.environment(worker),  # type: ignore[method-assign]
                                  "TIPLINE_NCMEC_SHUTDOWN_GRACE_SECONDS": "0.5"}
    worker.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as api:
            sandbox.state.faults.configure(latency_ms=3000)
            case_ref, creator = await submitted_case(api, api_keys, files=1)
            handle = temporal_client.get_workflow_handle(case_ref)

            async def uploading() -> bool:
                for workflow_id in await _family(temporal_client, case_ref):
                    described = await temporal_client.get_workflow_handle(workflow_id).describe()
                    if any(p.activity_type.name == "send_files"
                           and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                           for p in described.raw_description.pending_activities):
                        return True
                return False

            await eventually(uploading, timeout=60, interval=0.05, what="an upload in flight")
            assert worker.process is not None
            worker.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.process.wait, 30) == 0, "the worker did not stop cleanly"
            worker.process = None
            assert "Traceback" not in (tmp_path / "worker.log").read_text()
            sandbox.state.faults.configure(latency_ms=0)
            worker.start()
            case = await wait_until_filed(api, api_keys, case_ref)
            report = assert_exactly_one_finished(await reports_of(sandbox, creator), files=1)
            assert report["report_id"] == case["filing"]["report_id"]
            assert handle is not None
    finally:
        sandbox.state.faults.reset()
        if worker.process is not None:
            worker.kill()


async def _family(client: Client, workflow_id: str) -> list[str]:
    ids, pending = [], [workflow_id]
    while pending:
        current = pending.pop()
        ids.append(current)
        history = await client.get_workflow_handle(current).fetch_history()
        pending += [e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
                    for e in history.events if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED]
    return ids
