"""Retention policy and legal holds: when a closed case may be purged, and what stops it.

A filed case is kept ``retention.filed_case_years`` (at least one, the REPORT Act's year) from its latest report
to NCMEC; a dismissed one ``retention.dismissed_case_days`` from the dismissal. A case that reported anything
and was later dismissed keeps the longer of the two. A hold on the user's case ref (a legal hold, until released;
or a §2703(f) preservation request, 90 days from the request, 90 more per renewal) stops every purge of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from models.case import CaseStatus
from models.records import CaseSummary, FiledReport, utcnow
from models.retention import PRESERVATION_PERIOD, EvidenceLink, HoldKind, LegalHold
from tipline.audit_log import AuditLog
from tipline.settings import RetentionSettings

CLOSED_STATUSES = (CaseStatus.FILED.value, CaseStatus.DISMISSED.value)
RETENTION_ACTOR = "retention"


def add_years(moment: datetime, years: int) -> datetime:
    """The same moment ``years`` later on the calendar; 29 February becomes 1 March (later, never earlier)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, month=3, day=1)


@dataclass(frozen=True)
class CaseDates:
    opened_at: datetime
    closed_at: datetime
    due_at: datetime
    report_ids: tuple[int, ...]


def case_dates(session: Session, summary: CaseSummary, policy: RetentionSettings) -> CaseDates:
    """When the case closed, and the first moment it may be purged under ``policy``."""
    reports = session.exec(select(FiledReport).where(FiledReport.workflow_id == summary.workflow_id,
                                                     FiledReport.case_number == summary.case_number)).all()
    report_ids = tuple(sorted(r.ncmec_report_id for r in reports))
    dismissed_due = summary.updated_at + timedelta(days=policy.dismissed_case_days)
    if not reports:
        return CaseDates(summary.opened_at, summary.updated_at, dismissed_due, report_ids)
    # Anything sent to NCMEC, even a report later retracted, is kept the law's year from the latest one.
    reported_at = max(r.finished_at or r.opened_at for r in reports)
    filed_due = add_years(reported_at, policy.filed_case_years)
    if summary.status == CaseStatus.FILED:
        return CaseDates(summary.opened_at, reported_at, filed_due, report_ids)
    return CaseDates(summary.opened_at, summary.updated_at, max(filed_due, dismissed_due), report_ids)


def lock_case_ref(session: Session, case_ref: str) -> list[CaseSummary]:
    """Every case row of the user, locked: a hold being placed and a purge of the same user take turns."""
    return list(session.exec(select(CaseSummary).where(CaseSummary.workflow_id == case_ref)
                             .order_by(col(CaseSummary.case_number)).with_for_update()).all())


def holds_in_force(session: Session, case_refs: Sequence[str], now: datetime) -> set[str]:
    rows = session.exec(select(LegalHold).where(col(LegalHold.case_ref).in_(case_refs),
                                                col(LegalHold.released_at).is_(None))).all()
    return {row.case_ref for row in rows if row.in_force(now)}


def link_evidence(engine: Engine, org_id: str, case_ref: str, sha256: str) -> None:
    """Record that a user's case preserved this object (once; repeats are ignored)."""
    values = {"org_id": org_id, "case_ref": case_ref, "sha256": sha256, "linked_at": utcnow()}
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(EvidenceLink).values(**values).on_conflict_do_nothing(
        index_elements=["case_ref", "sha256"])
    with Session(engine) as session:
        session.exec(statement)  # type: ignore[call-overload]
        session.commit()


class HoldError(ValueError):
    pass


@dataclass(frozen=True)
class PlacedHold:
    hold: LegalHold
    renewed: bool


class Holds:
    """Places, renews and releases holds; each change is one audit row (ids and kinds, never the reason)."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit

    def place(self, org_id: str, case_ref: str, kind: HoldKind, reason: str, actor: str,
              now: datetime | None = None) -> PlacedHold:
        """A new hold; a preservation request already in force is renewed instead (90 more days from its end)."""
        now = now or utcnow()
        with Session(self.engine) as session:
            lock_case_ref(session, case_ref)
            current = [h for h in self._holds(session, org_id, case_ref) if h.in_force(now) and h.kind == kind]
            if kind == HoldKind.PRESERVATION and current:
                hold = current[0]
                assert hold.expires_at is not None
                hold.expires_at = hold.expires_at + PRESERVATION_PERIOD
                hold.renewals += 1
                hold.reason = f"{hold.reason}\nrenewed {now.date().isoformat()} by {actor}: {reason}"
                renewed = True
            else:
                hold = LegalHold(org_id=org_id, case_ref=case_ref, kind=kind, reason=reason, placed_by=actor,
                                 placed_at=now,
                                 expires_at=now + PRESERVATION_PERIOD if kind == HoldKind.PRESERVATION else None)
                renewed = False
            session.add(hold)
            session.commit()
            session.refresh(hold)
        assert hold.id is not None
        self.audit.append("retention.hold_renewed" if renewed else "retention.hold_placed", actor=actor,
                          org_id=org_id, subject=case_ref, hold=hold.id, kind=kind.value,
                          expires_at=hold.expires_at.isoformat() if hold.expires_at else None)
        return PlacedHold(hold, renewed)

    def release(self, org_id: str, case_ref: str, actor: str, hold_id: int | None = None,
                now: datetime | None = None) -> list[LegalHold]:
        """Release one hold, or every hold in force on the case ref; purging resumes at the next pass."""
        now = now or utcnow()
        with Session(self.engine) as session:
            lock_case_ref(session, case_ref)
            holds = [h for h in self._holds(session, org_id, case_ref) if h.in_force(now)]
            if hold_id is not None:
                holds = [h for h in holds if h.id == hold_id]
                if not holds:
                    raise HoldError(f"hold_id {hold_id} is not a hold in force on this case")
            for hold in holds:
                hold.released_at, hold.released_by = now, actor
                session.add(hold)
            session.commit()
            for hold in holds:
                session.refresh(hold)
        for hold in holds:
            self.audit.append("retention.hold_released", actor=actor, org_id=org_id, subject=case_ref,
                              hold=hold.id, kind=hold.kind)
        return holds

    def list(self, org_id: str, case_ref: str) -> list[LegalHold]:
        with Session(self.engine) as session:
            return self._holds(session, org_id, case_ref)

    @staticmethod
    def _holds(session: Session, org_id: str, case_ref: str) -> list[LegalHold]:
        return list(session.exec(select(LegalHold).where(LegalHold.org_id == org_id, LegalHold.case_ref == case_ref)
                                 .order_by(col(LegalHold.id))).all())

