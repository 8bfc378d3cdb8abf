"""Gathers what a case's timeline is built from: every run's history (from Temporal, else from the case's
exports), decoded with the project's data converter, and the case's rows in the database."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.converter import DataConverter

from models.audit import AuditRow
from models.claims import ClaimEvent
from models.records import FiledFile, FiledReport, MediaView, UrgencyAssessmentRecord
from models.timeline import Timeline
from tipline.case_histories import CaseHistories, fetch_case_histories
from tipline.evidence import EvidenceStore
from tipline.history_decode import decode_run
from tipline.history_export import ExportUnreadable, LoadedExport, export_rows, load_export, merged_runs
from tipline.timeline import CaseRecords, build_timeline


def case_records(engine: Engine, case_ref: str) -> CaseRecords:
    with Session(engine) as session:
        reports = list(session.exec(select(FiledReport).where(FiledReport.workflow_id == case_ref)
                                    .order_by(col(FiledReport.case_number), col(FiledReport.attempt))).all())
        files = list(session.exec(select(FiledFile).where(col(FiledFile.report_pk).in_([r.id for r in reports]))
                                  .order_by(col(FiledFile.id))).all()) if reports else []
        return CaseRecords(
            views=list(session.exec(select(MediaView).where(MediaView.workflow_id == case_ref)
                                    .order_by(col(MediaView.id))).all()),
            claims=list(session.exec(select(ClaimEvent).where(ClaimEvent.workflow_id == case_ref)
                                     .order_by(col(ClaimEvent.id))).all()),
            audit=list(session.exec(select(AuditRow).where(AuditRow.subject == case_ref)
                                    .order_by(col(AuditRow.seq))).all()),
            reports=reports, files=files, exports=export_rows(engine, case_ref),
            urgency=list(session.exec(select(UrgencyAssessmentRecord)
                                      .where(UrgencyAssessmentRecord.workflow_id == case_ref)
                                      .order_by(col(UrgencyAssessmentRecord.id))).all()))


def exported_runs(engine: Engine, store: EvidenceStore, case_ref: str) -> tuple[list[LoadedExport], list[str]]:
    """Every readable export of the case, and what is wrong with any that is not."""
    loaded, problems = [], []
    for row in export_rows(engine, case_ref):
        if row.purged_at is not None:
            continue
        try:
            loaded.append(load_export(store, row))
        except ExportUnreadable as error:
            problems.append(str(error))
    return loaded, problems


async def case_histories(client: Client | None, engine: Engine, store: EvidenceStore, case_ref: str, *,
                         from_export: bool = False) -> tuple[CaseHistories, set[tuple[str, str]]]:
    """Every run known, and which of them came from an export only."""
    live = None if from_export or client is None else await fetch_case_histories(client, case_ref)
    exports, problems = await asyncio.to_thread(exported_runs, engine, store, case_ref)
    merged = merged_runs(exports, live)
    merged.missing.extend(problems)
    in_temporal = {(r.workflow_id, r.run_id) for r in live.runs} if live else set()
    return merged, {(r.workflow_id, r.run_id) for r in merged.runs} - in_temporal


async def case_timeline(client: Client, engine: Engine, store: EvidenceStore, converter: DataConverter,
                        case_ref: str) -> Timeline:
    histories, exported = await case_histories(client, engine, store, case_ref)
    decoded = [(await decode_run(run, converter), (run.workflow_id, run.run_id) in exported)
               for run in histories.runs]
    records = await asyncio.to_thread(case_records, engine, case_ref)
    return build_timeline(case_ref, decoded, histories.missing, records)
