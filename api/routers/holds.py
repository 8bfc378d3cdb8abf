"""Legal holds on a user's cases: placed and released by Moderator Managers and Admins, each with a reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from api.deps import AuditTrail, DbEngine, Principal, Registry, get_clock, require
from api.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from api.requests import RequestBody, WorkflowRef
from models.records import RefKind, Role
from models.retention import HoldKind, LegalHold
from tipline.retention import HoldError, Holds

router = APIRouter(prefix="/v1/cases", tags=["retention"], responses=PROBLEM_RESPONSES)
HoldManager = Annotated[Principal, Depends(require(frozenset({Role.ADMIN, Role.MODERATOR_MANAGER})))]
Clock = Annotated[Callable[[], datetime], Depends(get_clock)]


class HoldIn(RequestBody):
    kind: HoldKind = Field(default=HoldKind.LEGAL, description="legal: until released; preservation_2703f: a "
                           "law-enforcement request under 18 U.S.C. §2703(f), 90 days, renewed by asking again")
    reason: str = Field(max_length=2000, description="Why: the matter, or the requesting agency and its number")

    @field_validator("reason")
    @classmethod
    def _reason_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reason is required: say why the case is held")
        return value.strip()


class HoldOut(BaseModel):
    hold_id: int
    kind: HoldKind
    reason: str
    placed_by: str
    placed_at: datetime
    expires_at: datetime | None
    renewals: int
    released_at: datetime | None
    released_by: str | None
    in_force: bool


class HoldPlaced(HoldOut):
    renewed: bool = Field(description="A preservation request already in force was extended by 90 days")


def _out(hold: LegalHold, now: datetime) -> HoldOut:
    assert hold.id is not None
    return HoldOut(hold_id=hold.id, kind=HoldKind(hold.kind), reason=hold.reason, placed_by=hold.placed_by,
                   placed_at=hold.placed_at, expires_at=hold.expires_at, renewals=hold.renewals,
                   released_at=hold.released_at, released_by=hold.released_by, in_force=hold.in_force(now))


async def _owned(registry: Registry, principal: Principal, case_ref: str) -> str:
    if await run_in_threadpool(registry.org_of, RefKind.CASE, case_ref) != principal.org_id:
        raise ProblemError(404, "No such case")
    return case_ref


@router.get("/{case_ref}/holds", response_model=list[HoldOut], summary="Every hold on the user's cases")
async def list_holds(case_ref: WorkflowRef, principal: HoldManager, registry: Registry, engine: DbEngine,
                     audit: AuditTrail, clock: Clock) -> list[HoldOut]:
    await _owned(registry, principal, case_ref)
    now = clock()
    return [_out(h, now) for h in await run_in_threadpool(Holds(engine, audit).list, principal.org_id, case_ref)]


@router.post("/{case_ref}/holds", response_model=HoldPlaced, status_code=201,
             summary="Hold the user's cases: nothing of theirs is purged while a hold is in force")
async def place_hold(case_ref: WorkflowRef, body: HoldIn, principal: HoldManager, registry: Registry,
                     engine: DbEngine, audit: AuditTrail, clock: Clock, response: Response) -> HoldPlaced:
    await _owned(registry, principal, case_ref)
    now = clock()
    placed = await run_in_threadpool(Holds(engine, audit).place, principal.org_id, case_ref, body.kind, body.reason,
                                     principal.actor, now)
    if placed.renewed:
        response.status_code = 200
    return HoldPlaced(**_out(placed.hold, now).model_dump(), renewed=placed.renewed)


@router.delete("/{case_ref}/holds", response_model=list[HoldOut],
               summary="Release the case's holds (or one, by hold_id); purging resumes at the next daily pass")
async def release_holds(case_ref: WorkflowRef, principal: HoldManager, registry: Registry, engine: DbEngine,
                        audit: AuditTrail, clock: Clock,
                        hold_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> list[HoldOut]:
    await _owned(registry, principal, case_ref)
    now = clock()
    try:
        released = await run_in_threadpool(Holds(engine, audit).release, principal.org_id, case_ref,
                                           principal.actor, hold_id, now)
    except HoldError as error:
        raise ProblemError(404, "No such hold", str(error),
                           errors=[FieldProblem(field="hold_id", message=str(error))]) from None
    return [_out(h, now) for h in released]
