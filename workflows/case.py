"""One reported user's NCMEC case: gather content, wait for a reviewer, file the CyberTip.

A run is one case. When content arrives after the reviewer decided, it waits in ``next_case`` and the
run continues as a new case for the same user once this one is filed or dismissed.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.case_index import CaseIndexActivities
    from activities.detection import DetectionActivities
    from activities.filing import REPORT_GONE_ERROR as REPORT_GONE
    from activities.filing import FilingActivities
    from activities.media import MediaActivities
    from activities.notifications import NotificationActivities
    from activities.platform_callbacks import PlatformCallbackActivities
    from models.case import (
        CaseStart,
        CaseState,
        CaseStatus,
        ContentItem,
        ConversationThread,
        DecisionAccepted,
        Dismissal,
        EnqueueReason,
        FiledConversation,
        FiledFile,
        MediaAnalysis,
        MediaItem,
        MediaSource,
        RetryFiling,
        ReviewDecision,
    )
    from models.case_urgency import case_urgency_signals
    from models.deadlines import ncmec_deletion_time
    from models.filing import (
        AbandonReportInput,
        AnalyzeMediaInput,
        BankReportedMediaInput,
        CaseSummaryUpdate,
        ConversationDetailsInput,
        EnrichUserInput,
        EscalationNotice,
        FileDetailsInput,
        FinishReportInput,
        ListUserMediaInput,
        OpenReportInput,
        PreserveMediaInput,
        ReportedMedia,
        UploadConversationInput,
        UploadFileInput,
    )
    from models.platform_metadata import merge_user_metadata
    from models.review_rules import decision_errors
    from models.urgency import assess_urgency
    from workflows import search_attributes as sa

# Transient NCMEC failures (network, 5xx, 1xxx codes) are retried with backoff; permanent ones are
# raised by the activities as non-retryable and put the case in "needs attention".
NCMEC_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                          maximum_interval=timedelta(minutes=5))
LOCAL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
PRESERVE_BATCH = 8
MAX_MEDIA_PAGES = 1000


@workflow.defn
class CaseWorkflow:
    @workflow.init
    def __init__(self, start: CaseStart) -> None:
        info = workflow.info()
        # A case that continued as new to keep its history short carries its whole state over.
        self.state = start.state or CaseState(
            workflow_id=info.workflow_id,
            case_number=start.case_number,
            org_id=start.org_id,
            user_id=start.user_id,
            opened_at=workflow.now(),
            prior_report_ids=list(start.prior_report_ids),
        )
        self.policy = start.policy
        self.review = start.review
        self.next_case: list[ContentItem] = []
        self.next_conversations: list[ConversationThread] = list(start.carried_conversations)
        self._awaiting_preservation = [m.media_id for m in self.state.media
                                       if m.evidence is None and m.preservation_error is None]
        self._awaiting_analysis = [m.media_id for m in self.state.media
                                   if m.evidence is not None and m.analysis is None]
        self._changed = True
        self._published_search_attributes: dict[str, object] = {}
        for item in start.carried_content:
            self.add_content(item)
        carried, self.next_conversations = self.next_conversations, []
        for thread in carried:
            self.add_conversation(thread)

    # ---- handlers: they only change state; the run loop does the I/O ----

    @workflow.signal
    def add_content(self, item: ContentItem) -> None:
        if item.org_id != self.state.org_id or item.user_id != self.state.user_id:
            workflow.logger.warning("content for another case ignored")
            return
        known = self.state.media_item(item.content_id)
        if known is not None:
            # The same item again, perhaps for another reason (a user report after a hash match): keep every reason.
            if self._add_reason(known, item.reason):
                self._changed = True
            return
        if any(c.content_id == item.content_id for c in self.next_case):
            return
        if self.state.status is not CaseStatus.AWAITING_REVIEW:
            self.next_case.append(item)
            return
        media = MediaItem(media_id=item.content_id, content=item, evidence=item.media.evidence,
                          reasons=[item.reason], analysis=item.analysis)
        if item.user is not None:
            known = self.state.user_metadata
            self.state.user_metadata = item.user if known is None else merge_user_metadata(known, item.user)
        self.state.media.append(media)
        if media.evidence is None:
            self._awaiting_preservation.append(media.media_id)
        elif media.analysis is None:
            self._awaiting_analysis.append(media.media_id)
        self._changed = True

    @workflow.signal
    def add_conversation(self, thread: ConversationThread) -> None:
        if thread.org_id != self.state.org_id or thread.user_id != self.state.user_id:
            workflow.logger.warning("conversation for another case ignored")
            return
        if self.state.status is not CaseStatus.AWAITING_REVIEW:
            self.next_conversations.append(thread)
            return
        # A thread sent again (more messages arrived) replaces the earlier copy.
        self.state.conversations = [c for c in self.state.conversations if c.thread_id != thread.thread_id]
        self.state.conversations.append(thread)
        self._changed = True

    @workflow.query
    def case(self) -> CaseState:
        return self.state

    @workflow.update
    def decide(self, decision: ReviewDecision) -> DecisionAccepted:
        self.state.decision = decision
        self.state.status = CaseStatus.FILING
        self.state.attention_reason = None
        self._changed = True
        return DecisionAccepted(case_id=self.state.case_id, status=self.state.status)

    @decide.validator
    def _validate_decision(self, decision: ReviewDecision) -> None:
        errors = decision_errors(self.state, decision)
        if errors:
            raise ApplicationError("; ".join(errors), type="InvalidDecision", non_retryable=True)

    @workflow.update
    def dismiss(self, dismissal: Dismissal) -> DecisionAccepted:
        self.state.dismissal = dismissal
        self.state.status = CaseStatus.DISMISSED
        self._changed = True
        return DecisionAccepted(case_id=self.state.case_id, status=self.state.status)

    @dismiss.validator
    def _validate_dismissal(self, dismissal: Dismissal) -> None:
        if not self._reviewable():
            raise ApplicationError(f"case: a case that is {self.state.status.value} cannot be dismissed",
                                   type="InvalidDecision", non_retryable=True)

    @workflow.update
    def retry_filing(self, request: RetryFiling) -> DecisionAccepted:
        self.state.status = CaseStatus.FILING
        self.state.attention_reason = None
        self._changed = True
        return DecisionAccepted(case_id=self.state.case_id, status=self.state.status)

    @retry_filing.validator
    def _validate_retry(self, request: RetryFiling) -> None:
        if self.state.status is not CaseStatus.NEEDS_ATTENTION:
            raise ApplicationError(f"case: only a case that needs attention can be retried, this one is "
                                   f"{self.state.status.value}", type="InvalidDecision", non_retryable=True)

    # ---- the business process ----

    @workflow.run
    async def run(self, start: CaseStart) -> CaseState:
        if start.state is None:
            if start.case_number == 1 and not start.prior_report_ids:
                await self._continue_user_history()
            await self._list_user_media()
        while True:
            try:
                await workflow.wait_condition(
                    lambda: bool(self._awaiting_preservation or self._awaiting_analysis) or self._changed
                    or self._ready_to_file(),
                    timeout=self._time_to_review_deadline(),
                )
            except TimeoutError:
                await self._escalate_overdue_review()
            if self._awaiting_preservation:
                await self._preserve_media()
            if self._awaiting_analysis:
                await self._analyze_media()
            if self._changed:
                await self._publish()
            if self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._same_case_start())
            if self.state.status is CaseStatus.DISMISSED:
                break
            if self._ready_to_file() and await self._file_cybertip():
                break
        await self._publish()
        if self.state.status is CaseStatus.FILED:
            await self._bank_reported_media()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.next_case or self.next_conversations:
            workflow.continue_as_new(self._next_case_start())
        return self.state

    def _history_is_long(self) -> bool:
        """Continue as new while waiting for a reviewer, never mid-filing, once Temporal suggests it."""
        return (workflow.info().is_continue_as_new_suggested() and self.state.status is CaseStatus.AWAITING_REVIEW
                and not self._awaiting_preservation and not self._awaiting_analysis and not self._changed)

    def _same_case_start(self) -> CaseStart:
        return CaseStart(org_id=self.state.org_id, user_id=self.state.user_id, case_number=self.state.case_number,
                         prior_report_ids=self.state.prior_report_ids, carried_content=self.next_case,
                         carried_conversations=self.next_conversations, policy=self.policy, review=self.review,
                         state=self.state)

    def _time_to_review_deadline(self) -> timedelta | None:
        deadline = self.state.review_deadline
        if deadline is None or self.state.escalated_at is not None:
            return None
        return max(deadline - workflow.now(), timedelta(seconds=1))

    async def _escalate_overdue_review(self) -> None:
        """Nobody decided in time: raise the case to Moderator Managers (queue, search attribute, webhook)."""
        state = self.state
        if state.status is not CaseStatus.AWAITING_REVIEW or state.escalated_at is not None:
            return
        assert state.review_deadline is not None and state.urgency is not None
        state.escalated_at = workflow.now()
        self._changed = True
        await workflow.execute_activity_method(
            NotificationActivities.notify_escalation,
            EscalationNotice(org_id=state.org_id, case_ref=state.workflow_id, case_number=state.case_number,
                             urgency_level=state.urgency.level.value, review_deadline=state.review_deadline,
                             escalated_at=state.escalated_at),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )

    def _reassess_urgency(self) -> None:
        """Recompute urgency from everything the case holds now, and the review deadline it implies."""
        state = self.state
        state.urgency = assess_urgency(case_urgency_signals(state, workflow.now()))
        if state.status is CaseStatus.AWAITING_REVIEW:
            state.review_deadline = state.opened_at + self.review.window(state.urgency.level)
        else:
            state.review_deadline = None

    def _reviewable(self) -> bool:
        return self.state.status is CaseStatus.AWAITING_REVIEW or (
            self.state.status is CaseStatus.NEEDS_ATTENTION and self.state.filing.report_id is None
        )

    def _ready_to_file(self) -> bool:
        return self.state.status is CaseStatus.FILING and not self._awaiting_preservation

    async def _list_user_media(self) -> None:
        """Add every media item the platform has ever associated with the user; what it cannot deliver is
        recorded (a page that fails, an item whose download fails) rather than failing the case."""
        cursor: str | None = None
        for _ in range(MAX_MEDIA_PAGES):
            try:
                page = await workflow.execute_activity_method(
                    PlatformCallbackActivities.list_user_media,
                    ListUserMediaInput(org_id=self.state.org_id, case_ref=self.state.workflow_id,
                                       user_id=self.state.user_id, cursor=cursor),
                    start_to_close_timeout=self.policy.call_timeout,
                    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
                )
            except ActivityError as error:
                self.state.media_list_error = _reviewer_safe_reason(error)
                self._changed = True
                return
            for entry in page.items:
                self.add_content(ContentItem(
                    content_id=entry.content_id, org_id=self.state.org_id, user_id=self.state.user_id,
                    media=MediaSource(url=entry.media_url), file_name=entry.file_name, content_type=entry.content_type,
                    uploaded_at=entry.uploaded_at, received_at=workflow.now(),
                    reason=EnqueueReason(kind="associated_media", at=workflow.now()),
                ))
            if page.next_cursor is None:
                self.state.media_listed = True
                return
            cursor = page.next_cursor
        self.state.media_list_error = f"the platform's media list went on past {MAX_MEDIA_PAGES} pages"

    async def _continue_user_history(self) -> None:
        """A fresh run for a user filed before is their next case, naming the earlier CyberTips."""
        history = await workflow.execute_local_activity_method(
            CaseIndexActivities.user_history, self.state.workflow_id,
            start_to_close_timeout=timedelta(seconds=30), retry_policy=LOCAL_RETRY,
        )
        self.state.case_number = history.case_number
        self.state.prior_report_ids = history.prior_report_ids

    async def _preserve_media(self) -> None:
        batch, self._awaiting_preservation = (self._awaiting_preservation[:PRESERVE_BATCH],
                                              self._awaiting_preservation[PRESERVE_BATCH:])
        items = [item for item in map(self.state.media_item, batch) if item is not None]
        results = await asyncio.gather(*(
            workflow.execute_activity_method(
                MediaActivities.preserve_media,
                PreserveMediaInput(org_id=self.state.org_id, workflow_id=self.state.workflow_id,
                                   media_id=item.media_id, source=item.content.media),
                start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5),
            )
            for item in items
        ), return_exceptions=True)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, ActivityError):
                # The case keeps the item, with the reason, rather than failing on one bad link.
                item.preservation_error = _reviewer_safe_reason(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                item.evidence = result.evidence
                item.preservation_error = result.error
                if item.evidence is not None and item.analysis is None:
                    self._awaiting_analysis.append(item.media_id)
        self._changed = True

    async def _analyze_media(self) -> None:
        """Hash each preserved item and look it up in the org's banks; a match is one more reason it is here."""
        batch = self._awaiting_analysis[:PRESERVE_BATCH]
        self._awaiting_analysis = self._awaiting_analysis[PRESERVE_BATCH:]
        items = [item for item in map(self.state.media_item, batch) if item is not None and item.evidence is not None]
        results = await asyncio.gather(*(
            workflow.execute_activity_method(
                DetectionActivities.analyze_media,
                AnalyzeMediaInput(org_id=self.state.org_id, evidence=item.evidence),
                start_to_close_timeout=timedelta(minutes=1), retry_policy=RetryPolicy(maximum_attempts=5),
            )
            for item in items if item.evidence is not None
        ), return_exceptions=True)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, ActivityError):
                item.analysis = MediaAnalysis(unhashable_reason=_reviewer_safe_reason(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                item.analysis = result
                for match in result.matches:
                    self._add_reason(item, EnqueueReason(
                        kind="hash_match", at=workflow.now(),
                        detail=f"bank {match.bank_name}: {match.hash_type} distance {match.distance}"))
        self._changed = True

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
            )
        except ActivityError:
            workflow.logger.warning("reported media could not be added to the org's own bank")

    @staticmethod
    def _add_reason(item: MediaItem, reason: EnqueueReason) -> bool:
        if any(r.kind == reason.kind and r.detail == reason.detail and r.by == reason.by for r in item.reasons):
            return False
        item.reasons.append(reason)
        return True

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
                    **self._ncmec_call_options(),
                )
            except (ActivityError, _OutOfTime) as error:
                if await self._refile_after(error):
                    continue
                if filing.finished_at is None:
                    self.state.status = CaseStatus.NEEDS_ATTENTION
                    self.state.attention_reason = _reviewer_safe_reason(error)
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
                )
            except ActivityError as error:
                self.state.waiting_reason = f"waiting for the platform to describe the user: " \
                                            f"{_reviewer_safe_reason(error)}"
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
                    **self._ncmec_call_options(upload=True),
                )
                filed = FiledConversation(thread_id=thread_id, file_id=uploaded.file_id, evidence=uploaded.evidence)
                filing.conversations.append(filed)
                filing.last_modified_at = uploaded.sent_at
            sent = await workflow.execute_activity_method(
                FilingActivities.send_conversation_details,
                ConversationDetailsInput(org_id=self.state.org_id, report_id=filing.report_id,
                                         file_id=filed.file_id, thread_id=thread_id, evidence=filed.evidence),
                **self._ncmec_call_options(),
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
                            prior_report_ids=self.state.prior_report_ids),
            start_to_close_timeout=self.policy.call_timeout,
            schedule_to_close_timeout=timedelta(hours=6),
            retry_policy=NCMEC_RETRY,
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
        gone = isinstance(error, ActivityError) and _error_type(error) == REPORT_GONE
        out_of_time = isinstance(error, _OutOfTime) or (isinstance(error, ActivityError) and _timed_out(error))
        if filing.report_id is None or not (gone or out_of_time):
            return False
        report_id = filing.report_id
        reason = "NCMEC deleted the unfinished report" if gone else "the report could not be finished in time"
        try:
            abandoned = await workflow.execute_activity_method(
                FilingActivities.abandon_report,
                AbandonReportInput(org_id=self.state.org_id, report_id=report_id, reason=reason),
                start_to_close_timeout=self.policy.call_timeout, retry_policy=RetryPolicy(maximum_attempts=5),
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
        size = self.policy.upload_concurrency
        for start in range(0, len(pending), size):
            self._check_time_left()
            results = await asyncio.gather(*(self._send_file(media_id) for media_id in pending[start:start + size]),
                                           return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]

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
                **self._ncmec_call_options(upload=True),
            )
            filed = FiledFile(media_id=media_id, file_id=uploaded.file_id, md5=uploaded.md5)
            filing.files.append(filed)
            filing.last_modified_at = uploaded.uploaded_at
            await self._publish()
        media_decision = next(d for d in decision.media if d.media_id == media_id)
        sent = await workflow.execute_activity_method(
            FilingActivities.send_file_details,
            FileDetailsInput(org_id=self.state.org_id, report_id=filing.report_id, file_id=filed.file_id,
                             media=media, decision=media_decision),
            **self._ncmec_call_options(),
        )
        filed.details_sent = True
        filing.last_modified_at = sent.sent_at
        self._changed = True

    def _check_time_left(self) -> None:
        deadline = self._ncmec_deadline()
        if deadline is not None and workflow.now() > deadline - self.policy.deadline_margin:
            raise _OutOfTime()

    def _ncmec_call_options(self, *, upload: bool = False) -> dict[str, Any]:
        """Retry a step only until shortly before NCMEC would delete the unfinished report."""
        deadline = self._ncmec_deadline()
        assert deadline is not None
        remaining = deadline - workflow.now() - self.policy.deadline_margin
        options: dict[str, Any] = {
            "start_to_close_timeout": self.policy.upload_timeout if upload else self.policy.call_timeout,
            "schedule_to_close_timeout": max(remaining, timedelta(minutes=1)),
            "retry_policy": NCMEC_RETRY,
        }
        if upload:
            options["heartbeat_timeout"] = self.policy.upload_heartbeat_timeout
        return options

    def _ncmec_deadline(self) -> datetime | None:
        filing = self.state.filing
        if filing.opened_at is None or filing.finished_at is not None:
            return None
        return ncmec_deletion_time(filing.opened_at, filing.last_modified_at)

    async def _publish(self) -> None:
        """Bring the queue row, the search attributes and the UI details up to date."""
        self._changed = False
        self._reassess_urgency()
        state = self.state
        assert state.urgency is not None
        deadline = self._ncmec_deadline()
        overdue = state.escalated_at is not None and state.status is CaseStatus.AWAITING_REVIEW
        attributes = {
            sa.CASE_STATUS.name: state.status.value, sa.ORG.name: state.org_id, sa.URGENT.name: state.urgent,
            sa.NCMEC_REPORT_ID.name: state.filing.report_id, sa.NCMEC_DEADLINE.name: deadline,
            sa.REVIEW_DEADLINE.name: state.review_deadline, sa.REVIEW_OVERDUE.name: overdue,
        }
        if attributes != self._published_search_attributes:
            self._published_search_attributes = attributes
            workflow.upsert_search_attributes([
                sa.CASE_STATUS.value_set(state.status.value),
                sa.ORG.value_set(state.org_id),
                sa.URGENT.value_set(state.urgent),
                sa.NCMEC_REPORT_ID.value_set(state.filing.report_id) if state.filing.report_id is not None
                else sa.NCMEC_REPORT_ID.value_unset(),
                sa.NCMEC_DEADLINE.value_set(deadline) if deadline is not None else sa.NCMEC_DEADLINE.value_unset(),
                sa.REVIEW_DEADLINE.value_set(state.review_deadline) if state.review_deadline is not None
                else sa.REVIEW_DEADLINE.value_unset(),
                sa.REVIEW_OVERDUE.value_set(overdue),
            ])
        workflow.set_current_details(_details_markdown(state))
        await workflow.execute_local_activity_method(
            CaseIndexActivities.publish_case_summary,
            CaseSummaryUpdate(
                workflow_id=state.workflow_id, case_number=state.case_number, org_id=state.org_id,
                status=state.status, urgent=state.urgent, urgency_level=state.urgency.level.value,
                urgency_score=state.urgency.score, review_deadline=state.review_deadline,
                escalated_at=state.escalated_at, media_count=len(state.media),
                ncmec_report_id=state.filing.report_id, ncmec_deadline=deadline,
                opened_at=state.opened_at, updated_at=workflow.now(),
            ),
            start_to_close_timeout=timedelta(seconds=30), retry_policy=LOCAL_RETRY,
        )

    def _next_case_start(self) -> CaseStart:
        prior = list(self.state.prior_report_ids)
        if self.state.status is CaseStatus.FILED and self.state.filing.report_id is not None:
            prior.append(self.state.filing.report_id)
        return CaseStart(org_id=self.state.org_id, user_id=self.state.user_id,
                         case_number=self.state.case_number + 1, prior_report_ids=prior,
                         carried_content=self.next_case, carried_conversations=self.next_conversations,
                         policy=self.policy,
                         review=self.review)


class _OutOfTime(Exception):
    """Too close to NCMEC's deletion time to go on with this report."""


def _error_type(error: ActivityError) -> str | None:
    return error.cause.type if isinstance(error.cause, ApplicationError) else None


def _timed_out(error: ActivityError) -> bool:
    return isinstance(error.cause, ActivityTimeout)


def _reviewer_safe_reason(error: BaseException) -> str:
    if isinstance(error, ActivityError) and isinstance(error.cause, ApplicationError):
        return error.cause.message
    return "NCMEC could not be reached in time; retry once the connection is restored, a new report will be filed"


def _details_markdown(state: CaseState) -> str:
    preserved = sum(1 for m in state.media if m.evidence is not None)
    lines = [
        f"**Case {state.case_number}** · org `{state.org_id}` · **{state.status.value.replace('_', ' ')}**",
        f"Media: {len(state.media)} ({preserved} preserved)",
    ]
    if state.filing.report_id is not None:
        lines.append(f"NCMEC report {state.filing.report_id} ({state.filing.environment})")
    if state.prior_report_ids:
        lines.append("Prior CyberTips: " + ", ".join(str(r) for r in state.prior_report_ids))
    if state.urgency is not None and state.urgency.level.value != "normal":
        lines.append(f"Urgency: **{state.urgency.level.value}** (score {state.urgency.score})")
    if state.escalated_at is not None and state.status is CaseStatus.AWAITING_REVIEW:
        lines.append("**Review overdue**: raised to Moderator Managers")
    if state.attention_reason:
        lines.append(f"Needs attention: {state.attention_reason}")
    return "\n\n".join(lines)
