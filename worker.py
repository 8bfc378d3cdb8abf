"""The Temporal worker: runs case workflows and the activities that touch the outside world."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.case_index import CaseIndexActivities
from activities.detection import DetectionActivities
from activities.filing import FilingActivities
from activities.media import MediaActivities
from activities.notifications import NotificationActivities
from activities.platform_callbacks import PlatformCallbackActivities
from activities.triage import TriageActivities
from detection import pdq_index
from detection.matcher import BankMatcher
from tipline.db import make_engine
from tipline.evidence import EvidenceStore
from tipline.settings import Settings
from tipline.shutdown import cancel_on_sigterm
from tipline.temporal import connect
from workflows.case import CaseWorkflow
from workflows.case_filing_workflow import CaseFilingWorkflow
from workflows.screening import ScreeningWorkflow

MAX_ACTIVITIES = 8


@asynccontextmanager
async def case_worker(client: Client, settings: Settings, engine: Engine) -> AsyncIterator[Worker]:
    """A running worker for the case task queue; it drains and stops when the block exits."""
    store = EvidenceStore.from_settings(settings)
    index = CaseIndexActivities(engine)
    filing = FilingActivities(settings, engine, store)
    matcher = BankMatcher(engine, snapshot_dir=settings.data_dir / "bank-snapshots")
    await asyncio.to_thread(matcher.load)
    await asyncio.to_thread(pdq_index.warm_up)
    detection = DetectionActivities(settings, store, matcher)
    triage = TriageActivities(settings, engine, client)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), follow_redirects=True) as http:
        media = MediaActivities(store, http)
        notifications = NotificationActivities(settings, http)
        callbacks = PlatformCallbackActivities(settings, http)
        # More threads than activities may run at once: the quick local activities (queue rows, history) must
        # never wait behind CPU-heavy hashing.
        with ThreadPoolExecutor(max_workers=MAX_ACTIVITIES + 8, thread_name_prefix="activity") as executor:
            worker = Worker(
                client,
                task_queue=settings.task_queue,
                workflows=[CaseWorkflow, CaseFilingWorkflow, ScreeningWorkflow],
                activities=[
                    index.publish_case_summary, index.user_history,
                    media.preserve_media, media.preserve_media_batch,
                    filing.open_report, filing.upload_file, filing.send_file_details, filing.finish_report,
                    filing.abandon_report, filing.upload_conversation, filing.send_conversation_details,
                    notifications.notify_escalation, callbacks.enrich_user, callbacks.list_user_media,
                    detection.analyze_media, detection.analyze_media_batch, detection.classify_media,
                    detection.bank_reported_media,
                    triage.record_triage, triage.close_triage, triage.enqueue_in_case,
                ],
                activity_executor=executor,
                max_concurrent_activities=MAX_ACTIVITIES,
                # Let running activities finish their database work instead of being cancelled mid-call.
                graceful_shutdown_timeout=timedelta(seconds=15),
            )
            async with worker:
                yield worker


async def run(settings: Settings) -> None:
    cancel_on_sigterm()  # drain running activities on docker stop / systemd, as on Ctrl-C
    client = await connect(settings)
    engine = make_engine(settings.resolved_database_url)
    async with case_worker(client, settings, engine):
        await asyncio.Event().wait()


if __name__ == "__main__":
    from tipline.logging import configure_logging

    configure_logging()
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run(Settings()))
