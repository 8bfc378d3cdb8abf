"""One reported user's NCMEC case: gather content, wait for a reviewer, file the CyberTip.

A run is one case. When content arrives after the reviewer decided, it waits in ``next_case`` and the
run continues as a new case for the same user once this one is filed or dismissed.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.case_index import CaseIndexActivities
    from activities.notifications import NotificationActivities
    from models.case import (
        CaseStart,
        CaseState,
        CaseStatus,
        ContentItem,
        ConversationThread,
        DecisionAccepted,
        Dismissal,
        MediaItem,
        RetryFiling,
        ReviewDecision,
    )
    from models.case_urgency import case_urgency_signals
    from models.filing import CaseSummaryUpdate, EscalationNotice
    from models.platform_metadata import merge_user_metadata
    from models.review_rules import decision_errors
    from models.urgency import DEFAULT_POLICY, URGENCY_POLICY_V1, assess_urgency
    from workflows import search_attributes as sa
    from workflows.case_filing import CaseFilingSteps
    from workflows.case_media import LOCAL_RETRY, CaseMediaSteps

# Marks runs that assess urgency with models.urgency.DEFAULT_POLICY (issue 12); older runs keep URGENCY_POLICY_V1.
URGENCY_TABLE_PATCH = "urgency-table-v2"


@workflow.defn
class CaseWorkflow(CaseMediaSteps, CaseFilingSteps):
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
        # Cases started before the urgency table changed keep the old one, so their histories replay.
        policy = DEFAULT_POLICY if workflow.patched(URGENCY_TABLE_PATCH) else URGENCY_POLICY_V1
        state.urgency = assess_urgency(case_urgency_signals(state, workflow.now()), policy)
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
