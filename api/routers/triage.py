"""The triage queue: items the classifier flagged below the org's high-precision threshold."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import AuditTrail, DbSession, NcmecReviewer, Principal, Store, Temporal, get_engine
from api.evidence_views import MEDIA_RESPONSES, evidence_response
from api.ownership import OwnedTriageItem
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.requests import RequestBody
from models.records import TriageItem
from models.screening import ScreeningOutcome, TriageDecision
from workflows.screening import ScreeningWorkflow

router = APIRouter(prefix="/v1/triage", tags=["triage"], responses=PROBLEM_RESPONSES)


class TriageEntry(BaseModel):
    screening_ref: str
    creator_id: str
    content_id: str
    content_type: str | None
    classifier_priority: str
    status: str
    created_at: datetime
    decided_by: str | None
    case_ref: str | None
    screening_error: str | None = Field(description="Why the item was not screened automatically, if it was not")
    content_url: str | None = Field(description="The preserved bytes; None when they could not be preserved")


class TriageDecisionIn(RequestBody):
    reason: str | None = Field(default=None, max_length=3000)


@router.get("", response_model=list[TriageEntry], summary="Items waiting in triage, highest priority and oldest first")
def list_triage(principal: NcmecReviewer, session: DbSession,
                status: Annotated[str, Query(pattern="^(pending|escalated|dismissed)$")] = "pending",
                limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[TriageEntry]:
    rows = session.exec(select(TriageItem).where(TriageItem.org_id == principal.org_id, TriageItem.status == status)
                        .order_by(col(TriageItem.classifier_priority).desc(), col(TriageItem.created_at))
                        .limit(limit)).all()
    return [TriageEntry(screening_ref=r.screening_id,
                        content_url=f"/v1/triage/{r.screening_id}/content" if r.evidence_sha256 else None,
                        **r.model_dump(exclude={"screening_id", "org_id", "evidence_sha256", "decided_at", "reason"}))
            for r in rows]


@router.get("/{screening_ref}/content", response_class=StreamingResponse, summary="The item's bytes (view recorded)",
            responses=MEDIA_RESPONSES)
async def triage_content(item: OwnedTriageItem, principal: NcmecReviewer, store: Store,
                         engine: Annotated[Engine, Depends(get_engine)], audit: AuditTrail) -> StreamingResponse:
    if item.evidence_sha256 is None:
        raise ProblemError(404, "This item's media could not be preserved")
    return await evidence_response(store, engine, audit, principal, sha256=item.evidence_sha256, ref=item.screening_id,
                                   media_id=item.content_id)


@router.post("/{screening_ref}/escalation", response_model=ScreeningOutcome, summary="Send it to the NCMEC queue")
async def escalate(item: OwnedTriageItem, body: TriageDecisionIn, principal: NcmecReviewer,
                   temporal: Temporal, audit: AuditTrail) -> ScreeningOutcome:
    outcome = await _decide(temporal, principal, item.screening_id, "escalate", body.reason)
    await run_in_threadpool(lambda: audit.append("triage.escalated", actor=principal.actor,
                                                 org_id=principal.org_id, subject=item.screening_id))
    return outcome


@router.post("/{screening_ref}/dismissal", response_model=ScreeningOutcome, summary="Dismiss it")
async def dismiss(item: OwnedTriageItem, body: TriageDecisionIn, principal: NcmecReviewer,
                  temporal: Temporal, audit: AuditTrail) -> ScreeningOutcome:
    outcome = await _decide(temporal, principal, item.screening_id, "dismiss", body.reason)
    await run_in_threadpool(lambda: audit.append("triage.dismissed", actor=principal.actor,
                                                 org_id=principal.org_id, subject=item.screening_id))
    return outcome


async def _decide(temporal: Temporal, principal: Principal, screening_ref: str, action: str,
                  reason: str | None) -> ScreeningOutcome:
    decision = TriageDecision(action=action, reviewer_id=principal.actor, reason=reason)  # type: ignore[arg-type]
    try:
        # Per action: a retried request gets its first answer back, the opposite action is refused.
        return await temporal.get_workflow_handle(screening_ref).execute_update(
            ScreeningWorkflow.triage, decision, id=f"triage-{screening_ref}-{action}")
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        raise ProblemError(409, "This item was already decided",
                           cause.message if isinstance(cause, ApplicationError) else None) from None
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:  # the screening finished with its earlier decision
            raise ProblemError(409, "This item was already decided") from None
        raise

