"""The review queue's table, kept current by the case workflow (local activities: cheap and quick).

The workflows import this module, and so does the worker before it polls: the database layer is imported by the
activities when they first run, not here. Being local activities, they run on the workflow worker, which starts
before the worker has opened its database (``worker.py``): they wait the moment it takes for ``attach``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.case import CaseStatus
from models.filing import CaseSummaryUpdate, UserHistory

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session

CLOSED = (CaseStatus.FILED, CaseStatus.DISMISSED)
# How long a local activity waits for the worker to open its database before failing (and being retried).
ATTACH_PATIENCE_SECONDS = 10.0


class CaseIndexActivities:
    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine
        self._attached = threading.Event()
        if engine is not None:
            self._attached.set()

    def attach(self, engine: Engine) -> None:
        self._engine = engine
        self._attached.set()

    @property
    def engine(self) -> Engine:
        if not self._attached.wait(ATTACH_PATIENCE_SECONDS) or self._engine is None:
            raise ApplicationError("the worker has not opened its database yet", type="DatabaseNotReady")
        return self._engine

    @activity.defn
    def publish_case_summary(self, update: CaseSummaryUpdate) -> None:
        from sqlmodel import Session, select

        from models.records import CaseSummary, ClosedCase, IssuedRef, RefKind
        from models.retention import CaseTombstone

        with Session(self.engine) as session:
            row = session.get(CaseSummary, (update.workflow_id, update.case_number))
            values = update.model_dump(exclude={"case", "urgency"})
            if update.urgency is not None:
                _record_urgency_change(session, update)
            if row is None:
                session.add(CaseSummary(**values))
            else:  # a workflow publishes one update at a time, so the newest always wins
                for key, value in values.items():
                    setattr(row, key, value)
            if session.get(IssuedRef, update.workflow_id) is None:
                # A case started by a version before issued_ref (in flight across the upgrade) records its owner
                # here, from the org intake gave it; every newer case was recorded before it started.
                session.add(IssuedRef(ref=update.workflow_id, kind=RefKind.CASE, org_id=update.org_id))
            # A purged case's record stays gone: a late or repeated update must not write its state back.
            if update.case is not None and update.status in CLOSED and session.exec(
                    select(CaseTombstone.id).where(CaseTombstone.case_ref == update.workflow_id,
                                                   CaseTombstone.case_number == update.case_number)).first() is None:
                snapshot = session.get(ClosedCase, (update.workflow_id, update.case_number)) or ClosedCase(
                    workflow_id=update.workflow_id, case_number=update.case_number, org_id=update.org_id,
                    status=update.status.value, closed_at=update.updated_at, state_json="")
                snapshot.status, snapshot.closed_at = update.status.value, update.updated_at
                snapshot.state_json = update.case.model_dump_json()
                session.add(snapshot)
            session.commit()

    @activity.defn
    def user_history(self, workflow_id: str) -> UserHistory:
        from sqlalchemy import func
        from sqlmodel import Session, col, select

        from models.records import CaseSummary, FiledReport, ReportStatus

        with Session(self.engine) as session:
            # Only closed cases count: this very run may already have published its own row before a crash,
            # and a replay must get the same answer as the first attempt.
            last_case = session.exec(
                select(func.max(CaseSummary.case_number)).where(
                    CaseSummary.workflow_id == workflow_id,
                    col(CaseSummary.status).in_([CaseStatus.FILED.value, CaseStatus.DISMISSED.value]),
                )
            ).one()
            reports = session.exec(
                select(FiledReport.ncmec_report_id)
                .where(FiledReport.workflow_id == workflow_id, FiledReport.status == ReportStatus.FINISHED)
                .order_by(FiledReport.opened_at)
            ).all()
        return UserHistory(case_number=(last_case or 0) + 1, prior_report_ids=list(reports))


def _record_urgency_change(session: Session, update: CaseSummaryUpdate) -> None:
    """Keep the case's assessment when it differs from the last one kept (the timeline lists every change)."""
    import json

    from sqlmodel import col, select

    from models.records import UrgencyAssessmentRecord

    assert update.urgency is not None
    reasons = [reason.model_dump(mode="json") for reason in update.urgency.reasons]
    last = session.exec(select(UrgencyAssessmentRecord)
                        .where(UrgencyAssessmentRecord.workflow_id == update.workflow_id,
                               UrgencyAssessmentRecord.case_number == update.case_number)
                        .order_by(col(UrgencyAssessmentRecord.id).desc()).limit(1)).first()
    level = update.urgency.level.value
    if last is not None and (last.level, last.score, json.loads(last.reasons_json)) == (
            level, update.urgency.score, reasons):
        return
    session.add(UrgencyAssessmentRecord(workflow_id=update.workflow_id, case_number=update.case_number,
                                        org_id=update.org_id, assessed_at=update.updated_at, level=level,
                                        score=update.urgency.score, reasons_json=json.dumps(reasons)))
