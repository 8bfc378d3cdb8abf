"""What the case endpoints need to know about claims: the claim as shown, and whether a caller may decide."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.deps import Principal
from api.problems import FieldProblem, ProblemError
from models.claims import CaseClaim
from models.records import Role
from tipline.claims import CaseKey, claim_of

# Who may take a case from its holder: release it, reassign it, or decide it themselves.
MANAGING_ROLES = frozenset({Role.MODERATOR_MANAGER, Role.ADMIN})


class ClaimOut(BaseModel):
    claimed_by: str
    claimed_at: datetime


def claim_out(row: CaseClaim | None) -> ClaimOut | None:
    if row is None or row.claimed_by is None or row.claimed_at is None:
        return None
    return ClaimOut(claimed_by=row.claimed_by, claimed_at=row.claimed_at)


def held_problem(holder: str, since: datetime | None) -> ProblemError:
    held = f"{holder} holds this case" + (f" since {since.isoformat()}" if since else "")
    return ProblemError(409, "Another reviewer holds this case", held,
                        [FieldProblem(field="claimed_by", message=held)])


async def ensure_may_decide(engine: Engine, principal: Principal, case_ref: str, case_number: int) -> None:
    """A claimed case is decided by its holder; a Moderator Manager or Admin may decide it over them."""
    row = await run_in_threadpool(claim_of, engine, case_ref, case_number)
    if (row is not None and row.claimed_by is not None and row.claimed_by != principal.actor
            and principal.role not in MANAGING_ROLES):
        raise held_problem(row.claimed_by, row.claimed_at)


def case_key(principal: Principal, case_ref: str, case_number: int) -> CaseKey:
    return CaseKey(org_id=principal.org_id, workflow_id=case_ref, case_number=case_number)
