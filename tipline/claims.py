"""Claiming cases: one holder at a time, taken atomically in the database, every change logged against its actor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from models.claims import CaseClaim, ClaimAction, ClaimEvent


@dataclass(frozen=True)
class ClaimHeld(Exception):
    """Someone else holds the case."""

    holder: str
    since: datetime | None


@dataclass(frozen=True)
class CaseKey:
    org_id: str
    workflow_id: str
    case_number: int


def claim_of(engine: Engine, workflow_id: str, case_number: int) -> CaseClaim | None:
    with Session(engine) as session:
        return session.get(CaseClaim, (workflow_id, case_number))


def claim(engine: Engine, case: CaseKey, actor: str, now: datetime) -> tuple[CaseClaim, bool]:
    """Take the case for ``actor``; the holder claiming again gets their claim back unchanged. Says whether the
    case was taken now (False: ``actor`` held it already)."""
    for _ in range(2):  # a second pass only when another claim created the row between our read and insert
        with Session(engine) as session:
            # Conditional on nobody holding it: of two reviewers claiming at once, exactly one update matches.
            taken = session.exec(  # type: ignore[call-overload]
                update(CaseClaim)
                .where(col(CaseClaim.workflow_id) == case.workflow_id,
                       col(CaseClaim.case_number) == case.case_number, col(CaseClaim.claimed_by).is_(None))
                .values(claimed_by=actor, claimed_at=now))
            if taken.rowcount == 0:
                row = session.get(CaseClaim, (case.workflow_id, case.case_number))
                if row is not None:
                    if row.claimed_by == actor:
                        return row, False
                    raise ClaimHeld(row.claimed_by or "", row.claimed_at)
                session.add(CaseClaim(org_id=case.org_id, workflow_id=case.workflow_id,
                                      case_number=case.case_number, claimed_by=actor, claimed_at=now,
                                      first_claimed_at=now))
            else:
                session.exec(update(CaseClaim)  # type: ignore[call-overload]
                             .where(col(CaseClaim.workflow_id) == case.workflow_id,
                                    col(CaseClaim.case_number) == case.case_number,
                                    col(CaseClaim.first_claimed_at).is_(None))
                             .values(first_claimed_at=now))
            _log(session, case, ClaimAction.CLAIM, actor, actor, now)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                continue
            row = session.get(CaseClaim, (case.workflow_id, case.case_number))
            assert row is not None
            return row, True
    raise ClaimHeld("", None)  # pragma: no cover - the row exists after the first pass


def release(engine: Engine, case: CaseKey, actor: str, *, override: bool, now: datetime) -> str | None:
    """Give the case up; ``override`` (a manager) releases anyone's claim. Releasing an unheld case does nothing.
    Returns whom the case was released from (None: nobody held it)."""
    with Session(engine) as session:
        row = session.get(CaseClaim, (case.workflow_id, case.case_number), with_for_update=True)
        if row is None or row.claimed_by is None:
            return None
        if row.claimed_by != actor and not override:
            raise ClaimHeld(row.claimed_by, row.claimed_at)
        holder = row.claimed_by
        row.claimed_by, row.claimed_at = None, None
        session.add(row)
        _log(session, case, ClaimAction.RELEASE, actor, None, now)
        session.commit()
        return holder


def reassign(engine: Engine, case: CaseKey, actor: str, holder: str, now: datetime) -> tuple[CaseClaim, str | None]:
    """Give the case to ``holder``; returns the claim and who held the case before (None: nobody)."""
    with Session(engine) as session:
        row = session.get(CaseClaim, (case.workflow_id, case.case_number), with_for_update=True)
        if row is None:
            row = CaseClaim(org_id=case.org_id, workflow_id=case.workflow_id, case_number=case.case_number)
        previous = row.claimed_by
        if row.claimed_by != holder:
            row.claimed_by, row.claimed_at = holder, now
        row.first_claimed_at = row.first_claimed_at or now
        session.add(row)
        _log(session, case, ClaimAction.REASSIGN, actor, holder, now)
        session.commit()
        session.refresh(row)
        return row, previous


def record_decided(engine: Engine, case: CaseKey, now: datetime) -> None:
    """The first accepted decision or dismissal of the case; a retried or later one keeps the first time."""
    with Session(engine) as session:
        row = session.get(CaseClaim, (case.workflow_id, case.case_number), with_for_update=True)
        if row is None:
            row = CaseClaim(org_id=case.org_id, workflow_id=case.workflow_id, case_number=case.case_number)
        if row.decided_at is None:
            row.decided_at = now
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # a claim created the row meanwhile: set the time on that one
                session.rollback()
                record_decided(engine, case, now)


def _log(session: Session, case: CaseKey, action: ClaimAction, actor: str, holder: str | None,
         now: datetime) -> None:
    session.add(ClaimEvent(org_id=case.org_id, workflow_id=case.workflow_id, case_number=case.case_number,
                           action=action.value, actor=actor, holder=holder, at=now))
