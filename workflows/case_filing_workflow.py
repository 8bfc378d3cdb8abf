"""One attempt at filing one decided case: a child of the user's case workflow, which goes on absorbing content.

It reports its progress and its end by signal to the user's workflow id (not a run id), so the report reaches
the user's workflow even after that continued as new. It retracts the case's open report first when the
reviewer decided again or dismissed the case.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.filing import FilingActivities
    from models.case import CaseState, CaseStatus
    from models.filing import AbandonReportInput, FilingReport, FilingStart
    from workflows import task_queues
    from workflows.case_filing import CaseFilingSteps

FILING_REPORT_SIGNAL = "filing_report"


@workflow.defn
class CaseFilingWorkflow(CaseFilingSteps):
    @workflow.init
    def __init__(self, start: FilingStart) -> None:
        self.state = start.case
        self.policy = start.policy
        self._changed = False
        self._parent_id = start.parent_workflow_id

    @workflow.query
    def case(self) -> CaseState:
        return self.state

    @workflow.run
    async def run(self, start: FilingStart) -> CaseState:
        if self.state.retract_report is not None:
            await self._retract_open_report(self.state.retract_report)
        if self.state.status is CaseStatus.FILING:
            await self._file_cybertip()
        await self._report(ended=True)
        return self.state

    async def _publish(self) -> None:
        """The filing steps call this at each checkpoint: the user's workflow shows the progress."""
        self._changed = False
        await self._report(ended=False)

    async def _report(self, *, ended: bool) -> None:
        report = FilingReport(case_number=self.state.case_number, attempt=self.state.filing_attempt,
                              case=self.state, ended=ended)
        try:
            await workflow.get_external_workflow_handle(self._parent_id).signal(FILING_REPORT_SIGNAL, report)
        except ApplicationError:
            # The user's workflow is gone (terminated by an operator): the result of this run still has it all.
            workflow.logger.warning("the user's case workflow could not be told about its filing")

    async def _retract_open_report(self, reason: str) -> None:
        """Withdraw the report a reviewer no longer wants filed as it is (decided again, or dismissed)."""
        filing = self.state.filing
        report_id = filing.report_id
        self.state.retract_report = None
        if report_id is None or filing.finished_at is not None:
            return
        try:
            abandoned = await workflow.execute_activity_method(
                FilingActivities.abandon_report,
                AbandonReportInput(org_id=self.state.org_id, report_id=report_id, reason=reason),
                start_to_close_timeout=self.policy.call_timeout, schedule_to_close_timeout=timedelta(hours=1),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5)),
                task_queue=task_queues.ncmec(self.state.org_id),
            )
            outcome = abandoned.outcome
        except ActivityError:
            outcome = "gone"  # NCMEC is unreachable for an hour; an unfinished report expires on its own
        if outcome == "finished":
            # The answer to an earlier /finish was lost: NCMEC has the report as first decided.
            filing.finished_at = workflow.now()
            self.state.status = CaseStatus.FILED
            self.state.attention_reason = "NCMEC had already received the report as first decided"
            return
        filing.abandoned_report_ids.append(report_id)
        filing.report_id = filing.opened_at = filing.last_modified_at = None
        filing.files = []
        filing.conversations = []
