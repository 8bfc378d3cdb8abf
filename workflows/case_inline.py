"""The case process of histories recorded before filing moved to a child workflow: one case per run, filed
inline, the next case started by continue-as-new. Kept so those histories (and cases still running on it)
replay; new runs take the ``user-workflow-with-child-filing`` patch in ``CaseWorkflow.run``.

A mixin of ``CaseWorkflow``.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.case_index import CaseIndexActivities
    from activities.notifications import NotificationActivities
    from models.case import (
        CaseStart,
        CaseState,
        CaseStatus,
        ContentItem,
        ConversationThread,
        FilingPolicy,
        ReviewPolicy,
    )
    from models.filing import CaseSummaryUpdate, EscalationNotice
    from workflows import task_queues
    from workflows.case_media import LOCAL_RETRY


class InlineCaseSteps:
    state: CaseState
    policy: FilingPolicy
    review: ReviewPolicy
    next_case: list[ContentItem]
    next_conversations: list[ConversationThread]
    _changed: bool
    _awaiting_preservation: list[str]
    _awaiting_analysis: list[str]

    async def _run_one_case_inline(self, start: CaseStart) -> CaseState:
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
            if self._history_is_long_inline():
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

    def _history_is_long_inline(self) -> bool:
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
        try:
            await workflow.execute_activity_method(
                NotificationActivities.notify_escalation,
                EscalationNotice(org_id=state.org_id, case_ref=state.workflow_id, case_number=state.case_number,
                                 urgency_level=state.urgency.level.value, review_deadline=state.review_deadline,
                                 escalated_at=state.escalated_at),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5),
                task_queue=task_queues.platform(),
            )
        except ActivityError as error:
            self._record_failure(state, "escalation_webhook", error)

    def _ready_to_file(self) -> bool:
        return self.state.status is CaseStatus.FILING and not self._awaiting_preservation

    async def _publish(self) -> None:
        """Bring the queue row, the search attributes and the UI details up to date."""
        self._changed = False
        self._reassess_urgency()
        state = self.state
        assert state.urgency is not None
        deadline = self._ncmec_deadline()
        self._upsert_search_attributes(state)
        self._show_details(state)
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

    # provided by CaseWorkflow (which always wins); the filing, media and decided-case steps come after this
    # class in CaseWorkflow's bases, so no placeholder here may shadow theirs.
    def _reassess_urgency(self) -> None:
        raise NotImplementedError

    def _upsert_search_attributes(self, state: CaseState) -> None:
        raise NotImplementedError

    def _show_details(self, state: CaseState) -> None:
        raise NotImplementedError
