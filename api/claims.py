"""What the case endpoints need to know about claims: the claim as shown, and whether a caller may decide."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.deps import Principal
from api.problems import FieldProblem, ProblemError
from models.accounts import ReviewerAccount
from models.claims import CaseClaim
from models.records import Role
from tipline.claims import CaseKey, claim_of

# Who may take a case from its holder: release it, reassign it, or decide it themselves.
MANAGING_ROLES = frozenset({Role.MODERATOR_MANAGER, Role.ADMIN})


def holder_name_field() -> str | None:
    """The holder's name, as every response naming a claim's holder gives it."""
    return Field(default=None, description="The holder's account name, as the pages show people (never an email); "
                                           "None when no account of the org holds it (an API key)")


class ClaimOut(BaseModel):
    claimed_by: str = Field(description='The holder, as decisions name people: "user:<account id>"')
    claimed_by_name: str | None = holder_name_field()
    claimed_at: datetime


def holder_names(session: Session, org_id: str, actors: Iterable[str | None]) -> dict[str, str]:
    """Account names of the people among ``actors`` ("user:<id>"), in one query; an API key or an account of
    another org gets none. The name is the account's username: single sign-on accounts are named by the
    provider's subject, so no email reaches a page through it."""
    ids = {int(a.removeprefix("user:")) for a in actors if a and a.startswith("user:") and a[5:].isdigit()}
    if not ids:
        return {}
    rows = session.exec(select(ReviewerAccount.id, ReviewerAccount.username).where(
        col(ReviewerAccount.id).in_(ids), ReviewerAccount.org_id == org_id)).all()
    return {f"user:{account_id}": username for account_id, username in rows}


def holder_name(engine: Engine, org_id: str, actor: str | None) -> str | None:
    with Session(engine) as session:
        return holder_names(session, org_id, [actor]).get(actor or "")


def claim_out(row: CaseClaim | None, names: dict[str, str]) -> ClaimOut | None:
    if row is None or row.claimed_by is None or row.claimed_at is None:
        return None
    return ClaimOut(claimed_by=row.claimed_by, claimed_by_name=names.get(row.claimed_by), claimed_at=row.claimed_at)


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
