"""The Temporal worker: runs case workflows and the activities that touch the outside world."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.case_index import CaseIndexActivities
from activities.detection import DetectionActivities
from activities.filing import FilingActivities
from activities.media import MediaActivities
from activities.notifications import NotificationActivities
from activities.platform_callbacks import PlatformCallbackActivities
from activities.retention import RetentionActivities
from activities.triage import TriageActivities
from models.retention import RetentionStart
from tipline.audit_log import AuditLog
from tipline.db import make_engine
from tipline.egress import EgressClient, EgressTimeouts, parse_exemption
from tipline.evidence import EvidenceStore
from tipline.logging import get_logger
from tipline.metrics import MetricsServer, metrics_registry, start_metrics_server
from tipline.purge import Purger
from tipline.settings import Settings
from tipline.shutdown import cancel_on_sigterm
from tipline.temporal import connect, metrics_runtime
from workflows.case import CaseWorkflow
from workflows.case_filing_workflow import CaseFilingWorkflow
from workflows.retention import RETENTION_WORKFLOW_ID, RetentionWorkflow
from workflows.screening import ScreeningWorkflow

log = get_logger(__name__)
MAX_ACTIVITIES = 8
# Every workflow type this worker runs; tests/test_replay.py replays the recorded histories against them.
WORKFLOWS = [CaseWorkflow, CaseFilingWorkflow, ScreeningWorkflow, RetentionWorkflow]


@asynccontextmanager
async def case_worker(client: Client, settings: Settings, engine: Engine, *, run_workflows: bool = True,
                      activity_overrides: Sequence[Callable[..., Any]] = ()) -> AsyncIterator[Worker]:
    """A running worker for the case task queue; it drains and stops when the block exits.

    Tests may run it without workflows, or with some activities swapped for their own by activity name."""
    store = EvidenceStore.from_settings(settings)
    index = CaseIndexActivities(engine)
    filing = FilingActivities(settings, engine, store)
    detection = DetectionActivities(settings, store, engine)
    triage = TriageActivities(settings, engine, client)
    retention = RetentionActivities(Purger(engine, store, AuditLog.from_settings(settings, engine), settings.orgs))
    # Every request made on a platform's behalf goes through this one guarded client (tipline.egress).
    async with egress_client(settings) as egress:
        media = MediaActivities(settings, store, egress)
        notifications = NotificationActivities(settings, egress)
        callbacks = PlatformCallbackActivities(settings, engine, egress)
        # More threads than activities may run at once: the quick local activities (queue rows, history) must
        # never wait behind CPU-heavy hashing.
        with ThreadPoolExecutor(max_workers=MAX_ACTIVITIES + 8, thread_name_prefix="activity") as executor:
            activities = [
                index.publish_case_summary, index.user_history,
                media.preserve_media, media.preserve_media_batch,
                filing.open_report, filing.upload_file, filing.send_file_details, filing.finish_report,
                filing.abandon_report, filing.upload_conversation, filing.send_conversation_details,
                notifications.notify_escalation, callbacks.enrich_user, callbacks.list_user_media,
                detection.analyze_media, detection.analyze_media_batch, detection.classify_media,
                detection.bank_reported_media,
                triage.record_triage, triage.close_triage, triage.enqueue_in_case,
                retention.find_due_cases, retention.purge_case,
            ]
            swapped = {_activity_name(a) for a in activity_overrides}
            worker = Worker(
                client,
                task_queue=settings.task_queue,
                workflows=WORKFLOWS if run_workflows else [],
                activities=[*(a for a in activities if _activity_name(a) not in swapped), *activity_overrides],
                activity_executor=executor,
                max_concurrent_activities=MAX_ACTIVITIES,
                # Let running activities finish their database work instead of being cancelled mid-call.
                graceful_shutdown_timeout=timedelta(seconds=15),
            )
            async with worker:
                # The banks and the compiled scan load once the worker polls (detection activities wait for
                # them): their imports hold the GIL, and would otherwise slow the worker's own start.
                preparing = asyncio.create_task(_prepare_detection(client, settings.task_queue, detection))
                try:
                    yield worker
                finally:
                    preparing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await preparing


def _activity_name(function: Callable[..., Any]) -> str:
    definition = activity._Definition.must_from_callable(function)
    return definition.name or function.__name__


async def _prepare_detection(client: Client, task_queue: str, detection: DetectionActivities) -> None:
    await _until_polling(client, task_queue)
    try:
        await asyncio.to_thread(detection.prepare)
    except Exception:
        # The first detection activity prepares again, and fails visibly (and retries) if it still cannot.
        log.warning("worker.detection_prepare_failed", exc_info=True)


async def _until_polling(client: Client, task_queue: str, patience: float = 5.0) -> None:
    """Return once Temporal lists this worker among the queue's pollers, or after ``patience`` seconds."""
    request = DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + patience
    while loop.time() < give_up_at:
        with contextlib.suppress(RPCError):
            pollers = (await client.workflow_service.describe_task_queue(request)).pollers
            if any(poller.identity == client.identity for poller in pollers):
                return
        await asyncio.sleep(0.05)


def egress_client(settings: Settings) -> EgressClient:
    return EgressClient(
        exemptions=[parse_exemption(entry) for entry in settings.egress_private_exemptions],
        timeouts=EgressTimeouts(connect=settings.egress_connect_timeout_seconds,
                                read=settings.egress_read_timeout_seconds,
                                total=settings.media_fetch_timeout_seconds),
    )


async def run(settings: Settings) -> None:
    cancel_on_sigterm()  # drain running activities on docker stop / systemd, as on Ctrl-C
    runtime = metrics_runtime(settings.temporal_sdk_metrics_address) if settings.temporal_sdk_metrics_address else None
    client = await connect_patiently(settings, runtime)
    engine = make_engine(settings.resolved_database_url)
    with worker_metrics(settings, engine):
        async with case_worker(client, settings, engine):
            await start_retention_clock(client, settings)
            await asyncio.Event().wait()


async def start_retention_clock(client: Client, settings: Settings) -> None:
    """The one retention workflow of the deployment; every worker asks, the first start wins, the rest join it."""
    await client.start_workflow(RetentionWorkflow.run, RetentionStart(), id=RETENTION_WORKFLOW_ID,
                                task_queue=settings.task_queue,
                                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)


@contextmanager
def worker_metrics(settings: Settings, engine: Engine) -> Iterator[MetricsServer | None]:
    """Tipline's metrics on ``worker_metrics_address`` while the block runs; nothing when it is unset."""
    if not settings.worker_metrics_address:
        yield None
        return
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
            log.warning("worker.temporal_unreachable", retry_in=delay, error=str(error)[:200])
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


if __name__ == "__main__":
    from tipline.logging import configure_logging

    configure_logging()
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run(Settings()))
