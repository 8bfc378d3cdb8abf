"""A closed case's histories, kept past Temporal's retention: exported whole, stored encrypted in the evidence store,
recorded in ``history_export`` with the export's digest.

The export is one JSON document: every run of the user's workflow up to the close (the case's own events are all
in it by then) and every filing attempt of the case, each history exactly as Temporal holds it, payloads still
encrypted under the payload keys. The evidence store encrypts the document again, as it does media, and addresses
it by the SHA-256 of its plaintext, so whoever reads it back checks it is the one recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from models.filing import filing_workflow_id
from models.history_export import HistoryExport
from models.history_export_messages import EXPORT_FORMAT, ExportedHistory, ExportHistoryInput
from models.records import utcnow
from tipline.audit_log import AuditLog
from tipline.case_histories import CaseHistories, RunHistory, _fetch, fetch_case_histories, filing_case_number
from tipline.evidence import EvidenceStore


class ExportUnreadable(Exception):
    """An export is missing from the store, or does not match the digest recorded for it."""


def export_document(request: ExportHistoryInput, histories: CaseHistories, exported_at: datetime) -> bytes:
    """The export's bytes: canonical JSON, so the same histories always give the same digest."""
    document = {"format": EXPORT_FORMAT, "org_id": request.org_id, "case_ref": request.case_ref,
                "case_number": request.case_number, "exported_at": exported_at.isoformat(),
                "runs": [run.to_dict() for run in histories.runs], "missing": sorted(histories.missing)}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class LoadedExport:
    row: HistoryExport
    runs: list[RunHistory]
    missing: list[str]


# The actor of the audit row each export writes: the case workflow exports at close, nobody asks for it.
HISTORY_EXPORT_ACTOR = "history_export"


class HistoryExporter:
    def __init__(self, engine: Engine, store: EvidenceStore, client: Client, audit: AuditLog) -> None:
        self.engine = engine
        self.store = store
        self.client = client
        self.audit = audit

    async def export(self, request: ExportHistoryInput) -> ExportedHistory:
        histories = await fetch_case_histories(self.client, request.case_ref, request.case_number)
        found = {run.workflow_id for run in histories.runs}
        # Attempts started by a run Temporal no longer has are still fetched by the id they must have.
        for attempt in range(1, request.filing_attempts + 1):
            child_id = filing_workflow_id(request.case_ref, request.case_number, attempt)
            if child_id in found:
                continue
            child = await _fetch(self.client, child_id, None)
            if child is not None:
                histories.runs.append(child)
                histories.missing = [m for m in histories.missing if m != child_id]
            elif child_id not in histories.missing:
                histories.missing.append(child_id)
        data = export_document(request, histories, utcnow())
        await asyncio.to_thread(self._record, request, data, len(histories.runs))
        exported = ExportedHistory(sha256=hashlib.sha256(data).hexdigest(), runs=len(histories.runs),
                                   missing=sorted(histories.missing))
        # Recorded once the export is stored; a retried activity stores again and says so again.
        await asyncio.to_thread(lambda: self.audit.append(
            "case.history_exported", actor=HISTORY_EXPORT_ACTOR, org_id=request.org_id, subject=request.case_ref,
            case_number=request.case_number, sha256=exported.sha256, size=len(data), runs=exported.runs,
            filing_attempts=request.filing_attempts, missing_runs=len(exported.missing)))
        return exported

    def _record(self, request: ExportHistoryInput, data: bytes, runs: int) -> None:
        ref = self.store.put_bytes(data)
        with Session(self.engine) as session:
            row = session.exec(select(HistoryExport).where(HistoryExport.case_ref == request.case_ref,
                                                           HistoryExport.case_number == request.case_number)).first()
            replaced = row.sha256 if row is not None and row.sha256 != ref.sha256 else None
            if row is None:
                row = HistoryExport(org_id=request.org_id, case_ref=request.case_ref,
                                    case_number=request.case_number, sha256=ref.sha256, size=ref.size, runs=runs)
            else:  # a retry of the export (or a later one by hand) holds at least what the first held
                row.sha256, row.size, row.runs, row.exported_at = ref.sha256, ref.size, runs, utcnow()
            session.add(row)
            session.commit()
        if replaced is not None:
            self.store.delete(replaced)


def _run_order(run: RunHistory) -> tuple[int, int, datetime]:
    number = filing_case_number(run.workflow_id)
    attempt = int(run.workflow_id.rsplit("/", 1)[-1]) if number is not None else 0
    started = run.events[0].event_time.ToDatetime() if run.events else datetime.min
    return (0 if number is None else 1, (number or 0) * 1_000_000 + attempt, started)


def export_rows(engine: Engine, case_ref: str, case_number: int | None = None) -> list[HistoryExport]:
    with Session(engine) as session:
        query = select(HistoryExport).where(HistoryExport.case_ref == case_ref)
        if case_number is not None:
            query = query.where(HistoryExport.case_number == case_number)
        return list(session.exec(query.order_by(col(HistoryExport.case_number))).all())


def load_export(store: EvidenceStore, row: HistoryExport) -> LoadedExport:
    """The runs an export holds, read back from the store and checked against the digest recorded for it."""
    if row.purged_at is not None:
        raise ExportUnreadable(f"the export of case {row.case_number} was purged at {row.purged_at.isoformat()}")
    try:
        data = store.read_bytes(row.sha256)
    except FileNotFoundError:
        raise ExportUnreadable(f"the export of case {row.case_number} ({row.sha256}) is missing from the store"
                               ) from None
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise ExportUnreadable(f"the export of case {row.case_number} does not match its recorded digest")
    document = json.loads(data)
    if document.get("format") != EXPORT_FORMAT:
        raise ExportUnreadable(f"the export of case {row.case_number} has an unknown format")
    return LoadedExport(row=row, runs=[RunHistory.from_dict(r) for r in document["runs"]],
                        missing=list(document.get("missing", [])))


def merged_runs(exports: list[LoadedExport], live: CaseHistories | None = None) -> CaseHistories:
    """Every run known from Temporal and from the exports, each once: a run's newest copy (the longest) wins."""
    best: dict[tuple[str, str], RunHistory] = {}
    order: list[tuple[str, str]] = []
    sources = [*(e.runs for e in exports), *([live.runs] if live else [])]
    for runs in sources:
        for run in runs:
            key = (run.workflow_id, run.run_id)
            if key not in best:
                order.append(key)
            if key not in best or len(run.events) >= len(best[key].events):
                best[key] = run
    merged = CaseHistories(runs=[best[k] for k in order])
    missing = {m for e in exports for m in e.missing} | set(live.missing if live else [])
    known = {r.workflow_id for r in merged.runs} | {f"{r.workflow_id}@{r.run_id}" for r in merged.runs}
    merged.missing = sorted(missing - known)
    # Parent runs first, in chain order (start time), then the filing attempts.
    merged.runs.sort(key=_run_order)
    return merged
