"""The Temporal worker: case workflows and the activities that touch the outside world, one worker per task
queue (workflows.task_queues), each with its own slots; a process serves the queues ``worker_queues`` names.

The workflows poll first: they need no database, evidence store or HTTP client, so this module imports only
what they do, and the activities' libraries (SQLAlchemy, the store, the hashers) load once they poll. A
restarted worker takes workflow tasks within a second of its start."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import temporalio
from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.case_index import CaseIndexActivities
from models.retention_messages import RetentionStart
from tipline.filing_watch import watch_filings
from tipline.logging import get_logger
from tipline.settings import Settings
from tipline.shutdown import cancel_on_sigterm
from tipline.temporal import connect, metrics_runtime
from workflows import task_queues as tq
from workflows.case import CaseWorkflow
from workflows.case_filing_workflow import CaseFilingWorkflow
from workflows.history_export import CaseHistoryExportWorkflow
from workflows.retention import RetentionWorkflow, retention_workflow_id
from workflows.screening import ScreeningWorkflow

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from activities.detection import DetectionActivities
    from activities.hashing_pool import HashingPool
    from tipline.egress import EgressClient
    from tipline.metrics import MetricsServer

log = get_logger(__name__)
# Every workflow type this worker runs; tests/test_replay.py replays the recorded histories against them.
WORKFLOWS = [CaseWorkflow, CaseFilingWorkflow, ScreeningWorkflow, RetentionWorkflow,
             CaseHistoryExportWorkflow]
# Tipline's own packages are imported once, not again for every workflow a worker loads: the sandbox's
# re-import cost about 40 ms per case, and a worker that restarts replays every case it takes over (a hundred cases,
# four seconds of a 2-core machine). They keep no module state. The replay tests run every recorded history in the
# full sandbox (tests/test_replay.py), so a nondeterministic call in workflow code still fails there.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(
    "workflows", "models", "activities", "tipline", "detection", "cybertipline"))
# The packages whose code the worker runs (pyproject's package list): the build id is a digest of them.
CODE = ("tipline", "workflows", "activities", "api", "models", "cybertipline", "detection")
# What the activities need and the workflows do not: SQLAlchemy, the evidence store, the hashers. They load
# while the workflows already poll.
ACTIVITY_LIBRARIES = ("activities.hashing_pool", "tipline.audit_log", "tipline.db", "tipline.evidence",
                      "tipline.history_export", "tipline.purge")
# A sync activity's thread is taken before its slot is: a few spare threads keep local activities from waiting.
SPARE_THREADS = 4


@dataclass
class QueueWorkers:
    """The workers one process runs, by role (workflows.task_queues); NCMEC has one per org."""

    by_role: dict[str, list[Worker]] = field(default_factory=dict)
    hashing: HashingPool | None = None
    # The database the activities use, once they are set up (the workflows poll before it is open).
    engine: Engine | None = None
    runs: list[asyncio.Task[None]] = field(default_factory=list)

    def all(self) -> list[Worker]:
        return [worker for workers in self.by_role.values() for worker in workers]

    def start(self, role: str, worker: Worker) -> None:
        self.by_role.setdefault(role, []).append(worker)
        self.runs.append(asyncio.create_task(worker.run()))

    async def shutdown(self) -> None:
        # Together, not one after another: each drains within its own grace period.
        await asyncio.gather(*(worker.shutdown() for worker in self.all()), return_exceptions=True)
        await asyncio.gather(*self.runs)

    async def until_one_fails(self) -> None:
        """Wait while every worker runs; a worker that stops on its own (a fatal poll error) ends the process,
        so its supervisor restarts it whole instead of leaving some queues unserved."""
        done, _ = await asyncio.wait(self.runs, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        raise RuntimeError("a worker stopped on its own")


@asynccontextmanager
async def case_worker(client: Client, settings: Settings, engine: Engine | None = None, *,
                      run_workflows: bool = True,
                      activity_overrides: Sequence[Callable[..., Any]] = ()) -> AsyncIterator[QueueWorkers]:
    """One worker per task queue this process serves (``settings.worker_queues``), and the case queue's workflows
    on a worker of their own, started first; they drain and stop together when the block exits.

    Without ``engine`` the worker opens its own database once the workflows poll, and closes it at the end.
    Tests may run them without workflows, or with some activities swapped for their own by activity name."""
    workers = QueueWorkers()
    # The case's local activities run where its workflow does; they wait for the database opened below.
    index = CaseIndexActivities(engine)
    swapped = {_activity_name(a): a for a in activity_overrides}
    with ThreadPoolExecutor(max_workers=settings.cases_max_concurrent_activities + SPARE_THREADS,
                            thread_name_prefix="local-activity") as local_threads:
        try:
            if run_workflows and tq.CASES in settings.worker_queues:
                local = [swapped.get(_activity_name(a), a) for a in (index.publish_case_summary, index.user_history)]
                workers.start(tq.CASES, _workflow_worker(client, settings, local, local_threads))
            # On a thread, so the workflow worker's start goes on while they load (each import lets go of the GIL).
            await asyncio.to_thread(_load, ACTIVITY_LIBRARIES)
            async with _activity_workers(client, settings, engine, index, workers, swapped):
                yield workers
        finally:
            await workers.shutdown()


def _load(modules: Sequence[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def _workflow_worker(client: Client, settings: Settings, local_activities: list[Callable[..., Any]],
                     executor: ThreadPoolExecutor) -> Worker:
    """The case queue's workflows and their local activities; the queue's activity tasks go to its activity worker,
    which registers every activity (this one would fail those it lacks)."""
    return Worker(client, task_queue=tq.queue_name(settings.task_queue, tq.CASES), workflows=WORKFLOWS,
                  workflow_runner=WORKFLOW_RUNNER,
                  activities=local_activities, activity_executor=executor, no_remote_activities=True,
                  max_concurrent_workflow_tasks=settings.cases_max_concurrent_workflow_tasks,
                  max_cached_workflows=settings.cases_max_cached_workflows, build_id=code_build_id(),
                  sticky_queue_schedule_to_start_timeout=timedelta(
                      seconds=settings.cases_sticky_schedule_to_start_seconds),
                  graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_seconds))


@asynccontextmanager
async def _activity_workers(client: Client, settings: Settings, engine: Engine | None, index: CaseIndexActivities,
                            workers: QueueWorkers, swapped: dict[str, Callable[..., Any]]) -> AsyncIterator[None]:
    # Imported here (loaded by then: ACTIVITY_LIBRARIES), so the workflows need not wait for them.
    from activities.detection import DetectionActivities
    from activities.filing import FilingActivities
    from activities.hashing_pool import HashingPool
    from activities.history_export import HistoryExportActivities
    from activities.media import MediaActivities
    from activities.notifications import NotificationActivities
    from activities.platform_callbacks import PlatformCallbackActivities
    from activities.retention import RetentionActivities
    from activities.triage import TriageActivities
    from tipline.audit_log import AuditLog
    from tipline.db import make_engine
    from tipline.evidence import EvidenceStore
    from tipline.history_export import HistoryExporter
    from tipline.purge import Purger

    own_engine = engine is None
    engine = make_engine(settings.resolved_database_url) if engine is None else engine
    workers.engine = engine
    index.attach(engine)
    store = EvidenceStore.from_settings(settings)
    filing = FilingActivities(settings, engine, store)
    serves_detection = tq.DETECTION in settings.worker_queues
    hashing = HashingPool(settings, settings.detection_processes) \
        if serves_detection and settings.detection_processes else None
    workers.hashing = hashing
    detection = DetectionActivities(settings, store, engine, hashing)
    triage = TriageActivities(settings, engine, client)
    audit = AuditLog.from_settings(settings, engine)
    retention = RetentionActivities(Purger(engine, store, audit, settings.orgs))
    history = HistoryExportActivities(HistoryExporter(engine, store, client, audit))
    # Every request made on a platform's behalf goes through this one guarded client (tipline.egress).
    async with egress_client(settings) as egress:
        media = MediaActivities(settings, store, egress)
        notifications = NotificationActivities(settings, egress)
        callbacks = PlatformCallbackActivities(settings, engine, egress)
        by_role: dict[str, list[Callable[..., Any]]] = {
            tq.CASES: [index.publish_case_summary, index.user_history,
                       triage.record_triage, triage.close_triage, triage.enqueue_in_case,
                       retention.find_due_cases, retention.purge_case, history.export_case_history],
            tq.DETECTION: [detection.analyze_media, detection.analyze_media_batch, detection.classify_media,
                           detection.bank_reported_media],
            tq.NCMEC: [filing.open_report, filing.upload_file, filing.send_file_details, filing.send_files,
                       filing.finish_report, filing.abandon_report, filing.upload_conversation,
                       filing.send_conversation_details],
            tq.PLATFORM: [media.preserve_media, media.preserve_media_batch, notifications.notify_escalation,
                          callbacks.enrich_user, callbacks.list_user_media],
        }
        by_role = {role: [swapped.get(_activity_name(a), a) for a in activities]
                   for role, activities in by_role.items()}
        with contextlib.ExitStack() as pools:
            for role in settings.worker_queues:
                for queue in _queues(settings, role):
                    workers.start(role, _activity_worker(client, settings, role, queue, by_role, pools))
            if hashing is not None:
                pools.callback(hashing.shutdown)
            preparing = asyncio.create_task(_prepare_detection(client, settings, detection)) \
                if serves_detection else None
            try:
                yield
            finally:
                if preparing is not None:
                    preparing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await preparing
                await workers.shutdown()
                await filing.aclose()
                if own_engine:
                    engine.dispose()


def _queues(settings: Settings, role: str) -> list[str]:
    if role == tq.NCMEC:
        # One queue per org, so Temporal's rate limit on a queue is a rate limit per org.
        return [tq.queue_name(settings.task_queue, role, org_id) for org_id in settings.orgs.orgs]
    return [tq.queue_name(settings.task_queue, role)]


def _activity_worker(client: Client, settings: Settings, role: str, queue: str,
                     by_role: dict[str, list[Callable[..., Any]]], pools: contextlib.ExitStack) -> Worker:
    """The activity worker for one queue, with that queue's slots, rate limit and shutdown grace."""
    options: dict[str, Any] = {"graceful_shutdown_timeout": timedelta(seconds=settings.worker_shutdown_grace_seconds)}
    if role == tq.CASES:
        # Besides its own, the case queue keeps every activity registered: those a workflow scheduled here
        # before the queues were split (or from a worker still on older code) still run.
        activities = [a for activities in by_role.values() for a in activities]
        slots = settings.cases_max_concurrent_activities
    elif role == tq.DETECTION:
        activities, slots = by_role[role], settings.detection_max_concurrent_activities
    elif role == tq.NCMEC:
        activities, slots = by_role[role], settings.ncmec_max_concurrent_activities
        options.update(max_task_queue_activities_per_second=settings.ncmec_activities_per_second,
                       # An upload may take long: let it finish rather than send it again from the start.
                       graceful_shutdown_timeout=timedelta(seconds=settings.ncmec_shutdown_grace_seconds),
                       # Two pollers per org are plenty at NCMEC's rates and keep many orgs cheap.
                       activity_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=2))
    else:
        activities, slots = by_role[role], settings.platform_max_concurrent_activities
    executor = pools.enter_context(ThreadPoolExecutor(max_workers=slots + SPARE_THREADS,
                                                      thread_name_prefix=f"activity-{role}"))
    return Worker(client, task_queue=queue, activities=activities, activity_executor=executor,
                  max_concurrent_activities=slots, build_id=code_build_id(), **options)


def _activity_name(function: Callable[..., Any]) -> str:
    definition = activity._Definition.must_from_callable(function)
    return definition.name or function.__name__


async def _prepare_detection(client: Client, settings: Settings, detection: DetectionActivities) -> None:
    # The banks and the compiled scan load once the worker polls (detection activities wait for them): their
    # imports hold the GIL, and would otherwise slow the worker's own start.
    await _until_polling(client, tq.queue_name(settings.task_queue, tq.DETECTION),
                         TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    try:
        # Side by side: the hashing processes start on the other cores while this one loads the banks.
        steps = [asyncio.to_thread(detection.prepare)]
        if detection.hashing is not None:
            steps.append(asyncio.to_thread(detection.hashing.warm_up))
        await asyncio.gather(*steps)
    except Exception:
        # The first detection activity prepares again, and fails visibly (and retries) if it still cannot.
        log.warning("worker.detection_prepare_failed", exc_info=True)


async def _until_polling(client: Client, task_queue: str, queue_type: TaskQueueType.ValueType,
                         patience: float = 5.0) -> None:
    """Return once Temporal lists this worker among the queue's pollers, or after ``patience`` seconds."""
    request = DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
                                       task_queue_type=queue_type)
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + patience
    while loop.time() < give_up_at:
        with contextlib.suppress(RPCError):
            pollers = (await client.workflow_service.describe_task_queue(request)).pollers
            if any(poller.identity == client.identity for poller in pollers):
                return
        await asyncio.sleep(0.05)


@functools.cache
def code_build_id() -> str:
    """A digest of Tipline's sources and the SDK's version: it changes whenever the code the worker runs does.

    Temporal's default hashes the bytecode of every loaded module (over a thousand files read, some compiled),
    which took most of a second of the worker's start."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256(temporalio.__version__.encode())
    for path in sorted([root / "worker.py", *(p for package in CODE for p in (root / package).rglob("*.py"))]):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"tipline-{digest.hexdigest()[:16]}"


def egress_client(settings: Settings, ssl_context: ssl.SSLContext | None = None) -> EgressClient:
    from tipline.egress import EgressClient, EgressTimeouts, parse_exemption

    return EgressClient(
        ssl_context=ssl_context,
        exemptions=[parse_exemption(entry) for entry in settings.egress_private_exemptions],
        timeouts=EgressTimeouts(connect=settings.egress_connect_timeout_seconds,
                                read=settings.egress_read_timeout_seconds,
                                total=settings.media_fetch_timeout_seconds),
    )


async def run(settings: Settings) -> None:
    cancel_on_sigterm()  # drain running activities on docker stop / systemd, as on Ctrl-C
    runtime = metrics_runtime(settings.temporal_sdk_metrics_address) if settings.temporal_sdk_metrics_address else None
    client = await connect_patiently(settings, runtime)
    async with case_worker(client, settings) as workers:
        assert workers.engine is not None
        with worker_metrics(settings, workers.engine):
            log.info("worker.started", queues=sorted({w.task_queue for w in workers.all()}))
            if tq.CASES in settings.worker_queues:  # the retention workflow runs where the workflows do
                await start_retention_clock(client, settings)
            # Filing attempts that end without telling their case (terminated, timed out) are noticed here.
            watching = asyncio.create_task(watch_filings(client)) if tq.CASES in settings.worker_queues else None
            try:
                await workers.until_one_fails()
            finally:
                if watching is not None:
                    watching.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watching


async def start_retention_clock(client: Client, settings: Settings) -> None:
    """The one retention workflow of the deployment; every worker asks, the first start wins, the rest join it."""
    await client.start_workflow(RetentionWorkflow.run, RetentionStart(), id=retention_workflow_id(settings.task_queue),
                                task_queue=settings.task_queue,
                                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)


@contextmanager
def worker_metrics(settings: Settings, engine: Engine) -> Iterator[MetricsServer | None]:
    """Tipline's metrics on ``worker_metrics_address`` while the block runs; nothing when it is unset."""
    if not settings.worker_metrics_address:
        yield None
        return
    from tipline.metrics import metrics_registry, start_metrics_server

    server = start_metrics_server(settings.worker_metrics_address, metrics_registry(engine),
                                  "TIPLINE_WORKER_METRICS_ADDRESS")
    try:
        yield server
    finally:
        server.stop()


async def connect_patiently(settings: Settings, runtime: Runtime | None = None) -> Client:
    """Connect to Temporal, waiting while it is down (restarting, or not up yet) instead of exiting."""
    delay = 0.1
    while True:
        try:
            return await connect(settings, runtime)
        except RuntimeError as error:
            log.warning("worker.temporal_unreachable", retry_in=delay, error=str(error)[:600])
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


if __name__ == "__main__":
    from tipline.logging import configure_logging

    configure_logging()
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run(Settings()))
