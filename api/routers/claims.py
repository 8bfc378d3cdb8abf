"""Claiming a case: a reviewer takes it, others see who holds it, a Moderator Manager or Admin reassigns it."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from api.claims import MANAGING_ROLES, case_key, held_problem, holder_name, holder_name_field
from api.deps import AuditTrail, DbEngine, DbSession, NcmecReviewer, Principal, Temporal
from api.ownership import OwnedCaseRef
from api.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from api.requests import RequestBody
from api.routers.cases import _case_state
from models.accounts import ReviewerAccount
from models.case import OPEN_STATUSES
from models.claims import CaseClaim
from models.records import NCMEC_ROLES, Role, utcnow
from tipline import claims
from tipline.audit_log import AuditLog
from tipline.claims import CaseKey, ClaimHeld

router = APIRouter(tags=["review"], responses=PROBLEM_RESPONSES)


class ClaimResult(BaseModel):
    case_ref: str
    claimed_by: str = Field(description='The holder, as decisions name people: "user:<account id>"')
    claimed_by_name: str | None = holder_name_field()
    claimed_at: datetime


class ReassignIn(RequestBody):
    user_id: int = Field(ge=1, description="The account to hold the case: active, of this org, with a reviewing role")


class Reviewer(BaseModel):
    user_id: int
    actor: str = Field(description='How claims and decisions name this person: "user:<account id>"')
    username: str
    role: Role


async def _open_case(temporal: Temporal, principal: Principal, case_ref: str) -> CaseKey:
    state = await _case_state(temporal, principal, case_ref)
    if state.status not in OPEN_STATUSES:
        raise ProblemError(409, "The case is closed", f"it is {state.status.value}")
    return case_key(principal, case_ref, state.case_number)


async def _result(engine: DbEngine, principal: Principal, case_ref: str, row: CaseClaim) -> ClaimResult:
    assert row.claimed_by is not None and row.claimed_at is not None
    name = await run_in_threadpool(holder_name, engine, principal.org_id, row.claimed_by)
    return ClaimResult(case_ref=case_ref, claimed_by=row.claimed_by, claimed_by_name=name, claimed_at=row.claimed_at)


@router.post("/v1/cases/{case_ref}/claim", response_model=ClaimResult,
             summary="Take the case (its oldest open case number); the holder claiming again gets the same claim",
             responses={409: PROBLEM_RESPONSES[404]})
async def claim_case(case_ref: OwnedCaseRef, principal: NcmecReviewer, temporal: Temporal,
                     engine: DbEngine, audit: AuditTrail) -> ClaimResult:
    case = await _open_case(temporal, principal, case_ref)
    try:
        row, taken = await run_in_threadpool(claims.claim, engine, case, principal.actor, utcnow())
    except ClaimHeld as held:
        raise held_problem(held.holder, held.since) from None
    if taken:  # the holder claiming again changes nothing, and is not recorded again
        await _audit(audit, "case.claimed", principal, case)
    return await _result(engine, principal, case_ref, row)


@router.delete("/v1/cases/{case_ref}/claim", status_code=204,
               summary="Give the case up (its holder), or take it from its holder (Moderator Manager, Admin)")
async def release_case(case_ref: OwnedCaseRef, principal: NcmecReviewer, temporal: Temporal,
                       engine: DbEngine, audit: AuditTrail) -> Response:
    case = await _open_case(temporal, principal, case_ref)
    try:
        holder = await run_in_threadpool(lambda: claims.release(engine, case, principal.actor,
                                                                override=principal.role in MANAGING_ROLES,
                                                                now=utcnow()))
    except ClaimHeld as held:
        raise held_problem(held.holder, held.since) from None
    if holder is not None:  # releasing a case nobody held changes nothing
        await _audit(audit, "case.released", principal, case, released_from=holder)
    return Response(status_code=204)


@router.put("/v1/cases/{case_ref}/claim", response_model=ClaimResult,
            summary="Give the case to another reviewer of the org (Moderator Manager, Admin)")
async def reassign_case(case_ref: OwnedCaseRef, body: ReassignIn, principal: NcmecReviewer, temporal: Temporal,
                        engine: DbEngine, session: DbSession, audit: AuditTrail) -> ClaimResult:
    # After the ownership check, so another org's case gets its 404 whatever the caller's role.
    if principal.role not in MANAGING_ROLES:
        raise ProblemError(403, "Only a Moderator Manager or Admin may reassign a case",
                           f"role {principal.role.value} may claim and release only")
    target = session.get(ReviewerAccount, body.user_id)
    if (target is None or target.org_id != principal.org_id or target.disabled_at is not None
            or Role(target.role) not in NCMEC_ROLES):
        raise ProblemError(422, "The case cannot go to that account", errors=[FieldProblem(
            field="user_id", message="not an active account of this org with a reviewing role")])
    case = await _open_case(temporal, principal, case_ref)
    row, previous = await run_in_threadpool(claims.reassign, engine, case, principal.actor, f"user:{target.id}",
                                            utcnow())
    await _audit(audit, "case.reassigned", principal, case, holder=f"user:{target.id}", previous_holder=previous)
    return await _result(engine, principal, case_ref, row)


async def _audit(audit: AuditLog, action: str, principal: Principal, case: CaseKey, **holders: str | None) -> None:
    # Holders are actors ("user:<id>", "<role>:<key id>"): ids, never names.
    await run_in_threadpool(lambda: audit.append(action, actor=principal.actor, org_id=principal.org_id,
                                                 subject=case.workflow_id, case_number=case.case_number, **holders))


@router.get("/v1/reviewers", response_model=list[Reviewer],
            summary="The org's active reviewers: who a claim names, and who a case may be reassigned to")
def list_reviewers(principal: NcmecReviewer, session: DbSession) -> list[Reviewer]:
    rows = session.exec(select(ReviewerAccount).where(
        ReviewerAccount.org_id == principal.org_id, col(ReviewerAccount.disabled_at).is_(None),
        col(ReviewerAccount.role).in_([r.value for r in NCMEC_ROLES])).order_by(col(ReviewerAccount.username))).all()
    return [Reviewer(user_id=r.id, actor=f"user:{r.id}", username=r.username, role=Role(r.role))
            for r in rows if r.id is not None]
