"""The purge: a closed case past its retention, on no hold, loses its evidence and personal data; a tombstone
(digests, report ids, dates) and an audit row remain.

What goes: every evidence object only this case still needs (reported files, conversation CSVs and, once the
user's last case goes, every object their cases preserved), the report XML sent to NCMEC (user metadata,
reviewer text, incident details), each file's details XML, the escalation text and Tipline's suggestion, the
case's ``closed_case`` record (the whole case state: user metadata, conversations, decision, dismissal), the
user's triage rows, the case's exported histories.
What stays: the case's queue row (ids, counts, dates), each report's row with its id,
status, dates and NCMEC's receipt, each file's row with its digests and NCMEC file id, views, the audit log.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Engine, delete, tuple_
from sqlmodel import Session, col, select

from models.history_export import HistoryExport
from models.records import CaseSummary, ClosedCase, FiledFile, FiledReport, TriageItem, utcnow
from models.retention import CaseTombstone, EvidenceLink
from models.retention_messages import CaseKey, DueCases, PurgeOutcome
from tipline.audit_log import AuditLog
from tipline.evidence import EvidenceStore
from tipline.retention import CLOSED_STATUSES, RETENTION_ACTOR, case_dates, holds_in_force, lock_case_ref
from tipline.settings import OrgDirectory, RetentionSettings, UnknownOrg


class Purger:
    def __init__(self, engine: Engine, store: EvidenceStore, audit: AuditLog, orgs: OrgDirectory) -> None:
        self.engine = engine
        self.store = store
        self.audit = audit
        self.orgs = orgs

    def _policy(self, org_id: str) -> RetentionSettings:
        try:
            return self.orgs.get(org_id).retention
        except UnknownOrg:
            # An org removed from the file keeps the floors: never purge sooner than the law allows.
            return RetentionSettings()

    def due_cases(self, now: datetime, after: CaseKey | None, limit: int) -> DueCases:
        """One page of closed, unpurged cases in case-ref order, and which of them are due and on no hold."""
        with Session(self.engine) as session:
            query = (select(CaseSummary)
                     .outerjoin(CaseTombstone, (CaseTombstone.case_ref == CaseSummary.workflow_id)
                                & (CaseTombstone.case_number == CaseSummary.case_number))
                     .where(col(CaseSummary.status).in_(CLOSED_STATUSES), col(CaseTombstone.id).is_(None))
                     .order_by(col(CaseSummary.workflow_id), col(CaseSummary.case_number)).limit(limit))
            if after is not None:
                query = query.where(tuple_(CaseSummary.workflow_id, CaseSummary.case_number)
                                    > tuple_(after.case_ref, after.case_number))
            page = list(session.exec(query).all())
            held = holds_in_force(session, sorted({s.workflow_id for s in page}), now)
            due = [CaseKey(case_ref=s.workflow_id, case_number=s.case_number) for s in page
                   if s.workflow_id not in held and case_dates(session, s, self._policy(s.org_id)).due_at <= now]
        last = page[-1] if len(page) == limit else None
        return DueCases(cases=due, next_after=CaseKey(case_ref=last.workflow_id, case_number=last.case_number)
                        if last else None)

    def purge(self, key: CaseKey, now: datetime) -> PurgeOutcome:
        """Purge the case if it is still due and on no hold, checked under the lock holds are placed under."""
        with Session(self.engine) as session:
            cases = lock_case_ref(session, key.case_ref)
            summary = next((c for c in cases if c.case_number == key.case_number), None)
            tombstones = {t.case_number: t for t in session.exec(
                select(CaseTombstone).where(CaseTombstone.case_ref == key.case_ref)).all()}
            if key.case_number in tombstones:
                self._audit(session, tombstones[key.case_number], 0)  # a retry after the commit
                return PurgeOutcome(purged=False, skipped="already_purged")
            if summary is None or summary.status not in CLOSED_STATUSES:
                return PurgeOutcome(purged=False, skipped="open")
            if holds_in_force(session, [key.case_ref], now):
                return PurgeOutcome(purged=False, skipped="held")
            dates = case_dates(session, summary, self._policy(summary.org_id))
            if now < dates.due_at:
                return PurgeOutcome(purged=False, skipped="not_due")

            reports = list(session.exec(select(FiledReport).where(
                FiledReport.workflow_id == key.case_ref, FiledReport.case_number == key.case_number)).all())
            files = list(session.exec(select(FiledFile).where(
                col(FiledFile.report_pk).in_([r.id for r in reports]))).all()) if reports else []
            # The user's preserved objects go with their last kept case: which case an object came in with is
            # not recorded, so none goes while another case of theirs may still need it.
            last_case = all(c.case_number == key.case_number or c.case_number in tombstones for c in cases)
            links = list(session.exec(select(EvidenceLink).where(EvidenceLink.case_ref == key.case_ref)).all()
                         ) if last_case else []
            held_digests = {f.evidence_sha256 for f in files} | {link.sha256 for link in links}
            deletable = sorted(held_digests - self._still_needed(session, held_digests, key, last_case))
            for sha256 in deletable:
                self.store.delete(sha256)  # missing is fine: a retry after a crash finds some already gone
            # The case's exported histories hold its payloads too: the object goes, the row keeps its digest.
            exports = list(session.exec(select(HistoryExport).where(
                HistoryExport.case_ref == key.case_ref, HistoryExport.case_number == key.case_number)).all())
            for export in exports:
                self.store.delete(export.sha256)
                export.purged_at = export.purged_at or now
                session.add(export)

            for report in reports:
                report.report_xml = ""
                report.escalation_reason = report.urgency_suggestion = report.failure_reason = None
                session.add(report)
            for file in files:
                file.file_details_xml = None
                session.add(file)
            # The closed case's record is the case state itself (what the platform said about the user, their
            # conversations, the decision and its text): nothing in it is kept that the tombstone does not hold.
            session.exec(delete(ClosedCase).where(  # type: ignore[call-overload]
                col(ClosedCase.workflow_id) == key.case_ref, col(ClosedCase.case_number) == key.case_number))
            if last_case:
                session.exec(delete(EvidenceLink).where(col(EvidenceLink.case_ref) == key.case_ref))  # type: ignore[call-overload]
                session.exec(delete(TriageItem).where(col(TriageItem.case_ref) == key.case_ref))  # type: ignore[call-overload]
            tombstone = CaseTombstone(
                org_id=summary.org_id, case_ref=key.case_ref, case_number=key.case_number, status=summary.status,
                ncmec_report_ids=json.dumps(list(dates.report_ids)), evidence_sha256=json.dumps(sorted(held_digests)),
                history_sha256=json.dumps(sorted(e.sha256 for e in exports)),
                opened_at=dates.opened_at, closed_at=dates.closed_at, due_at=dates.due_at, purged_at=now)
            session.add(tombstone)
            session.commit()
            session.refresh(tombstone)
            self._audit(session, tombstone, len(deletable))
        return PurgeOutcome(purged=True, objects_deleted=len(deletable))

    def _still_needed(self, session: Session, digests: set[str], key: CaseKey, last_case: bool) -> set[str]:
        """Digests another kept case, another user's case or a triage item still relies on."""
        if not digests:
            return set()
        needed: set[str] = set()
        links = session.exec(select(EvidenceLink).where(col(EvidenceLink.sha256).in_(digests))).all()
        needed |= {link.sha256 for link in links if link.case_ref != key.case_ref or not last_case}
        other_files = session.exec(
            select(FiledFile.evidence_sha256, FiledReport.workflow_id, FiledReport.case_number)
            .join(FiledReport, col(FiledReport.id) == col(FiledFile.report_pk))
            .outerjoin(CaseTombstone, (CaseTombstone.case_ref == FiledReport.workflow_id)
                       & (CaseTombstone.case_number == FiledReport.case_number))
            .where(col(FiledFile.evidence_sha256).in_(digests), col(CaseTombstone.id).is_(None))).all()
        needed |= {sha for sha, ref, number in other_files if (ref, number) != (key.case_ref, key.case_number)}
        triage = session.exec(select(TriageItem.evidence_sha256, TriageItem.case_ref)
                              .where(col(TriageItem.evidence_sha256).in_(digests))).all()
        needed |= {sha for sha, ref in triage if sha and (ref != key.case_ref or not last_case)}
        return needed

    def _audit(self, session: Session, tombstone: CaseTombstone, objects: int) -> None:
        if tombstone.audit_seq is not None:
            return
        row = self.audit.append("retention.purged", actor=RETENTION_ACTOR, org_id=tombstone.org_id,
                                subject=tombstone.case_ref, at=utcnow(), case_number=tombstone.case_number,
                                tombstone=tombstone.id, objects_deleted=objects)
        tombstone.audit_seq = row.seq
        session.add(tombstone)
        session.commit()
