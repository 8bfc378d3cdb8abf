"""What happens to a case once a reviewer decided or dismissed it: filing (a child workflow per attempt),
banking what was reported, and closing it. Side effects that fail are recorded on the case and retried.

A mixin of ``CaseWorkflow``: ``self.state`` is the user's open case; ``self.decided`` holds decided cases by
number until they are settled.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.detection import DetectionActivities
    from activities.history_export import HistoryExportActivities
    from models.case import CaseState, CaseStatus, FilingPolicy, SideEffectFailure
    from models.filing import BankReportedMediaInput, FilingReport, FilingStart, ReportedMedia, filing_workflow_id
    from models.history_export_messages import ExportHistoryInput
    from workflows import task_queues
    from workflows.case_filing_workflow import CaseFilingWorkflow
    from workflows.errors import reviewer_safe_reason
    from workflows.history_export import CaseHistoryExportWorkflow, history_export_workflow_id

BANKING_HEARTBEAT = timedelta(seconds=30)
# Marks runs that export a closed case's histories at close (tipline.history_export); older runs did not.
EXPORT_HISTORY_PATCH = "export-history-at-close"
# Marks runs that hand the export to a workflow of its own, retried until stored; older runs gave up after 8 tries.
EXPORT_WORKFLOW_PATCH = "history-export-in-its-own-workflow"
# Fetching every run's history takes seconds; the tries spread over an hour ride out a Temporal restart.
EXPORT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), backoff_coefficient=2.0,
                           maximum_interval=timedelta(minutes=10), maximum_attempts=8)


class DecidedCaseSteps:
    state: CaseState
    policy: FilingPolicy
    decided: dict[int, CaseState]
    last_closed: CaseState | None
    _changed: bool
    _analysis_retry_on_timer: bool  # CaseMediaSteps

    async def _publish_row(self, case: CaseState) -> None:
        raise NotImplementedError

    def _now(self) -> datetime:
        raise NotImplementedError

    # ---- the child's reports ----

    def _take_filing_report(self, report: FilingReport) -> None:
        case = self.decided.get(report.case_number)
        if case is None or report.attempt != case.filing_attempt or not case.filing_running:
            return  # an earlier attempt's late word
        filed = report.case
        case.filing = filed.filing
        case.enriched = filed.enriched
        case.user_metadata = filed.user_metadata
        case.waiting_reason = filed.waiting_reason
        if report.ended:
            case.filing_running = False
            case.status = filed.status
            case.attention_reason = filed.attention_reason
            case.attention_permanent = filed.attention_permanent
            case.retract_report = None
            if case.status is CaseStatus.FILING:
                case.status = CaseStatus.NEEDS_ATTENTION
                case.attention_reason = case.attention_reason or "the filing stopped before NCMEC had the report"
            if case.status is CaseStatus.FILED and case.filing.report_id is not None:
                self._name_prior_report(case.case_number, case.filing.report_id)
        self._changed = True

    def _name_prior_report(self, case_number: int, report_id: int) -> None:
        """Later cases of the same user name this CyberTip (NCMEC's priorCTReports)."""
        later = [c for n, c in self.decided.items() if n > case_number and c.filing.report_id is None]
        for case in [*later, self.state]:
            if report_id not in case.prior_report_ids:
                case.prior_report_ids.append(report_id)

    # ---- filing, banking, closing ----

    async def _follow_up_decided_cases(self) -> None:
        """File decided cases one at a time, oldest first (a later one names the earlier's report); bank what
        a filed case reported; close what is settled."""
        filing_ahead = False
        for number in sorted(self.decided):
            case = self.decided[number]
            if case.filing_running:
                filing_ahead = True
                continue
            if case.status is CaseStatus.FILING or case.retract_report is not None:
                if filing_ahead:
                    case.waiting_reason = "waiting for the user's earlier case to be filed, whose CyberTip it names"
                else:
                    await self._start_filing(case)
                    filing_ahead = True
                continue
            banking_due = not case.reported_media_banked and failure_due(case, "bank_reported_media", self._now())
            if case.status is CaseStatus.FILED and banking_due:
                await self._bank_reported_media_of(case)
            if _settled(case):
                await self._close(case)

    async def _start_filing(self, case: CaseState) -> None:
        case.filing_attempt += 1
        case.filing_running = True
        case.waiting_reason = None
        sent = {d.media_id for d in case.decision.media if d.sent} if case.decision else set()
        # Only what NCMEC gets goes to the child: its input stays small however large the case.
        lean = case.model_copy(update={"media": [m for m in case.media if m.media_id in sent]})
        await workflow.start_child_workflow(
            CaseFilingWorkflow.run,
            FilingStart(parent_workflow_id=workflow.info().workflow_id, case=lean, policy=self.policy),
            id=filing_workflow_id(workflow.info().workflow_id, case.case_number, case.filing_attempt),
            # The user's workflow continues as new while a case files: the filing must outlive the run.
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"CyberTip filing · case {case.case_number} · attempt {case.filing_attempt}",
        )
        self._changed = True

    async def _bank_reported_media_of(self, case: CaseState) -> None:
        """Reported media joins the org's own bank; a failure is recorded and tried again later."""
        decision, report_id = case.decision, case.filing.report_id
        assert decision is not None and report_id is not None
        items = [ReportedMedia(media_id=d.media_id, evidence=media.evidence,
                               classification=d.classification.value if d.classification else None)
                 for d in decision.media
                 if d.reported and (media := case.media_item(d.media_id)) and media.evidence is not None]
        if items:
            try:
                await workflow.execute_activity_method(
                    DetectionActivities.bank_reported_media,
                    BankReportedMediaInput(org_id=case.org_id, report_id=report_id, items=items),
                    # The heartbeat timeout notices a worker that died within seconds: until this returns the
                    # user's workflow neither publishes the filed row nor takes in new content.
                    start_to_close_timeout=timedelta(minutes=2), heartbeat_timeout=BANKING_HEARTBEAT,
                    # A few quick tries; after that the case's own durable retry takes over.
                    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
                    task_queue=task_queues.detection(),
                )
            except ActivityError as error:
                self._record_failure(case, "bank_reported_media", error)
                return
        case.reported_media_banked = True
        resolve_failure(case, "bank_reported_media")
        self._changed = True

    async def _close(self, case: CaseState) -> None:
        await self._publish_row(case)
        if workflow.patched(EXPORT_HISTORY_PATCH):
            if workflow.patched(EXPORT_WORKFLOW_PATCH):
                await self._start_history_export(case)
            else:
                await self._export_history(case)
        del self.decided[case.case_number]
        self.last_closed = case
        self._changed = True

    async def _start_history_export(self, case: CaseState) -> None:
        """Every run's history of the case, kept with its records past Temporal's retention, by a workflow of its
        own (workflows.history_export) that outlives this run and retries until the export is stored."""
        # Already started by an earlier attempt at closing this case: it is being exported.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                CaseHistoryExportWorkflow.run,
                ExportHistoryInput(org_id=case.org_id, case_ref=case.workflow_id, case_number=case.case_number,
                                   filing_attempts=case.filing_attempt),
                id=history_export_workflow_id(case.workflow_id, case.case_number),
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"History export · case {case.case_number}",
            )

    async def _export_history(self, case: CaseState) -> None:
        """Older runs: every run's history of the case, kept with its records past Temporal's retention. Called here, at
        close, and not by a worker's watcher: Temporal retries it through worker restarts, and the history
        records that it ran and what it stored. A failure after its tries is logged; the case closes anyway."""
        try:
            await workflow.execute_activity_method(
                HistoryExportActivities.export_case_history,
                ExportHistoryInput(org_id=case.org_id, case_ref=case.workflow_id, case_number=case.case_number,
                                   filing_attempts=case.filing_attempt),
                start_to_close_timeout=timedelta(minutes=5), schedule_to_close_timeout=timedelta(hours=2),
                retry_policy=EXPORT_RETRY,
            )
        except ActivityError:
            workflow.logger.warning("the closed case's history export failed after its retries")

    # ---- side effects that failed ----

    def _record_failure(self, case: CaseState, what: str, error: BaseException,
                        retry_every: timedelta | None = None) -> None:
        now = workflow.now()
        reason = reviewer_safe_reason(error) if isinstance(error, ActivityError) else str(error)
        failure = open_failure(case, what)
        if failure is None:
            failure = SideEffectFailure(what=what, reason=reason, first_failed_at=now,  # type: ignore[arg-type]
                                        last_failed_at=now, attempts=0)
            case.side_effect_failures.append(failure)
        failure.attempts += 1
        failure.last_failed_at = now
        failure.reason = reason
        retries_left = failure.attempts <= self.policy.side_effect_retries
        failure.retry_at = now + (retry_every or self.policy.side_effect_retry_every) if retries_left else None
        # ``what`` is one of a few fixed names: the log carries no content and no address.
        workflow.logger.warning(f"side effect {what} failed (attempt {failure.attempts})")
        self._changed = True

    def _next_retry_at(self) -> datetime | None:
        # A media analysis retried on its own timer wakes the loop by that timer, not by this time.
        on_timer = "media_analysis" if self._analysis_retry_on_timer else None
        times = [f.retry_at for case in [self.state, *self.decided.values()] for f in case.side_effect_failures
                 if f.resolved_at is None and f.retry_at is not None and f.what != on_timer]
        return min(times, default=None)


def open_failure(case: CaseState, what: str) -> SideEffectFailure | None:
    return next((f for f in case.side_effect_failures if f.what == what and f.resolved_at is None), None)


def failure_due(case: CaseState, what: str, now: datetime | None = None) -> bool:
    """Not failed, or failed and its retry time has come (never, once the retries are spent)."""
    failure = open_failure(case, what)
    return failure is None or (failure.retry_at is not None and failure.retry_at <= (now or workflow.now()))


def resolve_failure(case: CaseState, what: str) -> None:
    failure = open_failure(case, what)
    if failure is not None:
        failure.resolved_at = workflow.now()
        failure.retry_at = None


def _gave_up(case: CaseState, what: str) -> bool:
    failure = open_failure(case, what)
    return failure is not None and failure.retry_at is None


def _settled(case: CaseState) -> bool:
    """Nothing more to do for it: filed and banked (or banking given up), or dismissed."""
    if case.filing_running or case.retract_report is not None:
        return False
    queue_row_pending = open_failure(case, "queue_row") is not None and not _gave_up(case, "queue_row")
    if queue_row_pending:
        return False
    if case.status is CaseStatus.DISMISSED:
        return True
    return case.status is CaseStatus.FILED and (case.reported_media_banked or _gave_up(case, "bank_reported_media"))
