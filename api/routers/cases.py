"""Reviewers work the NCMEC queue: list cases, open one, decide, dismiss, retry a stuck filing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.claims import ClaimOut, case_key, claim_out, ensure_may_decide, holder_name, holder_names
from api.deps import AppSettings, AuditTrail, DbEngine, DbSession, NcmecReviewer, Principal, Store, Temporal, get_engine
from api.evidence_views import MEDIA_RESPONSES, evidence_response, viewed_by, viewed_media
from api.ownership import OwnedCaseRef
from api.problems import PROBLEM_RESPONSES, ProblemError, field_problems
from api.requests import IdempotencyKey, RequestBody
from cybertipline.enums import FileAnnotation, IncidentType, IndustryClassification, ReportAnnotation
from models.case import (
    OPEN_STATUSES,
    CaseState,
    CaseStatus,
    ConversationThread,
    DecisionAccepted,
    Dismissal,
    EnqueueReason,
    EvidenceRef,
    FilingProgress,
    MediaAnalysis,
    MediaDecision,
    RetryFiling,
    ReviewDecision,
    SideEffectFailure,
    broken_reason,
)
from models.claims import CaseClaim
from models.platform_metadata import FileMetadata, IntendedRecipientInfo, UserMetadata, VictimInfo
from models.records import CaseSummary, ClosedCase, utcnow
from models.retention import CaseTombstone
from models.review_rules import unseen_report_errors
from models.urgency import UrgencyAssessment, UrgencyLevel
from tipline.audit_log import AuditLog
from tipline.claims import claim_of, record_decided
from tipline.logging import get_logger
from tipline.settings import Settings, UnknownOrg
from tipline.temporal import case_ui_url
from workflows.case import CaseWorkflow

router = APIRouter(prefix="/v1/cases", tags=["review"], responses=PROBLEM_RESPONSES)
log = get_logger(__name__)
# How long a decision's answer waits for the case to apply it (workflows/case.py applies it a task later).
APPLIED_WAIT_SECONDS = 5.0
SIGNAL_AGAIN_SECONDS = 1.0


class QueueEntry(BaseModel):
    case_ref: str
    case_number: int
    status: CaseStatus
    urgent: bool
    urgency_level: UrgencyLevel
    urgency_score: int
    review_deadline: datetime | None
    escalated_at: datetime | None = Field(description="Set when the review deadline passed without a decision")
    media_count: int
    ncmec_report_id: int | None
    ncmec_deadline: datetime | None
    opened_at: datetime
    updated_at: datetime
    claim: ClaimOut | None = Field(description="Who holds the case now, since when; None when nobody does")
    claimed_at: datetime | None = Field(description="When the case was first claimed (kept through releases)")
    decided_at: datetime | None = Field(description="When a decision or dismissal was first accepted")


class CaseMedia(BaseModel):
    media_id: str
    file_name: str | None
    content_type: str | None
    uploaded_at: datetime | None
    evidence: EvidenceRef | None
    preservation_error: str | None
    reasons: list[EnqueueReason]
    analysis: MediaAnalysis | None = Field(description="Hashes and bank matches, once computed")
    broken: str | None = Field(description="Why the item cannot be judged as it is (never preserved, or its bytes "
                                           "could not be decoded and hashed); a broken item cannot be reported")
    report_text: str | None = Field(description="The text of the user report that sent the item, if any")
    upload_ip: str | None
    location_url: str | None
    file_metadata: FileMetadata | None = Field(description="What the platform said about the file")
    viewed: bool = Field(description="A person of the org has viewed the item (the view log)")
    viewed_by_you: bool = Field(description="You (this person, or this key) have viewed it: a person may report "
                                            "only what they have viewed (see POST …/decision)")
    content_url: str = Field(description="The bytes; every view is recorded")


class CaseView(BaseModel):
    case_ref: str
    case_number: int
    status: CaseStatus
    user_id: str = Field(description="The platform's id of the reported user")
    user_metadata: UserMetadata | None
    conversations: list[ConversationThread]
    waiting_reason: str | None = Field(description="Why filing is waiting, e.g. on the platform's callback")
    media_listed: bool = Field(description="Every media item the platform has for the user was requested")
    media_list_error: str | None
    opened_at: datetime
    media: list[CaseMedia]
    prior_report_ids: list[int]
    decision: ReviewDecision | None
    dismissal: Dismissal | None
    filing: FilingProgress
    attention_reason: str | None
    urgent: bool
    urgency: UrgencyAssessment | None = Field(
        description="Suggested urgency with its reasons; suggested_reason pre-fills escalate_to_high_priority")
    review_deadline: datetime | None
    escalated_at: datetime | None
    side_effect_failures: list[SideEffectFailure] = Field(
        description="Steps around the case that failed (escalation webhook, banking, queue row): when, why, "
                    "and when they are tried again. They never stop the case")
    attention_permanent: bool = Field(
        description="NCMEC refused the report for good: retry once its cause is fixed, or decide again or dismiss")
    files_unviewed_hash_matches: bool = Field(
        description="The org files hash-matched items nobody viewed (sent with fileViewedByEsp false)")
    temporal_ui_url: str
    claim: ClaimOut | None = Field(description="Who holds the case now, since when; None when nobody does")
    claimed_at: datetime | None = Field(description="When the case was first claimed (kept through releases)")
    decided_at: datetime | None = Field(description="When a decision or dismissal was first accepted")


class MediaDecisionIn(RequestBody):
    media_id: str
    reported: bool = Field(description="Sent to NCMEC as a Reported file")
    classification: IndustryClassification | None = None
    annotations: list[FileAnnotation] = []
    supplemental: bool = Field(default=False, description="Sent as Supplemental Reported (a screenshot, context)")
    # Not a field: whether the item was viewed comes from the view log, never from the client.


CASE_NUMBER = Field(ge=1, description="The case number the reviewer looked at (CaseView.case_number); a request "
                                     "for any other case of the user is refused with 409")


class DecisionIn(RequestBody):
    case_number: int = CASE_NUMBER
    incident_type: IncidentType | None = Field(default=None, description="Required; one of NCMEC's eight")
    media: list[MediaDecisionIn] = []
    report_annotations: list[ReportAnnotation] = []
    escalate_to_high_priority: str | None = Field(
        default=None, description="Sent to NCMEC as the urgency reason. Start from the case's suggested_reason: "
                                  "send it as is to confirm, edited to edit, or leave it out to clear it")
    additional_info: str | None = None
    victims: list[VictimInfo] = []
    intended_recipients: list[IntendedRecipientInfo] = []
    attach_conversations: list[str] = Field(default=[], description="Thread ids to file as conversation CSVs")
    urgency_suggestion_shown: str | None = Field(
        default=None, max_length=3000,
        description="The suggested urgency text the reviewer was shown (from the case or POST …/urgency-preview; "
                    "\"\" if none): the record says confirmed when escalate_to_high_priority equals it")
    text_only: bool = Field(default=False, description="File a report with no file and no conversation: without "
                                                       "it, a decision that reports nothing is refused")


class DismissalIn(RequestBody):
    case_number: int = CASE_NUMBER
    reason: str = Field(min_length=1, max_length=3000)


class RetryIn(RequestBody):
    case_number: int = CASE_NUMBER


QUEUE_ORDERS = {
    "urgency": (col(CaseSummary.urgent).desc(), col(CaseSummary.urgency_score).desc(), col(CaseSummary.opened_at)),
    "opened_at": (col(CaseSummary.opened_at),),
    # Oldest pick-up first, never-claimed cases last; newest decisions first.
    "claimed_at": (col(CaseClaim.first_claimed_at).asc().nulls_last(), col(CaseSummary.opened_at)),
    "decided_at": (col(CaseClaim.decided_at).desc().nulls_last(), col(CaseSummary.opened_at)),
}


@router.get("", response_model=list[QueueEntry], summary="The org's NCMEC queue, urgent and oldest first")
def list_queue(
    principal: NcmecReviewer, session: DbSession,
    status: Annotated[list[CaseStatus] | None, Query(description="Default: every open status")] = None,
    sort: Annotated[str, Query(pattern="^(urgency|opened_at|claimed_at|decided_at)$",
                               description="urgency (urgent, score, oldest), opened_at and claimed_at oldest "
                                           "first, decided_at newest first")] = "urgency",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QueueEntry]:
    statuses = [s.value for s in (status or OPEN_STATUSES)]
    rows = session.exec(
        select(CaseSummary, CaseClaim)
        .outerjoin(CaseClaim, (col(CaseClaim.workflow_id) == col(CaseSummary.workflow_id))
                   & (col(CaseClaim.case_number) == col(CaseSummary.case_number)))
        .where(CaseSummary.org_id == principal.org_id, col(CaseSummary.status).in_(statuses))
        .order_by(*QUEUE_ORDERS[sort])
        .limit(limit)
    ).all()
    names = holder_names(session, principal.org_id, [c.claimed_by for _, c in rows if c is not None])
    return [QueueEntry(case_ref=r.workflow_id, claim=claim_out(c, names), claimed_at=c.first_claimed_at if c else None,
                       decided_at=c.decided_at if c else None, **r.model_dump(exclude={"workflow_id", "org_id"}))
            for r, c in rows]


# A case the retention purge has taken answers 410, naming when; its tombstone stays (see README "Retention").
PURGED_RESPONSE: dict[int | str, dict[str, Any]] = {
    410: {**PROBLEM_RESPONSES[404], "description": "The case was purged under the retention policy"}}


@router.get("/{case_ref}", response_model=CaseView, summary="One case with its user and all its media",
            responses=PURGED_RESPONSE)
async def get_case(case_ref: OwnedCaseRef, principal: NcmecReviewer, temporal: Temporal, settings: AppSettings,
                   engine: DbEngine,
                   case_number: Annotated[int | None, Query(ge=1, description="One case of the user by number, "
                                                            "open or closed; default: the oldest still open")] = None
                   ) -> CaseView:
    state = await _case_state(temporal, principal, case_ref, case_number, engine)
    viewed = await run_in_threadpool(viewed_media, engine, principal.org_id, case_ref)
    mine = await run_in_threadpool(viewed_by, engine, principal, case_ref)
    claim = await run_in_threadpool(claim_of, engine, case_ref, state.case_number)
    holder = claim.claimed_by if claim else None
    name = await run_in_threadpool(holder_name, engine, principal.org_id, holder)
    return CaseView(
        claim=claim_out(claim, {holder: name} if holder and name else {}),
        claimed_at=claim.first_claimed_at if claim else None,
        decided_at=claim.decided_at if claim else None,
        case_ref=case_ref, case_number=state.case_number, status=state.status, user_id=state.user_id,
        user_metadata=state.user_metadata, conversations=state.conversations, waiting_reason=state.waiting_reason,
        media_listed=state.media_listed, media_list_error=state.media_list_error,
        opened_at=state.opened_at, prior_report_ids=state.prior_report_ids, decision=state.decision,
        dismissal=state.dismissal, filing=state.filing, attention_reason=state.attention_reason,
        urgent=state.urgent, urgency=state.urgency, review_deadline=state.review_deadline,
        escalated_at=state.escalated_at, side_effect_failures=state.side_effect_failures,
        attention_permanent=state.attention_permanent, temporal_ui_url=case_ui_url(settings, case_ref),
        files_unviewed_hash_matches=_org_files_unviewed(settings, principal.org_id),
        media=[CaseMedia(media_id=m.media_id, file_name=m.content.file_name,
                          content_type=m.content.content_type, uploaded_at=m.content.uploaded_at,
                          evidence=m.evidence, preservation_error=m.preservation_error, reasons=m.reasons,
                          analysis=m.analysis, broken=broken_reason(m), report_text=m.content.report_text,
                          upload_ip=m.content.upload_ip, location_url=m.content.location_url,
                          file_metadata=m.content.file, viewed=m.media_id in viewed,
                          viewed_by_you=m.media_id in mine,
                          content_url=f"/v1/cases/{case_ref}/media/{m.media_id}/content"
                                      f"?case_number={state.case_number}")
               for m in state.media],
    )


@router.get("/{case_ref}/media/{media_id}/content", response_class=StreamingResponse,
            summary="A media item's preserved bytes (the view is recorded)",
            responses={**MEDIA_RESPONSES, **PURGED_RESPONSE})
async def get_media_content(case_ref: OwnedCaseRef, media_id: str, principal: NcmecReviewer, temporal: Temporal,
                            store: Store, engine: Annotated[Engine, Depends(get_engine)], audit: AuditTrail,
                            case_number: Annotated[int | None, Query(ge=1, description="The case holding the "
                                                                     "media; default: the oldest still open")] = None
                            ) -> StreamingResponse:
    state = await _case_state(temporal, principal, case_ref, case_number, engine)
    media = state.media_item(media_id)
    if media is None or media.evidence is None:
        raise ProblemError(404, "No preserved media with that id in this case")
    return await evidence_response(store, engine, audit, principal, sha256=media.evidence.sha256, ref=case_ref,
                                   media_id=media_id)


@router.post("/{case_ref}/decision", response_model=DecisionAccepted,
             summary="File the case: the reviewer's classification, then the CyberTip is built and sent",
             description="A signed-in person reports (`reported: true`) only items they have viewed themselves "
                         "(GET the item's content_url; the view log under their account), else 422 naming "
                         "`media[i].media_id`; bank-matched items are exempt when the org files them unviewed. "
                         "An API key (automation) is not held to it: what it reports is sent with fileViewedByEsp "
                         "from the org's view log.")
async def decide(case_ref: OwnedCaseRef, body: DecisionIn, principal: NcmecReviewer, temporal: Temporal,
                 audit: AuditTrail, engine: DbEngine, settings: AppSettings,
                 idempotency_key: IdempotencyKey = None) -> DecisionAccepted:
    # fileViewedByEsp says whether the provider looked at the file: the view log answers, not the reviewer's word.
    viewed = await run_in_threadpool(viewed_media, engine, principal.org_id, case_ref)
    await ensure_may_decide(engine, principal, case_ref, body.case_number)
    state = await _open_state(temporal, principal, case_ref, body.case_number)
    decision = ReviewDecision(
        reviewer_id=principal.actor, case_number=body.case_number, incident_type=body.incident_type,
        media=[MediaDecision(**m.model_dump(), viewed=m.media_id in viewed) for m in body.media],
        report_annotations=body.report_annotations, escalate_to_high_priority=body.escalate_to_high_priority,
        additional_info=body.additional_info, victims=body.victims, intended_recipients=body.intended_recipients,
        attach_conversations=body.attach_conversations, urgency_suggestion_shown=body.urgency_suggestion_shown,
        media_seen=_settled(state), text_only=body.text_only,
    )
    if principal.user_id is not None and state is not None:
        # A person must have seen what they report; an API key is automation, see README "Who has seen it".
        seen = await run_in_threadpool(viewed_by, engine, principal, case_ref)
        unseen = unseen_report_errors(state, decision, seen,
                                      hash_matches_unviewed=_org_files_unviewed(settings, principal.org_id))
        if unseen:
            raise ProblemError(422, "Reveal each item before reporting it", "; ".join(unseen), field_problems(unseen))
    handle = await _own_case(temporal, principal, case_ref)
    accepted = await _update(handle, CaseWorkflow.decide, decision, idempotency_key)
    await _audit(audit, "case.decided", principal, case_ref, body.case_number,
                 reported=sum(1 for m in body.media if m.reported))
    await run_in_threadpool(record_decided, engine, case_key(principal, case_ref, body.case_number), utcnow())
    return accepted


@router.post("/{case_ref}/dismissal", response_model=DecisionAccepted, summary="Close the case without filing")
async def dismiss(case_ref: OwnedCaseRef, body: DismissalIn, principal: NcmecReviewer, temporal: Temporal,
                  audit: AuditTrail, engine: DbEngine, idempotency_key: IdempotencyKey = None) -> DecisionAccepted:
    await ensure_may_decide(engine, principal, case_ref, body.case_number)
    handle = await _own_case(temporal, principal, case_ref)
    dismissal = Dismissal(reviewer_id=principal.actor, case_number=body.case_number, reason=body.reason,
                          media_seen=await _settled_media(temporal, principal, case_ref, body.case_number))
    accepted = await _update(handle, CaseWorkflow.dismiss, dismissal, idempotency_key)
    await _audit(audit, "case.dismissed", principal, case_ref, body.case_number)
    await run_in_threadpool(record_decided, engine, case_key(principal, case_ref, body.case_number), utcnow())
    return accepted


@router.post("/{case_ref}/retry", response_model=DecisionAccepted,
             summary="Resume a filing that needs attention, once its cause is fixed")
async def retry(case_ref: OwnedCaseRef, body: RetryIn, principal: NcmecReviewer, temporal: Temporal,
                audit: AuditTrail, idempotency_key: IdempotencyKey = None) -> DecisionAccepted:
    handle = await _own_case(temporal, principal, case_ref)
    accepted = await _update(handle, CaseWorkflow.retry_filing,
                             RetryFiling(reviewer_id=principal.actor, case_number=body.case_number), idempotency_key)
    await _audit(audit, "case.filing_retried", principal, case_ref, body.case_number)
    return accepted


async def _audit(audit: AuditLog, action: str, principal: Principal, case_ref: str, case_number: int | None,
                 **detail: int) -> None:
    await run_in_threadpool(lambda: audit.append(action, actor=principal.actor, org_id=principal.org_id,
                                                 subject=case_ref, case_number=case_number, **detail))


def _org_files_unviewed(settings: Settings, org_id: str) -> bool:
    try:
        return settings.orgs.get(org_id).file_unviewed_hash_matches
    except UnknownOrg:
        return False


async def _own_case(temporal: Client, principal: Principal, case_ref: str) -> WorkflowHandle[Any, Any]:
    # ``case_ref`` is an OwnedCaseRef: its recorded org was compared with the caller's before the endpoint ran.
    return temporal.get_workflow_handle(case_ref)


async def _case_state(temporal: Client, principal: Principal, case_ref: str,
                      case_number: int | None = None, engine: Engine | None = None) -> CaseState:
    handle = await _own_case(temporal, principal, case_ref)
    state: CaseState | None = None
    if engine is not None and case_number is not None:
        # Before Temporal: a user's running workflow still holds its latest closed case, purged or not.
        await asyncio.to_thread(_refuse_purged, engine, principal.org_id, case_ref, case_number)
    try:
        if case_number is None:
            state = await handle.query(CaseWorkflow.case)
            if engine is not None:  # the user's current case may be a closed one, purged since
                await asyncio.to_thread(_refuse_purged, engine, principal.org_id, case_ref, state.case_number)
            return state
        state = await handle.query(CaseWorkflow.case_numbered, case_number)
    except RPCError as error:
        # A user's workflow that closed long ago may be gone from Temporal; its closed cases are still recorded.
        if error.status is not RPCStatusCode.NOT_FOUND or case_number is None or engine is None:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise ProblemError(404, "No such case") from None
            raise
    if state is None and engine is not None:  # reads only: decisions are for the cases the workflow holds
        state = await asyncio.to_thread(_closed_case, engine, principal.org_id, case_ref, case_number)
    if state is None:
        raise ProblemError(404, f"This user has no case {case_number}")
    return state


def _refuse_purged(engine: Engine, org_id: str, case_ref: str, case_number: int) -> None:
    """410 for a case the retention purge has taken: what remains is its tombstone, never the case state."""
    with Session(engine) as session:
        tombstone = session.exec(select(CaseTombstone).where(CaseTombstone.case_ref == case_ref,
                                                             CaseTombstone.case_number == case_number)).first()
    if tombstone is None or tombstone.org_id != org_id:
        return
    raise ProblemError(
        410, "This case was purged under the retention policy",
        f"case {case_number} of this user ({tombstone.status}, closed {tombstone.closed_at.date().isoformat()}) "
        f"was purged on {tombstone.purged_at.date().isoformat()}, its retention having ended "
        f"{tombstone.due_at.date().isoformat()}: its evidence and personal data are deleted. Its tombstone "
        "(NCMEC report ids, evidence digests, dates) and the audit log remain: tipline audit export")


def _closed_case(engine: Engine, org_id: str, case_ref: str, case_number: int) -> CaseState | None:
    """A closed case of the user from its record: the workflow keeps only the latest one closed."""
    with Session(engine) as session:
        row = session.get(ClosedCase, (case_ref, case_number))
    # The case ref's owner was checked already; the row's own org is checked too, as for every recorded id.
    if row is None or row.org_id != org_id:
        return None
    return CaseState.model_validate_json(row.state_json)


async def _open_state(temporal: Client, principal: Principal, case_ref: str, case_number: int | None
                      ) -> CaseState | None:
    """The case as it stands now, or None when there is none to decide (the update itself refuses, with why)."""
    try:
        return await _case_state(temporal, principal, case_ref, case_number)
    except ProblemError:
        return None


def _settled(state: CaseState | None) -> list[str] | None:
    """What the reviewer could have judged: the case's preserved and hashed items."""
    if state is None:
        return None
    return [m.media_id for m in state.media if m.evidence is not None and m.analysis is not None]


async def _settled_media(temporal: Client, principal: Principal, case_ref: str, case_number: int | None
                         ) -> list[str] | None:
    return _settled(await _open_state(temporal, principal, case_ref, case_number))


async def _update(handle: WorkflowHandle[Any, Any], update: Any, argument: Any,
                  idempotency_key: str | None) -> DecisionAccepted:
    # The update id makes a retried HTTP request return the first answer instead of deciding twice.
    update_id = f"{update.__name__}-{idempotency_key or uuid.uuid4()}"
    try:
        accepted = await handle.execute_update(update, argument, id=update_id)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        if isinstance(cause, ApplicationError) and cause.type == "StaleCase":
            raise ProblemError(409, "The case has moved on since it was loaded", message,
                               field_problems([message])) from None
        raise ProblemError(422, "The case cannot take this decision", message,
                           field_problems(message.split("; "))) from None
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise ProblemError(404, "No such case, or it is closed") from None
        raise
    # The case applies a review in a workflow task after the one that accepted it (workflows/case.py,
    # REVIEWS_A_TASK_LATER_PATCH): this signal brings that task now. Lost (Temporal or the worker away), the
    # review waits for the case's next event (a timer, content, a filing's report): logged, not an error.
    try:
        await handle.signal("review_queued")
        await _until_applied(handle, argument.case_number)
    except (RPCError, WorkflowQueryFailedError) as error:
        log.warning("case.review_signal_failed", workflow_id=handle.id, error=type(error).__name__)
    return accepted


async def _until_applied(handle: WorkflowHandle[Any, Any], case_number: int | None) -> None:
    """Answer once the case shows the review, as a reviewer reloading it expects; a busy case is given a few
    seconds, then the answer goes out anyway (the review is accepted and will apply)."""
    loop = asyncio.get_running_loop()
    deadline, signalled_at = loop.time() + APPLIED_WAIT_SECONDS, loop.time()
    while loop.time() < deadline:
        # Bounded: a case no worker answers for must not hold the reviewer's answer past the wait.
        queued: list[int] = await handle.query("queued_reviews", result_type=list[int],
                                               rpc_timeout=timedelta(seconds=APPLIED_WAIT_SECONDS))
        if not queued or (case_number is not None and case_number not in queued):
            return
        if loop.time() - signalled_at > SIGNAL_AGAIN_SECONDS:
            # The task the first signal brought did not count as a later one (an update accepted in a speculative
            # task): another signal brings another task.
            await handle.signal("review_queued")
            signalled_at = loop.time()
        await asyncio.sleep(0.05)
