"""What ``tipline audit replay|export|verify`` do, callable without the command line (tests, scripts)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.worker import WorkflowRunner

from models.history_export import HistoryExport
from models.records import RefKind, utcnow
from models.retention import CaseTombstone, EvidenceLink
from tipline.audit_bundle import Verified, bundle_files, verify_bundle, write_bundle
from tipline.audit_log import AuditLog
from tipline.audit_replay import RunReplay, replay_runs
from tipline.audit_signing import parse_public_key, signing_key
from tipline.codec import data_converter
from tipline.evidence import EvidenceStore
from tipline.history_decode import decode_run
from tipline.registry import RefRegistry
from tipline.settings import Settings
from tipline.timeline import build_timeline
from tipline.timeline_source import case_histories, case_records


async def replay_case(settings: Settings, engine: Engine, client: Client | None, case_ref: str, *,
                      from_export: bool = False, workflows: Sequence[type] | None = None,
                      runner: WorkflowRunner | None = None) -> tuple[list[RunReplay], list[str]]:
    """Every run of the case replayed on today's code (the worker's workflows unless told otherwise), and the
    runs the histories name that could not be found."""
    if workflows is None:
        from worker import WORKFLOWS

        workflows = WORKFLOWS
    store = EvidenceStore.from_settings(settings)
    histories, exported = await case_histories(client, engine, store, case_ref, from_export=from_export)
    results = await replay_runs(histories.runs, workflows, data_converter(settings), exported=exported,
                                runner=runner)
    return results, histories.missing


def _evidence(engine: Engine, case_ref: str) -> dict:
    with Session(engine) as session:
        links = session.exec(select(EvidenceLink).where(EvidenceLink.case_ref == case_ref)
                             .order_by(col(EvidenceLink.sha256))).all()
        tombstones = session.exec(select(CaseTombstone).where(CaseTombstone.case_ref == case_ref)).all()
        exports = session.exec(select(HistoryExport).where(HistoryExport.case_ref == case_ref)).all()
        return {
            "preserved_sha256": [link.sha256 for link in links],
            "history_exports": [{"case_number": e.case_number, "sha256": e.sha256, "runs": e.runs,
                                 "exported_at": e.exported_at.isoformat(),
                                 "purged_at": e.purged_at.isoformat() if e.purged_at else None} for e in exports],
            "tombstones": [{"case_number": t.case_number, "status": t.status,
                            "ncmec_report_ids": json.loads(t.ncmec_report_ids),
                            "evidence_sha256": json.loads(t.evidence_sha256),
                            "history_sha256": json.loads(t.history_sha256),
                            "purged_at": t.purged_at.isoformat()} for t in tombstones],
        }


async def export_bundle(settings: Settings, engine: Engine, client: Client | None, case_ref: str, *,
                        actor: str = "cli") -> bytes:
    """The case's signed bundle; the export is an audit row (what it holds, counted, and its digest)."""
    store = EvidenceStore.from_settings(settings)
    converter = data_converter(settings)
    histories, exported = await case_histories(client, engine, store, case_ref)
    records = await asyncio.to_thread(case_records, engine, case_ref)
    decoded = [(await decode_run(run, converter), (run.workflow_id, run.run_id) in exported)
               for run in histories.runs]
    timeline = build_timeline(case_ref, decoded, histories.missing, records)
    evidence = await asyncio.to_thread(_evidence, engine, case_ref)
    evidence["filed_sha256"] = sorted({f.evidence_sha256 for f in records.files})
    files = await bundle_files(histories.runs, records, evidence, timeline, converter.payload_codec)
    data = write_bundle(case_ref, files, signing_key(settings), utcnow())
    await asyncio.to_thread(_audit_export, settings, engine, case_ref, actor, data, files)
    return data


def _audit_export(settings: Settings, engine: Engine, case_ref: str, actor: str, data: bytes,
                  files: dict[str, str]) -> None:
    def count(folder: str) -> int:
        return sum(1 for name in files if name.startswith(folder + "/"))

    AuditLog.from_settings(settings, engine).append(
        "case.bundle_exported", actor=actor, org_id=RefRegistry.from_settings(settings, engine).org_of(
            RefKind.CASE, case_ref), subject=case_ref, bundle_sha256=hashlib.sha256(data).hexdigest(),
        size=len(data), files=len(files), histories=count("histories"), reports=count("reports"),
        receipts=count("receipts"), file_details=count("file_details"),
        audit_rows=len(json.loads(files["audit_log.json"])))


def verify_bundle_file(path: Path, public_key: str) -> Verified:
    return verify_bundle(path.read_bytes(), parse_public_key(public_key))
