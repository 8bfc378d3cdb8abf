"""One reported user's NCMEC cases: gather content, wait for a reviewer, hand the decided case to filing, next case.

The user's workflow never waits on NCMEC: each decided case is filed by a child workflow
(``CaseFilingWorkflow``, one per attempt) while this one goes on preserving, hashing, matching and assessing
what arrives, as the user's next case. Side effects around a case (the escalation webhook, banking reported
media, the queue row) that fail are recorded on the case and tried again later; they never fail it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

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
    from models.case_urgency import MediaSignalCache, case_urgency_signals
    from models.deadlines import ncmec_deletion_time
    from models.filing import CaseSummaryUpdate, EscalationNotice, FilingReport
    from models.platform_metadata import merge_user_metadata
    from models.review_rules import decision_errors, retry_errors
    from models.urgency import DEFAULT_POLICY, URGENCY_POLICY_V1, assess_urgency
    from workflows import search_attributes as sa
    from workflows import task_queues
    from workflows.case_decided import DecidedCaseSteps, failure_due, open_failure, resolve_failure
    from workflows.case_filing import CaseFilingSteps
    from workflows.case_inline import InlineCaseSteps
    from workflows.case_media import CaseMediaSteps

# Every case now runs the user-workflow process (filing in a child); histories from before replay the old one.
USER_WORKFLOW_PATCH = "user-workflow-with-child-filing"

# Continue as new well before Temporal's own limit of 50 MB, even if it never suggests it (events: CaseStart).
HARD_HISTORY_BYTES = 20 * 1024 * 1024
QUEUE_ROW_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


class StaleCase(ApplicationError):
    """The request names a case of this user that is not the one it can act on (409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="StaleCase", non_retryable=True)

# Marks runs that assess urgency with models.urgency.DEFAULT_POLICY (issue 12); older runs keep URGENCY_POLICY_V1.
URGENCY_TABLE_PATCH = "urgency-table-v2"
# Marks runs that apply reviewers' decisions, dismissals and retries at the top of the loop, not in the handler.
# An update reaches a worker as a message beside the history: on a worker that takes over a case cold, the SDK
# may run its handler after activity results that replay runs it before, so a handler that changed the case at
# once made the run's commands depend on that order (two chaos-run histories, tests/fixtures/known_nondeterminism).
REVIEWS_AT_SAFE_POINT_PATCH = "reviews-applied-at-the-top-of-the-loop"
# Marks runs that act on a passed review deadline before applying the reviews queued meanwhile. A worker that
# takes a case over cold may get the deadline's timer and a decision in one task and run either first (replay
# runs the decision first, temporalio/sdk-python#1591): acting on the deadline first gives both orders the same
# commands. The case is raised as overdue, as it was, and the decision applies right after (chaos seed 1).
DEADLINE_BEFORE_REVIEWS_PATCH = "review-deadline-before-queued-reviews"
# Marks runs that apply a review only in a workflow task after the one that accepted it. On a worker that takes a
# case over cold, the SDK may deliver an update after the task's other work has issued commands (a local
# activity, a timer), where replay delivers it first (temporalio/sdk-python#1591): chaos seeds 1, twice. Nothing
# the task does may depend on the review, so nothing does: it waits, unseen by the loop, for the next task, which
# the API starts with the ``review_queued`` signal right after the update (or any other event does).
REVIEWS_A_TASK_LATER_PATCH = "reviews-applied-in-a-later-task"
# Marks runs that keep one timer for the loop's next wake-up (the review deadline, a side effect's retry) while
# that time stands, instead of starting and cancelling one on every wait: two history events less per arrival.
ONE_WAKE_TIMER_PATCH = "one-wake-timer"

ReviewRequest = ReviewDecision | Dismissal | RetryFiling


@dataclass(frozen=True)
class PendingReview:
    request: ReviewRequest
    # What the reviewer could have judged: the settled items the API saw (``media_seen``), else the items the case
    # held when the request came. Anything else moves on to the user's next case. Never read from state that
    # activity results change: the handler's place among them is what differs between a run and its replay.
    seen: frozenset[str]
    # The history's length in the workflow task that accepted it: applied only in a later task.
    accepted_at_length: int = 0


@workflow.defn
class CaseWorkflow(InlineCaseSteps, CaseMediaSteps, CaseFilingSteps, DecidedCaseSteps):
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
        self.decided = {case.case_number: case for case in start.decided_cases}
        self.last_closed = start.last_closed
        self.listing_media = start.listing_media
        self.media_cursor = start.media_cursor
        self.media_pages = start.media_pages
        self.history_event_limit = start.history_event_limit
        self.next_case: list[ContentItem] = []
        self.next_conversations: list[ConversationThread] = list(start.carried_conversations)
        # Cases can hold thousands of items: look them up by id, not by scanning.
        self._media_index = {m.media_id: m for m in self.state.media}
        self._awaiting_preservation = [m.media_id for m in self.state.media
                                       if m.evidence is None and m.preservation_error is None]
        self._awaiting_analysis = [m.media_id for m in self.state.media
                                   if m.evidence is not None and m.analysis is None]
        self._analysis_to_retry: list[str] = []
        # The same assessment as signals built afresh, without rebuilding every item's on every change.
        self._media_signals = MediaSignalCache()
        self._decided_media_ids: dict[int, tuple[list[MediaItem], int, frozenset[str]]] = {}
        self._analysis_retry_timer: asyncio.Task[None] | None = None
        self._analysis_retry_fired = False
        self._analysis_retry_on_timer = False
        self._changed = True
        self._child_filing = False
        self._reviews_at_safe_point = False
        self._urgency_table_v2 = False
        self._deadline_before_reviews = False
        self._reviews_a_task_later = False
        self._one_wake_timer = False
        self._wake_timer: asyncio.Task[None] | None = None
        self._wake_timer_at: datetime | None = None
        self._wake_timer_fired = False
        self._pending_reviews: list[PendingReview] = []
        self._seen_by_reviewer: frozenset[str] | None = None
        # Never behind a timer this run has seen fire: a worker taking over cold has been seen to report the
        # time of an earlier task after one, where replay reports the task's own (chaos seed 23).
        self._clock = workflow.now()
        self._published_search_attributes: dict[str, object] = {}
        self._published_rows: dict[int, CaseSummaryUpdate] = {}
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
        known = self._media_index.get(item.content_id)
        if known is not None:
            # The same item again, perhaps for another reason (a user report after a hash match): keep every reason.
            if self._add_reason(known, item.reason):
                self._changed = True
            return
        if any(c.content_id == item.content_id for c in self.next_case) or self._in_decided_case(item.content_id):
            return
        if self.state.status is not CaseStatus.AWAITING_REVIEW:
            self.next_case.append(item)
            return
        if self._child_filing and not self._has_content(self.state):
            self.state.opened_at = workflow.now()  # the user's next case opens with its first content
        media = MediaItem(media_id=item.content_id, content=item, evidence=item.media.evidence,
                          reasons=[item.reason], analysis=item.analysis)
        if item.user is not None:
            known = self.state.user_metadata
            self.state.user_metadata = item.user if known is None else merge_user_metadata(known, item.user)
        self.state.media.append(media)
        self._media_index[media.media_id] = media
        if media.evidence is None:
            self._awaiting_preservation.append(media.media_id)
        elif media.analysis is None:
            self._awaiting_analysis.append(media.media_id)
        self._changed = True

    @workflow.signal
    def add_content_batch(self, items: list[ContentItem]) -> None:
        # POST /v1/content/batch: a user's items in one signal (one history event, one workflow task), each
        # taken exactly as ``add_content`` takes it. A new signal name, so no recorded history changes.
        for item in items:
            self.add_content(item)

    @workflow.signal
    def add_conversation(self, thread: ConversationThread) -> None:
        if thread.org_id != self.state.org_id or thread.user_id != self.state.user_id:
            workflow.logger.warning("conversation for another case ignored")
            return
        if self.state.status is not CaseStatus.AWAITING_REVIEW:
            self.next_conversations.append(thread)
            return
        if self._child_filing and not self._has_content(self.state):
            self.state.opened_at = workflow.now()
        # A thread sent again (more messages arrived) replaces the earlier copy.
        self.state.conversations = [c for c in self.state.conversations if c.thread_id != thread.thread_id]
        self.state.conversations.append(thread)
        self._changed = True

    @workflow.signal
    def filing_report(self, report: FilingReport) -> None:
        self._take_filing_report(report)

    @workflow.query
    def case(self) -> CaseState:
        """The user's oldest case still open (filing before awaiting review), else the last one closed."""
        if self.decided:
            return self.decided[min(self.decided)]
        if self._has_content(self.state) or self.last_closed is None:
            return self.state
        return self.last_closed

    @workflow.query
    def case_numbered(self, case_number: int) -> CaseState | None:
        """One case of the user by its number, while the user's workflow still holds it."""
        for case in (self.state, *self.decided.values(), self.last_closed):
            if case is not None and case.case_number == case_number:
                return case
        return None

    @workflow.update
    def decide(self, decision: ReviewDecision) -> DecisionAccepted:
        return self._take_review(decision)

    def _apply_decision(self, decision: ReviewDecision) -> None:
        case = self._case_to_act_on(decision.case_number)
        assert case is not None
        if case.status is CaseStatus.NEEDS_ATTENTION and case.filing.report_id is not None:
            case.retract_report = "the reviewer decided the case again"
        case.decision = decision
        case.status = CaseStatus.FILING
        case.attention_reason = None
        case.attention_permanent = False
        self._changed = True

    @decide.validator
    def _validate_decision(self, decision: ReviewDecision) -> None:
        self._refuse_if_review_pending(decision.case_number)
        case = self._case_or_refuse(decision.case_number)
        errors = decision_errors(case, decision, can_retract=self._child_filing)
        if errors and errors[0].startswith("case:"):
            raise StaleCase(_naming_case_number(errors[0]))
        if errors:
            raise ApplicationError("; ".join(errors), type="InvalidDecision", non_retryable=True)

    @workflow.update
    def dismiss(self, dismissal: Dismissal) -> DecisionAccepted:
        return self._take_review(dismissal)

    def _apply_dismissal(self, dismissal: Dismissal) -> None:
        case = self._case_to_act_on(dismissal.case_number)
        assert case is not None
        if case.status is CaseStatus.NEEDS_ATTENTION and case.filing.report_id is not None:
            case.retract_report = "the reviewer dismissed the case"
        case.dismissal = dismissal
        case.status = CaseStatus.DISMISSED
        self._changed = True

    @dismiss.validator
    def _validate_dismissal(self, dismissal: Dismissal) -> None:
        self._refuse_if_review_pending(dismissal.case_number)
        case = self._case_or_refuse(dismissal.case_number)
        reviewable = case.status is CaseStatus.AWAITING_REVIEW or (
            case.status is CaseStatus.NEEDS_ATTENTION and (self._child_filing or case.filing.report_id is None))
        if not reviewable:
            raise StaleCase(f"case_number: a case that is {case.status.value} cannot be dismissed")

    @workflow.update
    def retry_filing(self, request: RetryFiling) -> DecisionAccepted:
        return self._take_review(request)

    def _apply_retry(self, request: RetryFiling) -> None:
        case = self._case_to_act_on(request.case_number)
        assert case is not None
        case.status = CaseStatus.FILING
        case.attention_reason = None
        self._changed = True

    def _take_review(self, request: ReviewRequest) -> DecisionAccepted:
        """Accept a reviewer's request; the run applies it at the top of its loop (older runs: at once)."""
        case = self._case_to_act_on(request.case_number)
        assert case is not None
        case_id = f"{case.workflow_id}/{case.case_number}"
        status = CaseStatus.DISMISSED if isinstance(request, Dismissal) else CaseStatus.FILING
        if self._reviews_at_safe_point:
            shown = getattr(request, "media_seen", None)
            seen = frozenset(shown if shown is not None else (m.media_id for m in case.media))
            self._pending_reviews.append(PendingReview(request, seen, workflow.info().get_current_history_length()))
        else:
            self._apply_review(request)
        if not self._reviews_a_task_later:
            self._changed = True  # later runs: the loop must not even wake for it in this task
        return DecisionAccepted(case_id=case_id, status=status)

    @workflow.query
    def queued_reviews(self) -> list[int]:
        """The numbers of the cases with a review accepted and not yet applied."""
        return [review.request.case_number or self.state.case_number for review in self._pending_reviews]

    @workflow.signal
    def review_queued(self) -> None:
        """Sent by the API right after a review's update: the task it brings is one that may apply the review."""

    def _reviews_due(self) -> list[PendingReview]:
        """The queued reviews this workflow task may apply: all of them in older runs, else those accepted in an
        earlier task."""
        if not self._reviews_a_task_later:
            return self._pending_reviews
        length = workflow.info().get_current_history_length()
        return [review for review in self._pending_reviews if review.accepted_at_length < length]

    def _apply_review(self, request: ReviewRequest) -> None:
        if isinstance(request, ReviewDecision):
            self._apply_decision(request)
        elif isinstance(request, Dismissal):
            self._apply_dismissal(request)
        else:
            self._apply_retry(request)

    def _apply_pending_reviews(self) -> None:
        due = self._reviews_due()
        applied = {id(review) for review in due}
        self._pending_reviews = [review for review in self._pending_reviews if id(review) not in applied]
        for review in due:
            if self._case_to_act_on(review.request.case_number) is self.state:
                self._seen_by_reviewer = review.seen
            self._apply_review(review.request)

    def _refuse_if_review_pending(self, case_number: int | None) -> None:
        """A second request for a case whose first is accepted but not yet applied is refused as stale."""
        number = self.state.case_number if case_number is None else case_number
        if any((r.request.case_number or self.state.case_number) == number for r in self._pending_reviews):
            raise StaleCase("case_number: a review of this case was just accepted; reload it before acting again")

    @retry_filing.validator
    def _validate_retry(self, request: RetryFiling) -> None:
        self._refuse_if_review_pending(request.case_number)
        case = self._case_or_refuse(request.case_number)
        errors = retry_errors(case, self.policy) if self._child_filing else (
            [] if case.status is CaseStatus.NEEDS_ATTENTION else
            [f"case: only a case that needs attention can be retried, this one is {case.status.value}"])
        if errors:
            raise StaleCase(_naming_case_number(errors[0]))

    def _case_to_act_on(self, case_number: int | None) -> CaseState | None:
        """The case a reviewer's request names: the open one, or a decided one that needs attention. A request
        from before requests named their case acts on the open one."""
        if case_number is None or case_number == self.state.case_number:
            if case_number is not None and self._child_filing and not self._has_content(self.state):
                return None  # the user's next case has not opened
            return self.state
        return self.decided.get(case_number)

    def _case_or_refuse(self, case_number: int | None) -> CaseState:
        case = self._case_to_act_on(case_number)
        if case is None:
            raise StaleCase(f"case_number: this user has no open case {case_number}; the case was closed or moved "
                            f"on (the open case is {self.state.case_number}), reload it before deciding")
        return case

    def _in_decided_case(self, content_id: str) -> bool:
        """Already in a case the reviewer decided: the same content must not be queued (and reported) again."""
        closed = [self.last_closed] if self.last_closed is not None else []
        return any(content_id in self._media_ids_of(case) for case in [*self.decided.values(), *closed])

    def _media_ids_of(self, case: CaseState) -> frozenset[str]:
        """A decided case's media ids, kept while its media list stays the same: each item arriving while a
        case of thousands files was checked against every one of them."""
        known = self._decided_media_ids.get(case.case_number)
        if known is None or known[0] is not case.media or known[1] != len(case.media):
            known = (case.media, len(case.media), frozenset(m.media_id for m in case.media))
            self._decided_media_ids[case.case_number] = known
        return known[2]

    @staticmethod
    def _has_content(case: CaseState) -> bool:
        return bool(case.media or case.conversations)

    # ---- the business process ----

    @workflow.run
    async def run(self, start: CaseStart) -> CaseState:
        self._child_filing = workflow.patched(USER_WORKFLOW_PATCH)
        if not self._child_filing:
            return await self._run_one_case_inline(start)
        self._reviews_at_safe_point = workflow.patched(REVIEWS_AT_SAFE_POINT_PATCH)
        if self._reviews_at_safe_point:
            # Asked here, once, so the marker's place in the history never depends on what the case holds.
            self._urgency_table_v2 = workflow.patched(URGENCY_TABLE_PATCH)
            self._deadline_before_reviews = workflow.patched(DEADLINE_BEFORE_REVIEWS_PATCH)
            self._reviews_a_task_later = workflow.patched(REVIEWS_A_TASK_LATER_PATCH)
            self._one_wake_timer = workflow.patched(ONE_WAKE_TIMER_PATCH)
        if start.state is None and start.case_number == 1 and not start.prior_report_ids:
            await self._continue_user_history()
            self.listing_media = True
        while self._user_has_open_cases():
            await self._wait_for_something_to_do()
            if self._deadline_before_reviews:
                await self._escalate_if_review_overdue()
            self._apply_pending_reviews()
            await self._gather_media()
            if not self._deadline_before_reviews:
                await self._escalate_if_review_overdue()
            await self._hand_over_reviewed_case()
            await self._follow_up_decided_cases()
            await self._publish_changes()
            if self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._pending_reviews:  # else the next round applies them, then continues as new
                    workflow.continue_as_new(self._continued_start())
            if not self._user_has_open_cases():
                # A signal may have arrived while the last step ran: look once more before closing.
                await workflow.wait_condition(workflow.all_handlers_finished)
        return self.last_closed or self.state

    def _user_has_open_cases(self) -> bool:
        return (self._has_content(self.state) or bool(self.decided) or self.listing_media
                or bool(self.next_case or self.next_conversations or self._pending_reviews))

    async def _wait_for_something_to_do(self) -> None:
        wake_at = [t for t in (self._review_deadline_to_watch(), self._next_retry_at()) if t is not None]
        if self._one_wake_timer:
            await self._wait_until_something_or(min(wake_at) if wake_at else None)
            return
        timeout = max(min(wake_at) - self._now(), timedelta(seconds=1)) if wake_at else None
        # On a timeout (a review deadline, a side effect's retry time) the steps below see what is due.
        try:
            await workflow.wait_condition(self._something_to_do, timeout=timeout)
        except TimeoutError:
            self._clock = max(self._clock, min(wake_at))

    def _something_to_do(self) -> bool:
        return (self._changed or bool(self._reviews_due() or self._awaiting_preservation
                                      or self._awaiting_analysis or self._analysis_retry_fired)
                or self.listing_media or self.state.status is not CaseStatus.AWAITING_REVIEW)

    async def _wait_until_something_or(self, wake_at: datetime | None) -> None:
        """Wait for work or for ``wake_at``, on a timer kept across waits while ``wake_at`` stays the same."""
        if not self._wake_timer_fired and wake_at != self._wake_timer_at:
            if self._wake_timer is not None:
                self._wake_timer.cancel()
            self._wake_timer, self._wake_timer_at = None, wake_at
            if wake_at is not None:
                self._wake_timer = asyncio.create_task(self._wake_after(max(wake_at - self._now(),
                                                                            timedelta(seconds=1))))
        await workflow.wait_condition(lambda: self._wake_timer_fired or self._something_to_do())
        if self._wake_timer_fired:
            # The steps below see what is due at the time the timer was for.
            assert self._wake_timer_at is not None
            self._clock = max(self._clock, self._wake_timer_at)
            self._wake_timer_fired, self._wake_timer, self._wake_timer_at = False, None, None

    async def _wake_after(self, delay: timedelta) -> None:
        await workflow.sleep(delay)
        self._wake_timer_fired = True

    def _now(self) -> datetime:
        """Workflow time, and never earlier than a wake-up time whose timer fired."""
        self._clock = max(self._clock, workflow.now())
        return self._clock

    async def _gather_media(self) -> None:
        """One round of gathering, its steps side by side: the next page of the platform's media list, a batch
        preserved, and a batch (preserved earlier) hashed and matched."""
        self._retry_analysis_when_due(self._now())
        steps = []
        if self.listing_media:
            steps.append(self._list_media_page())
        if self._awaiting_preservation:
            steps.append(self._preserve_media_batch())
        if self._awaiting_analysis:
            steps.append(self._analyze_media_batch())
        await asyncio.gather(*steps)

    def _media(self, media_id: str) -> MediaItem | None:
        return self._media_index.get(media_id)

    def _review_deadline_to_watch(self) -> datetime | None:
        state = self.state
        if state.status is not CaseStatus.AWAITING_REVIEW or not self._has_content(state):
            return None
        return state.review_deadline if state.escalated_at is None else None

    async def _escalate_if_review_overdue(self) -> None:
        """Nobody decided in time: raise the case to Moderator Managers (queue, search attribute, webhook). A
        webhook that fails is recorded on the case and sent again later."""
        state = self.state
        if state.status is not CaseStatus.AWAITING_REVIEW or not self._has_content(state):
            return
        if state.escalated_at is None:
            if state.review_deadline is None or self._now() < state.review_deadline:
                return
            state.escalated_at = self._now()
            self._changed = True
        elif open_failure(state, "escalation_webhook") is None or not failure_due(state, "escalation_webhook",
                                                                                  self._now()):
            return
        await self._notify_escalation()

    async def _notify_escalation(self) -> None:
        state = self.state
        assert state.review_deadline is not None and state.urgency is not None and state.escalated_at is not None
        try:
            await workflow.execute_activity_method(
                NotificationActivities.notify_escalation,
                EscalationNotice(org_id=state.org_id, case_ref=state.workflow_id, case_number=state.case_number,
                                 urgency_level=state.urgency.level.value, review_deadline=state.review_deadline,
                                 escalated_at=state.escalated_at),
                start_to_close_timeout=timedelta(seconds=30),
                # A few quick tries; after that the case's own durable retry takes over.
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
                task_queue=task_queues.platform(),
            )
        except ActivityError as error:
            self._record_failure(state, "escalation_webhook", error)
        else:
            resolve_failure(state, "escalation_webhook")
            self._changed = True

    async def _hand_over_reviewed_case(self) -> None:
        """A decided case goes to filing and a dismissed one closes; either way the user's next case opens,
        with what arrived meanwhile."""
        reviewed = self.state
        if reviewed.status is CaseStatus.AWAITING_REVIEW:
            return
        named = {d.media_id for d in reviewed.decision.media} if reviewed.decision else set()
        # Items still being preserved or hashed that the reviewer has not decided on belong to the next case.
        unsettled = {*self._awaiting_preservation, *self._awaiting_analysis, *self._analysis_to_retry} - named
        if self._seen_by_reviewer is not None:
            # Reviewed at the loop's top: what the reviewer could not have judged moves on, settled since or not.
            unsettled |= {m.media_id for m in reviewed.media} - self._seen_by_reviewer - named
            self._seen_by_reviewer = None
        moving = [m for m in reviewed.media if m.media_id in unsettled]
        reviewed.media = [m for m in reviewed.media if m.media_id not in unsettled]
        reviewed.review_deadline = None
        escalation = open_failure(reviewed, "escalation_webhook")
        if escalation is not None:
            escalation.retry_at = None  # reviewed after all: nobody needs to be told it is overdue
        self.state = CaseState(
            workflow_id=reviewed.workflow_id, case_number=reviewed.case_number + 1, org_id=reviewed.org_id,
            user_id=reviewed.user_id, opened_at=workflow.now(), prior_report_ids=list(reviewed.prior_report_ids),
            media=moving, media_listed=reviewed.media_listed, media_list_error=reviewed.media_list_error,
        )
        for media in moving:
            if media.content.user is not None:
                known = self.state.user_metadata
                self.state.user_metadata = (media.content.user if known is None
                                            else merge_user_metadata(known, media.content.user))
        self._media_index = {m.media_id: m for m in moving}
        self._media_signals = MediaSignalCache()  # the reviewed case's items are no longer assessed
        self._awaiting_preservation = [i for i in self._awaiting_preservation if i in unsettled]
        self._awaiting_analysis = [i for i in self._awaiting_analysis if i in unsettled]
        self._analysis_to_retry = [i for i in self._analysis_to_retry if i in unsettled]
        resolve_failure(reviewed, "media_analysis")  # what still waits for it moved on with the next case
        if reviewed.status is CaseStatus.DISMISSED:
            self.decided[reviewed.case_number] = reviewed
            await self._close(reviewed)
        else:
            self.decided[reviewed.case_number] = reviewed
        carried, self.next_case = self.next_case, []
        for item in carried:
            self.add_content(item)
        threads, self.next_conversations = self.next_conversations, []
        for thread in threads:
            self.add_conversation(thread)
        self._changed = True

    async def _publish_changes(self) -> None:
        """Bring the queue rows, the search attributes and the UI details up to date."""
        if self._has_content(self.state):
            self._reassess_urgency()
        for case in [*self.decided.values(), self.state]:
            if case is self.state and not self._has_content(case):
                continue
            await self._publish_row(case)
        self._changed = False
        head = self.case()
        self._upsert_search_attributes(head)
        self._show_details(head)

    async def _publish_row(self, case: CaseState) -> None:
        """The case's queue row, when it changed; a database that cannot take it is recorded and retried."""
        row = _summary_row(case)
        failure = open_failure(case, "queue_row")
        waiting_to_retry = failure is not None and failure.retry_at is not None and failure.retry_at > self._now()
        if self._published_rows.get(case.case_number) == row or waiting_to_retry:
            return
        try:
            await workflow.execute_local_activity_method(
                CaseIndexActivities.publish_case_summary, _row_to_send(row, case),
                start_to_close_timeout=timedelta(seconds=10), schedule_to_close_timeout=timedelta(seconds=30),
                retry_policy=QUEUE_ROW_RETRY,
            )
        except ActivityError as error:
            self._record_failure(case, "queue_row", error)
            return
        self._published_rows[case.case_number] = row
        resolve_failure(case, "queue_row")

    def _history_is_long(self) -> bool:
        """At the top of the loop every step has finished: a safe point to continue as new, in any phase."""
        info = workflow.info()
        return (info.is_continue_as_new_suggested() or info.get_current_history_length() >= self.history_event_limit
                or info.get_current_history_size() >= HARD_HISTORY_BYTES)

    def _continued_start(self) -> CaseStart:
        return CaseStart(org_id=self.state.org_id, user_id=self.state.user_id, case_number=self.state.case_number,
                         prior_report_ids=self.state.prior_report_ids, carried_content=self.next_case,
                         carried_conversations=self.next_conversations, policy=self.policy, review=self.review,
                         state=self.state, decided_cases=list(self.decided.values()), last_closed=self.last_closed,
                         listing_media=self.listing_media, media_cursor=self.media_cursor,
                         media_pages=self.media_pages, history_event_limit=self.history_event_limit)

    def _reassess_urgency(self) -> None:
        """Recompute urgency from everything the case holds now, and the review deadline it implies."""
        state = self.state
        # Cases started before the urgency table changed keep the old one, so their histories replay.
        v2 = self._urgency_table_v2 or workflow.patched(URGENCY_TABLE_PATCH)
        policy = DEFAULT_POLICY if v2 else URGENCY_POLICY_V1
        state.urgency = assess_urgency(case_urgency_signals(state, workflow.now(), signal_of=self._media_signals),
                                       policy)
        if state.status is CaseStatus.AWAITING_REVIEW:
            state.review_deadline = state.opened_at + self.review.window(state.urgency.level)
        else:
            state.review_deadline = None

    def _show_details(self, state: CaseState) -> None:
        workflow.set_current_details(_details_markdown(state))

    def _upsert_search_attributes(self, state: CaseState) -> None:
        """What an operator filters by in the Temporal UI, for the user's head case; sent only when changed."""
        deadline = _ncmec_deadline(state)
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


def _naming_case_number(message: str) -> str:
    """The request named a case that cannot take it: the field to fix is ``case_number`` (reload the case)."""
    return "case_number: " + message.removeprefix("case: ")


def _ncmec_deadline(case: CaseState) -> datetime | None:
    filing = case.filing
    if filing.opened_at is None or filing.finished_at is not None:
        return None
    return ncmec_deletion_time(filing.opened_at, filing.last_modified_at)


def _row_to_send(row: CaseSummaryUpdate, case: CaseState) -> CaseSummaryUpdate:
    """A closed case goes with its row, whole: its record keeps it readable by number once the workflow lets it go;
    the urgency assessment goes too, for the timeline. Neither is part of the row compared to decide whether to
    publish, and a local activity's input is not compared on replay, so this needs no patch."""
    closed = case.status in (CaseStatus.FILED, CaseStatus.DISMISSED)
    return row.model_copy(update={"updated_at": workflow.now(), "case": case if closed else None,
                                  "urgency": case.urgency})


def _summary_row(case: CaseState) -> CaseSummaryUpdate:
    """The queue row as it stands; ``updated_at`` is set when it is sent."""
    urgency = case.urgency
    return CaseSummaryUpdate(
        workflow_id=case.workflow_id, case_number=case.case_number, org_id=case.org_id, status=case.status,
        urgent=case.urgent, urgency_level=urgency.level.value if urgency else "normal",
        urgency_score=urgency.score if urgency else 0, review_deadline=case.review_deadline,
        escalated_at=case.escalated_at, media_count=len(case.media), ncmec_report_id=case.filing.report_id,
        ncmec_deadline=_ncmec_deadline(case), opened_at=case.opened_at, updated_at=case.opened_at,
    )
