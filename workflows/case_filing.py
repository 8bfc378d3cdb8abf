"""Filing a decided case's CyberTip, step by step from the last completed checkpoint, within NCMEC's deadline.

A mixin of ``CaseWorkflow``: it reads and changes the case's state; the workflow decides when it runs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.detection import DetectionActivities
    from activities.filing import REPORT_GONE_ERROR as REPORT_GONE
    from activities.filing import FilingActivities
    from activities.platform_callbacks import PlatformCallbackActivities
    from models.case import CaseState, CaseStatus, FiledConversation, FiledFile, FilingPolicy
    from models.deadlines import ncmec_deletion_time
    from models.filing import (
        AbandonReportInput,
        BankReportedMediaInput,
        ConversationDetailsInput,
        EnrichUserInput,
        FileDetailsInput,
        FileToSend,
        FinishReportInput,
        OpenReportInput,
        ReportedMedia,
        SendFilesInput,
        UploadConversationInput,
        UploadFileInput,
    )
    from models.platform_metadata import merge_user_metadata
    from workflows import task_queues
    from workflows.errors import error_type, reviewer_safe_reason

# Transient NCMEC failures (network, 5xx, 1xxx codes) are retried with backoff; permanent ones are
# raised by the activities as non-retryable and put the case in "needs attention".
NCMEC_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                          maximum_interval=timedelta(minutes=5))


# Failures no retry of the same decision can get past. NCMEC's own refusals are not among them: their causes (the
# account's rights, the org's settings, a schema change) are fixed outside the case, and then it is retried.
CANNOT_BE_FILED_AS_DECIDED = frozenset({"EvidenceCorrupted"})
FILES_IN_A_SLIDING_WINDOW_PATCH = "files-in-a-sliding-window"
# Marks runs that send a report's files in batches, one activity each (upload and description of up to
# FILES_PER_BATCH files); older runs took two activities per file, a Temporal round trip each.
FILES_IN_BATCHES_PATCH = "files-sent-in-batches"
FILES_PER_BATCH = 20
# A batch's files go one activity: a few large videos are not held to one retry and one timeout.
BATCH_BYTES = 256 << 20


def _refused_for_good(error: BaseException) -> bool:
    return (isinstance(error, ActivityError) and isinstance(error.cause, ApplicationError)
            and error.cause.type in CANNOT_BE_FILED_AS_DECIDED)


class OutOfTime(Exception):
    """Too close to NCMEC's deletion time to go on with this report."""


class CaseFilingSteps:
    state: CaseState
    policy: FilingPolicy
    _changed: bool
    # Runs before the sliding window told the case after each upload: a signal and a workflow task per file. The
    # filing's own history holds each checkpoint; the case hears of the report at its opening and at the end.
    _progress_after_each_upload: bool = True

    async def _publish(self) -> None:
        raise NotImplementedError

    async def _bank_reported_media(self) -> None:
        """Reported media joins the org's own bank; matching must not wait on it, so failures only log."""
        decision, report_id = self.state.decision, self.state.filing.report_id
        assert decision is not None and report_id is not None
        items = [ReportedMedia(media_id=d.media_id, evidence=media.evidence,
                               classification=d.classification.value if d.classification else None)
                 for d in decision.media
                 if d.reported and (media := self.state.media_item(d.media_id)) and media.evidence is not None]
        if not items:
            return
        try:
            await workflow.execute_activity_method(
                DetectionActivities.bank_reported_media,
                BankReportedMediaInput(org_id=self.state.org_id, report_id=report_id, items=items),
                start_to_close_timeout=timedelta(minutes=2), retry_policy=RetryPolicy(maximum_attempts=5),
                task_queue=task_queues.detection(),
            )
        except ActivityError:
            workflow.logger.warning("reported media could not be added to the org's own bank")

    async def _file_cybertip(self) -> bool:
        """Run the filing from its last completed step. True once NCMEC has the finished report."""
        filing = self.state.filing
        if not self.state.enriched and not await self._enrich_user():
            return False
        while True:
            try:
                if filing.report_id is None:
                    await self._open_report()
                await self._send_files()
                await self._send_conversations()
                self._check_time_left()
                finished = await workflow.execute_activity_method(
                    FilingActivities.finish_report,
                    FinishReportInput(org_id=self.state.org_id, report_id=filing.report_id,
                                      expected_file_ids=[f.file_id for f in filing.files]
                                      + [c.file_id for c in filing.conversations]),
                    start_to_close_timeout=self.policy.call_timeout,
                    schedule_to_close_timeout=self._until_report_deleted(), retry_policy=NCMEC_RETRY,
                    task_queue=task_queues.ncmec(self.state.org_id),
                )
            except (ActivityError, OutOfTime) as error:
                if await self._refile_after(error):
                    continue
                if filing.finished_at is None:
                    self.state.status = CaseStatus.NEEDS_ATTENTION
                    self.state.attention_reason = reviewer_safe_reason(error)
                    # Sending the same report again would be refused again: it must be decided anew or dismissed.
                    self.state.attention_permanent = _refused_for_good(error)
                    self._changed = True
                    return False
            else:
                filing.finished_at = finished.finished_at
            self.state.status = CaseStatus.FILED
            self._changed = True
            return True

    async def _enrich_user(self) -> bool:
        """Ask the platform for everything it knows about the user; wait, visibly, while it cannot answer."""
        give_up_at = workflow.now() + self.policy.enrichment_patience
        while True:
            try:
                enriched = await workflow.execute_activity_method(
                    PlatformCallbackActivities.enrich_user,
                    EnrichUserInput(org_id=self.state.org_id, case_ref=self.state.workflow_id,
                                    user_id=self.state.user_id),
                    start_to_close_timeout=self.policy.call_timeout, retry_policy=RetryPolicy(maximum_attempts=1),
                    task_queue=task_queues.platform(),
                )
            except ActivityError as error:
                self.state.waiting_reason = f"waiting for the platform to describe the user: " \
                                            f"{reviewer_safe_reason(error)}"
                self._changed = True
                await self._publish()
                if workflow.now() >= give_up_at:
                    self.state.status = CaseStatus.NEEDS_ATTENTION
                    self.state.attention_reason = self.state.waiting_reason
                    self.state.waiting_reason = None
                    return False
                await workflow.sleep(self.policy.enrichment_retry_every)
                continue
            if enriched.user is not None:
                known = self.state.user_metadata
                self.state.user_metadata = enriched.user if known is None else merge_user_metadata(known, enriched.user)
            self.state.enriched = True
            self.state.waiting_reason = None
            self._changed = True
            return True

    async def _send_conversations(self) -> None:
        decision = self.state.decision
        filing = self.state.filing
        assert decision is not None and filing.report_id is not None
        for thread_id in decision.attach_conversations:
            filed = next((c for c in filing.conversations if c.thread_id == thread_id), None)
            if filed is not None and filed.details_sent:
                continue
            self._check_time_left()
            thread = self.state.conversation(thread_id)
            assert thread is not None
            if filed is None:
                uploaded = await workflow.execute_activity_method(
                    FilingActivities.upload_conversation,
                    UploadConversationInput(org_id=self.state.org_id, report_id=filing.report_id, thread=thread),
                    start_to_close_timeout=self.policy.upload_timeout,
                    heartbeat_timeout=self.policy.upload_heartbeat_timeout,
                    schedule_to_close_timeout=self._until_report_deleted(), retry_policy=NCMEC_RETRY,
                    task_queue=task_queues.ncmec(self.state.org_id),
                )
                filed = FiledConversation(thread_id=thread_id, file_id=uploaded.file_id, evidence=uploaded.evidence)
                filing.conversations.append(filed)
                filing.last_modified_at = uploaded.sent_at
            sent = await workflow.execute_activity_method(
                FilingActivities.send_conversation_details,
                ConversationDetailsInput(org_id=self.state.org_id, report_id=filing.report_id,
                                         file_id=filed.file_id, thread_id=thread_id, evidence=filed.evidence),
                start_to_close_timeout=self.policy.call_timeout,
                schedule_to_close_timeout=self._until_report_deleted(), retry_policy=NCMEC_RETRY,
                task_queue=task_queues.ncmec(self.state.org_id),
            )
            filed.details_sent = True
            filing.last_modified_at = sent.sent_at
            self._changed = True

    async def _open_report(self) -> None:
        decision = self.state.decision
        assert decision is not None
        opened = await workflow.execute_activity_method(
            FilingActivities.open_report,
            OpenReportInput(org_id=self.state.org_id, workflow_id=self.state.workflow_id,
                            case_number=self.state.case_number, user_id=self.state.user_id,
                            decision=decision, incident_at=self._incident_at(),
                            urgency_suggestion=self.state.urgency.suggested_reason if self.state.urgency else None,
                            user_metadata=self.state.user_metadata, location_urls=self._location_urls(),
                            prior_report_ids=self.state.prior_report_ids,
                            # Each abandoned report closed an attempt: a refile is the next, never a reuse.
                            attempt=len(self.state.filing.abandoned_report_ids) + 1),
            start_to_close_timeout=self.policy.call_timeout,
            schedule_to_close_timeout=timedelta(hours=6),
            retry_policy=NCMEC_RETRY,
            task_queue=task_queues.ncmec(self.state.org_id),
        )
        filing = self.state.filing
        filing.environment = opened.environment
        filing.report_id = opened.report_id
        filing.opened_at = opened.opened_at
        await self._publish()

    def _location_urls(self) -> list[str]:
        assert self.state.decision is not None
        reported = {d.media_id for d in self.state.decision.media if d.reported}
        return [m.content.location_url for m in self.state.media if m.media_id in reported and m.content.location_url]

    def _incident_at(self) -> datetime:
        """When the earliest reported item was uploaded (or reached Tipline, if the platform did not say)."""
        assert self.state.decision is not None
        reported = {d.media_id for d in self.state.decision.media if d.reported}
        times = [m.content.uploaded_at or m.content.received_at for m in self.state.media if m.media_id in reported]
        return min(times, default=self.state.opened_at)

    async def _refile_after(self, error: BaseException) -> bool:
        """Abandon a report NCMEC lost or that cannot be finished in time. True to file afresh now."""
        filing = self.state.filing
        gone = isinstance(error, ActivityError) and error_type(error) == REPORT_GONE
        timed_out = isinstance(error, ActivityError) and isinstance(error.cause, ActivityTimeout)
        out_of_time = isinstance(error, OutOfTime) or timed_out
        if filing.report_id is None or not (gone or out_of_time):
            return False
        report_id = filing.report_id
        reason = "NCMEC deleted the unfinished report" if gone else "the report could not be finished in time"
        try:
            abandoned = await workflow.execute_activity_method(
                FilingActivities.abandon_report,
                AbandonReportInput(org_id=self.state.org_id, report_id=report_id, reason=reason),
                start_to_close_timeout=self.policy.call_timeout, retry_policy=RetryPolicy(maximum_attempts=5),
                task_queue=task_queues.ncmec(self.state.org_id),
            )
            outcome = abandoned.outcome
        except ActivityError:
            outcome = "gone"  # NCMEC is unreachable; an unfinished report expires on its own
        if outcome == "finished":
            # The answer to an earlier /finish was lost: the report was filed after all.
            filing.finished_at = workflow.now()
            return False
        filing.abandoned_report_ids.append(report_id)
        filing.report_id = filing.opened_at = filing.last_modified_at = None
        filing.files = []
        filing.conversations = []
        self._changed = True
        return gone and len(filing.abandoned_report_ids) <= self.policy.max_refiles

    async def _send_files(self) -> None:
        decision = self.state.decision
        assert decision is not None
        pending = [d.media_id for d in decision.media if d.sent and not self._file_described(d.media_id)]
        if workflow.patched(FILES_IN_BATCHES_PATCH):
            self._progress_after_each_upload = False
            for batch in self._batches(pending):
                self._check_time_left()
                await self._send_batch(batch)
            return
        if workflow.patched(FILES_IN_A_SLIDING_WINDOW_PATCH):
            self._progress_after_each_upload = False
            await self._send_files_in_a_window(pending)
            return
        self._progress_after_each_upload = True
        size = self.policy.upload_concurrency
        for start in range(0, len(pending), size):
            self._check_time_left()
            results = await asyncio.gather(*(self._send_file(media_id) for media_id in pending[start:start + size]),
                                           return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]

    async def _send_files_in_a_window(self, pending: list[str]) -> None:
        """Up to ``upload_concurrency`` files in flight, the next starting as soon as one is described (batches
        waited for their slowest file). After a failure no new file starts; those in flight finish first."""
        window = asyncio.Semaphore(self.policy.upload_concurrency)
        failures: list[BaseException] = []

        async def send(media_id: str) -> None:
            async with window:
                if failures:
                    return
                try:
                    self._check_time_left()
                    await self._send_file(media_id)
                except (ActivityError, OutOfTime) as error:
                    failures.append(error)

        await asyncio.gather(*(send(media_id) for media_id in pending))
        if failures:
            raise failures[0]

    def _batches(self, pending: list[str]) -> list[list[str]]:
        """The files in order, cut into batches of at most FILES_PER_BATCH files and BATCH_BYTES (a larger file
        goes alone)."""
        batches: list[list[str]] = []
        size = 0
        for media_id in pending:
            media = self.state.media_item(media_id)
            length = media.evidence.size if media is not None and media.evidence is not None else 0
            if not batches or len(batches[-1]) >= FILES_PER_BATCH or size + length > BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1].append(media_id)
            size += length
        return batches

    async def _send_batch(self, batch: list[str]) -> None:
        """Upload and describe a batch in one activity; what it sent is this filing's checkpoint."""
        filing = self.state.filing
        decision = self.state.decision
        assert decision is not None and filing.report_id is not None
        choices = {d.media_id: d for d in decision.media}
        files = []
        for media_id in batch:
            media = self.state.media_item(media_id)
            assert media is not None and media.evidence is not None
            uploaded = filing.file_for(media_id)
            files.append(FileToSend(media=media, decision=choices[media_id],
                                    file_name=media.content.file_name or media_id,
                                    file_id=uploaded.file_id if uploaded is not None else None))
        sent = await workflow.execute_activity_method(
            FilingActivities.send_files,
            SendFilesInput(org_id=self.state.org_id, report_id=filing.report_id, files=files,
                           concurrency=self.policy.upload_concurrency),
            start_to_close_timeout=self.policy.upload_timeout,
            # Heartbeats stop when a worker dies mid-batch; the retry sends only what is not recorded yet.
            heartbeat_timeout=self.policy.upload_heartbeat_timeout,
            schedule_to_close_timeout=self._until_report_deleted(), retry_policy=NCMEC_RETRY,
            task_queue=task_queues.ncmec(self.state.org_id),
        )
        for file in sent.files:
            filed = filing.file_for(file.media_id)
            if filed is None:
                filed = FiledFile(media_id=file.media_id, file_id=file.file_id, md5=file.md5)
                filing.files.append(filed)
            filed.file_id = file.file_id
            filed.details_sent = True
        filing.last_modified_at = sent.last_modified_at
        self._changed = True

    def _file_described(self, media_id: str) -> bool:
        filed = self.state.filing.file_for(media_id)
        return filed is not None and filed.details_sent

    async def _send_file(self, media_id: str) -> None:
        filing = self.state.filing
        media = self.state.media_item(media_id)
        decision = self.state.decision
        assert media is not None and media.evidence is not None and decision is not None
        assert filing.report_id is not None
        filed = filing.file_for(media_id)
        if filed is None:
            uploaded = await workflow.execute_activity_method(
                FilingActivities.upload_file,
                UploadFileInput(org_id=self.state.org_id, report_id=filing.report_id, media_id=media_id,
                                evidence=media.evidence, file_name=media.content.file_name or media_id),
                start_to_close_timeout=self.policy.upload_timeout,
                heartbeat_timeout=self.policy.upload_heartbeat_timeout,
                schedule_to_close_timeout=self._until_report_deleted(), retry_policy=NCMEC_RETRY,
                task_queue=task_queues.ncmec(self.state.org_id),
            )
            filed = FiledFile(media_id=media_id, file_id=uploaded.file_id, md5=uploaded.md5)
            filing.files.append(filed)
            filing.last_modified_at = uploaded.uploaded_at
            if self._progress_after_each_upload:
                await self._publish()
        media_decision = next(d for d in decision.media if d.media_id == media_id)
        sent = await workflow.execute_activity_method(
            FilingActivities.send_file_details,
            FileDetailsInput(org_id=self.state.org_id, report_id=filing.report_id, file_id=filed.file_id,
                             media=media, decision=media_decision),
            start_to_close_timeout=self.policy.call_timeout,
            schedule_to_close_timeout=self._until_report_deleted(), retry_policy=NCMEC_RETRY,
            task_queue=task_queues.ncmec(self.state.org_id),
        )
        filed.details_sent = True
        filing.last_modified_at = sent.sent_at
        self._changed = True

    def _check_time_left(self) -> None:
        deadline = self._ncmec_deadline()
        if deadline is not None and workflow.now() > deadline - self.policy.deadline_margin:
            raise OutOfTime()

    def _until_report_deleted(self) -> timedelta:
        """Retry a step only until shortly before NCMEC would delete the unfinished report."""
        deadline = self._ncmec_deadline()
        assert deadline is not None
        return max(deadline - workflow.now() - self.policy.deadline_margin, timedelta(minutes=1))

    def _ncmec_deadline(self) -> datetime | None:
        filing = self.state.filing
        if filing.opened_at is None or filing.finished_at is not None:
            return None
        return ncmec_deletion_time(filing.opened_at, filing.last_modified_at)
