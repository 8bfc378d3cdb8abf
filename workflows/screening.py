"""One content item screened: preserved, hashed, matched against the org's banks, classified, and routed
to the NCMEC queue (the user's case), to triage for a reviewer, or nowhere.

No item is ever dropped: when a step gives up (the media cannot be fetched, hashing, the classifier or the
user's case cannot be reached), the item waits in triage with the reason, for a person to decide.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.detection import DetectionActivities
    from activities.media import MediaActivities
    from activities.triage import TriageActivities
    from models.case import ContentItem, EnqueueReason, MediaAnalysis, MediaSource
    from models.filing import AnalyzeMediaInput, PreserveMediaInput
    from models.routing import Route, route_screened_item
    from models.screening import (
        ScreeningOutcome,
        ScreeningStart,
        TriageClosed,
        TriageDecision,
        TriageRecord,
        detection_reason,
    )
    from workflows import task_queues

# Hashing, matching, classifying and fetching: a few tries, then the item waits in triage with the reason.
FIVE_ATTEMPTS = RetryPolicy(maximum_attempts=5)
TEN_ATTEMPTS = RetryPolicy(maximum_attempts=10)
# The triage table is where an item goes when nothing else can take it: its writes are retried until the
# database answers, so a database outage never fails the screening (and never drops the item).
UNTIL_RECORDED = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
# Handing an item to the user's case: retried for about a day before it waits in triage for a person.
ENQUEUE_ROUNDS = 8
ENQUEUE_PAUSE = timedelta(minutes=3)
UNSCREENED = "unscreened"
NEVER_DROP_PATCH = "screening-never-drops-an-item"


@workflow.defn
class ScreeningWorkflow:
    @workflow.init
    def __init__(self, start: ScreeningStart) -> None:
        self.outcome: ScreeningOutcome | None = None
        self.decision: TriageDecision | None = None

    @workflow.query
    def result(self) -> ScreeningOutcome | None:
        return self.outcome

    @workflow.update
    def triage(self, decision: TriageDecision) -> ScreeningOutcome:
        self.decision = decision
        assert self.outcome is not None
        return self.outcome

    @triage.validator
    def _validate_triage(self, decision: TriageDecision) -> None:
        if self.outcome is None or self.outcome.route is not Route.TRIAGE or self.decision is not None:
            raise ApplicationError("item: only an item waiting in triage can be escalated or dismissed",
                                   type="InvalidDecision", non_retryable=True)

    @workflow.run
    async def run(self, start: ScreeningStart) -> ScreeningOutcome:
        item = start.item
        try:
            item = await self._preserved(item)
            analysis = await self._analysis(item)
        except _Unscreenable as problem:
            if not workflow.patched(NEVER_DROP_PATCH):
                self.outcome = ScreeningOutcome(route=Route.CLEAR, error=str(problem))
                return self.outcome
            return await self._wait_in_triage(item, None, str(problem))
        item = item.model_copy(update={"analysis": analysis})
        route = route_screened_item(bank_matched=bool(analysis.matches), priority=analysis.classifier_priority,
                                    thresholds=start.thresholds)
        if route is Route.NCMEC:
            # Published only once the item is in its case, so whoever reads it can follow case_ref.
            try:
                case_ref = await self._enqueue(item, _detection_reason(analysis))
            except ActivityError as error:
                return await self._wait_in_triage(item, analysis, f"the item could not be put in the user's case: "
                                                                  f"{_cause(error)}")
            self.outcome = ScreeningOutcome(route=route, analysis=analysis, case_ref=case_ref)
        else:
            self.outcome = ScreeningOutcome(route=route, analysis=analysis)
            if route is Route.TRIAGE:
                await self._triage(item, analysis)
        return self.outcome

    async def _wait_in_triage(self, item: ContentItem, analysis: MediaAnalysis | None, error: str
                              ) -> ScreeningOutcome:
        self.outcome = ScreeningOutcome(route=Route.TRIAGE, analysis=analysis, error=error)
        await self._triage(item, analysis, error)
        return self.outcome

    async def _preserved(self, item: ContentItem) -> ContentItem:
        if item.media.evidence is not None:
            return item
        try:
            preserved = await workflow.execute_activity_method(
                MediaActivities.preserve_media,
                PreserveMediaInput(org_id=item.org_id, workflow_id=workflow.info().workflow_id,
                                   media_id=item.content_id, source=item.media),
                task_queue=task_queues.platform(), start_to_close_timeout=timedelta(minutes=10),
                retry_policy=FIVE_ATTEMPTS)
        except ActivityError as error:
            raise _Unscreenable(f"the media could not be preserved: {_cause(error)}") from None
        if preserved.evidence is None:
            raise _Unscreenable(preserved.error or "the media could not be fetched")
        return item.model_copy(update={"media": MediaSource(evidence=preserved.evidence)})

    async def _analysis(self, item: ContentItem) -> MediaAnalysis:
        assert item.media.evidence is not None
        request = AnalyzeMediaInput(org_id=item.org_id, evidence=item.media.evidence)
        try:
            analysis = await workflow.execute_activity_method(
                DetectionActivities.analyze_media, request, task_queue=task_queues.detection(),
                start_to_close_timeout=timedelta(minutes=10), retry_policy=FIVE_ATTEMPTS)
        except ActivityError as error:
            raise _Unscreenable(f"the media could not be hashed and matched: {_cause(error)}") from None
        if analysis.matches:
            return analysis  # a bank match decides on its own; no need to ask the classifier
        try:
            priority = await workflow.execute_activity_method(
                DetectionActivities.classify_media, request, task_queue=task_queues.detection(),
                start_to_close_timeout=timedelta(minutes=10), retry_policy=FIVE_ATTEMPTS)
        except ActivityError as error:
            raise _Unscreenable(f"the classifier could not be reached: {error.cause or error}") from None
        return analysis.model_copy(update={"classifier_priority": priority})

    async def _triage(self, item: ContentItem, analysis: MediaAnalysis | None, error: str | None = None) -> None:
        screening_id = workflow.info().workflow_id
        priority = analysis.classifier_priority if analysis and analysis.classifier_priority else UNSCREENED
        await workflow.execute_activity_method(TriageActivities.record_triage, TriageRecord(
            screening_id=screening_id, org_id=item.org_id, creator_id=item.user_id, content_id=item.content_id,
            evidence=item.media.evidence, content_type=item.content_type, classifier_priority=priority,
            created_at=workflow.now(), screening_error=error),
            start_to_close_timeout=timedelta(minutes=1), retry_policy=UNTIL_RECORDED)
        assert self.outcome is not None
        while True:
            await workflow.wait_condition(lambda: self.decision is not None)
            decision = self.decision
            assert decision is not None
            if decision.action != "escalate":
                case_ref = None
                break
            try:
                if analysis is not None:
                    await self._enqueue(item, _detection_reason(analysis))
                case_ref = await self._enqueue(item, EnqueueReason(kind="manual_escalation", detail=decision.reason,
                                                                   by=decision.reviewer_id, at=workflow.now()))
            except ActivityError as failure:
                # Still in triage: the reviewer sees why and can escalate again.
                self.outcome.error = f"the item could not be put in the user's case: {_cause(failure)}"
                self.decision = None
                continue
            self.outcome.case_ref = case_ref
            break
        self.outcome.triage = "escalated" if decision.action == "escalate" else "dismissed"
        await workflow.execute_activity_method(TriageActivities.close_triage, TriageClosed(
            screening_id=screening_id, status=self.outcome.triage, decided_by=decision.reviewer_id,
            reason=decision.reason, case_ref=case_ref),
            start_to_close_timeout=timedelta(minutes=1), retry_policy=UNTIL_RECORDED)
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _enqueue(self, item: ContentItem, reason: EnqueueReason) -> str:
        """Signal the item into the user's case; when that keeps failing, pause and try again, for about a day."""
        for round_ in range(ENQUEUE_ROUNDS):
            try:
                return await workflow.execute_activity_method(
                    TriageActivities.enqueue_in_case, item.model_copy(update={"reason": reason}),
                    start_to_close_timeout=timedelta(minutes=1), retry_policy=TEN_ATTEMPTS)
            except ActivityError:
                if round_ == ENQUEUE_ROUNDS - 1:
                    raise
                await workflow.sleep(ENQUEUE_PAUSE * (round_ + 1))
        raise AssertionError("unreachable")


class _Unscreenable(Exception):
    pass


def _detection_reason(analysis: MediaAnalysis) -> EnqueueReason:
    return detection_reason(analysis, workflow.now())


def _cause(error: ActivityError) -> str:
    """The activity's own words (they name no secret), else what kind of failure it was."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return type(cause).__name__ if cause is not None else "unknown error"
