"""A case's timeline: pure functions from decoded histories (tipline.history_decode) and database rows to entries.

Histories say what the workflows did: content arriving and why, preservation, hashes and matches, urgency as the
case's state recorded it, decisions and who made them, each NCMEC call and its answer, retractions and refiles.
The database says what people did around them: every view, claim, audit-log row, report attempt and export.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from models.audit import AuditRow
from models.claims import ClaimEvent
from models.history_export import HistoryExport
from models.records import FiledFile, FiledReport, MediaView, UrgencyAssessmentRecord
from models.timeline import Timeline, TimelineEntry, TimelineRun
from tipline.case_histories import filing_case_number
from tipline.history_decode import DecodedEvent, DecodedRun

# The NCMEC calls, by activity name, and how an answer reads.
NCMEC_CALLS = {"open_report": "ncmec.report_opened", "upload_file": "ncmec.file_uploaded",
               "send_file_details": "ncmec.file_details_sent", "upload_conversation": "ncmec.conversation_uploaded",
               "send_conversation_details": "ncmec.conversation_details_sent", "finish_report": "ncmec.report_finished",
               "abandon_report": "ncmec.report_retracted"}


@dataclass
class CaseRecords:
    views: list[MediaView] = field(default_factory=list)
    claims: list[ClaimEvent] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    reports: list[FiledReport] = field(default_factory=list)
    files: list[FiledFile] = field(default_factory=list)
    exports: list[HistoryExport] = field(default_factory=list)
    urgency: list[UrgencyAssessmentRecord] = field(default_factory=list)


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class _RunReader:
    """Reads one run's events in order, remembering what later events refer back to (digests to media ids)."""

    def __init__(self, run: DecodedRun, media_by_sha: dict[str, str], urgency_seen: dict[int, tuple]) -> None:
        self.run = run
        self.case_number = filing_case_number(run.workflow_id)
        self.media_by_sha = media_by_sha
        self.urgency_seen = urgency_seen
        self.entries: list[TimelineEntry] = []

    def add(self, event: DecodedEvent, kind: str, summary: str, *, case_number: int | None = None,
            actor: str | None = None, **detail: Any) -> None:
        self.entries.append(TimelineEntry(
            at=event.at, kind=kind, source="temporal", summary=summary, actor=actor,
            case_number=case_number if case_number is not None else self.case_number,
            detail={k: v for k, v in detail.items() if v is not None}, workflow_id=self.run.workflow_id,
            run_id=self.run.run_id, event_id=event.event_id))

    def urgency(self, event: DecodedEvent, state: Any) -> None:
        """An urgency assessment as the case's state recorded it, once per change of level or score."""
        number, urgency = _get(state, "case_number"), _get(state, "urgency")
        if not isinstance(number, int) or not isinstance(urgency, dict):
            return
        seen = (urgency.get("level"), urgency.get("score"))
        if self.urgency_seen.get(number) == seen:
            return
        self.urgency_seen[number] = seen
        reasons = [r.get("text") for r in urgency.get("reasons") or [] if isinstance(r, dict)]
        self.add(event, "urgency.assessed", f"urgency {seen[0]} (score {seen[1]})", case_number=number,
                 level=seen[0], score=seen[1], reasons=reasons, suggested_reason=urgency.get("suggested_reason"))

    def states(self, event: DecodedEvent, start: Any) -> None:
        for state in [_get(start, "state"), *(_get(start, "decided_cases") or []), _get(start, "last_closed")]:
            self.urgency(event, state)

    def read(self) -> list[TimelineEntry]:
        for event in self.run.events:
            getattr(self, "_" + event.type.lower(), lambda _: None)(event)
        return self.entries

    def _workflow_execution_started(self, event: DecodedEvent) -> None:
        start = event.values[0] if event.values else None
        if event.name == "CaseFilingWorkflow":
            case = _get(start, "case") or {}
            attempt = _get(case, "filing_attempt")
            retract = _get(case, "retract_report")
            refile = isinstance(attempt, int) and attempt > 1
            self.add(event, "filing.refiled" if refile else "filing.started",
                     f"filing attempt {attempt}" + (" (a refile)" if refile else "")
                     + (f", first retracting: {retract}" if retract else ""),
                     case_number=_get(case, "case_number"), attempt=attempt, retract_report=retract)
            self.urgency(event, case)
            return
        continued = event.extra.get("continued_from")
        self.add(event, "run.started", "the user's workflow continued as new" if continued
                 else "the user's workflow started", case_number=_get(start, "case_number"), continued_from=continued)
        self.states(event, start)

    def _workflow_execution_signaled(self, event: DecodedEvent) -> None:
        value = event.values[0] if event.values else None
        if event.name == "add_content":
            media_id, reason = _get(value, "content_id"), _get(value, "reason") or {}
            sha = _get(value, "media", "evidence", "sha256")
            if sha and media_id:
                self.media_by_sha[sha] = media_id
            self.add(event, "content.arrived", f"content {media_id} arrived: {reason.get('kind')}"
                     + (f" ({reason['detail']})" if reason.get("detail") else ""), actor=reason.get("by"),
                     media_id=media_id, reason=reason.get("kind"), reason_detail=reason.get("detail"),
                     evidence_sha256=sha, url=bool(_get(value, "media", "url")),
                     hashed_at_screening=_get(value, "analysis") is not None)
        elif event.name == "add_conversation":
            self.add(event, "conversation.arrived", f"conversation {_get(value, 'thread_id')} arrived",
                     thread_id=_get(value, "thread_id"), messages=len(_get(value, "messages") or []))
        elif event.name == "filing_report" and _get(value, "ended"):
            case = _get(value, "case") or {}
            self.add(event, "filing.ended", f"filing attempt {_get(value, 'attempt')} ended: {_get(case, 'status')}",
                     case_number=_get(value, "case_number"), attempt=_get(value, "attempt"),
                     status=_get(case, "status"), report_id=_get(case, "filing", "report_id"),
                     attention_reason=_get(case, "attention_reason"))

    def _workflow_execution_update_accepted(self, event: DecodedEvent) -> None:
        request = event.values[0] if event.values else {}
        who, number = _get(request, "reviewer_id"), _get(request, "case_number")
        if event.name == "decide":
            media = _get(request, "media") or []
            reported = [m.get("media_id") for m in media if isinstance(m, dict) and m.get("reported")]
            self.add(event, "case.decided", f"{who} decided to report {len(reported)} item(s) "
                     f"({_get(request, 'incident_type')})", case_number=number, actor=who,
                     incident_type=_get(request, "incident_type"), reported=reported,
                     escalate=_get(request, "escalate_to_high_priority"))
        elif event.name == "dismiss":
            self.add(event, "case.dismissed", f"{who} dismissed the case", case_number=number, actor=who,
                     reason=_get(request, "reason"))
        elif event.name == "retry_filing":
            self.add(event, "filing.retry_requested", f"{who} asked for the filing to be retried",
                     case_number=number, actor=who)

    def _activity_task_completed(self, event: DecodedEvent) -> None:
        self._activity(event)

    def _activity_task_failed(self, event: DecodedEvent) -> None:
        self._activity(event)

    def _activity_task_timed_out(self, event: DecodedEvent) -> None:
        self._activity(event)

    def _activity(self, event: DecodedEvent) -> None:
        name, request = event.name or "unknown", event.inputs[0] if event.inputs else None
        result = event.values[0] if event.values else None
        if name in ("preserve_media", "preserve_media_batch"):
            requests = _get(request, "items") if name == "preserve_media_batch" else [request]
            results = result if isinstance(result, list) else [result] * len(requests or [])
            for asked, got in zip(requests or [], results if event.failure is None else [None] * len(requests or []),
                                  strict=False):
                media_id, sha = _get(asked, "media_id"), _get(got, "evidence", "sha256")
                if sha and media_id:
                    self.media_by_sha[sha] = media_id
                error = event.failure or _get(got, "error")
                self.add(event, "media.preserved" if sha else "media.preservation_failed",
                         f"{media_id} preserved ({sha[:12]}…)" if sha else f"{media_id} not preserved: {error}",
                         media_id=media_id, sha256=sha, md5=_get(got, "evidence", "md5"), error=error)
        elif name in ("analyze_media", "analyze_media_batch"):
            refs = _get(request, "items") if name == "analyze_media_batch" else [_get(request, "evidence")]
            results = result if isinstance(result, list) else [result]
            for ref, analysis in zip(refs or [], results, strict=False):
                sha = _get(ref, "sha256")
                matches = _get(analysis, "matches") or []
                self.add(event, "media.hashed", f"{self.media_by_sha.get(sha, sha)} hashed: {len(matches)} match(es)"
                         if event.failure is None else f"hashing failed: {event.failure}",
                         media_id=self.media_by_sha.get(sha), sha256=sha, pdq=_get(analysis, "pdq"),
                         unhashable=_get(analysis, "unhashable_reason"), matches=matches, error=event.failure)
        elif name == "send_files":
            self._ncmec_batch(event, request, result)
        elif name in NCMEC_CALLS:
            self._ncmec(event, name, request, result)
        elif name == "notify_escalation":
            self.add(event, "case.escalated", "the review was overdue: Moderator Managers were told",
                     case_number=_get(request, "case_number"), error=event.failure)
        elif name == "bank_reported_media":
            self.add(event, "media.banked", f"reported media banked (report {_get(request, 'report_id')})",
                     report_id=_get(request, "report_id"), items=len(_get(request, "items") or []),
                     error=event.failure)
        elif name == "export_case_history":
            self.add(event, "history.exported", f"case histories exported ({_get(result, 'runs')} runs)",
                     case_number=_get(request, "case_number"), sha256=_get(result, "sha256"), error=event.failure)
        elif name in ("enrich_user", "list_user_media", "user_history"):
            self.add(event, f"platform.{name}", f"{name.replace('_', ' ')}"
                     + (f" failed: {event.failure}" if event.failure else ""), error=event.failure)

    def _ncmec(self, event: DecodedEvent, name: str, request: Any, result: Any) -> None:
        report_id = _get(result, "report_id") or _get(request, "report_id")
        answer = event.failure or {"open_report": f"report {report_id}",
                                   "upload_file": f"file {_get(result, 'file_id')}",
                                   "finish_report": f"finished with {len(_get(result, 'file_ids') or [])} file(s)",
                                   "abandon_report": f"{_get(result, 'outcome')}"}.get(name, "accepted")
        kind = NCMEC_CALLS[name] if event.failure is None else f"ncmec.{name}_failed"
        self.add(event, kind, f"NCMEC {name.replace('_', ' ')}: {answer}", report_id=report_id,
                 attempt=_get(request, "attempt"), media_id=_get(request, "media_id"),
                 file_id=_get(result, "file_id") or _get(request, "file_id"), outcome=_get(result, "outcome"),
                 reason=_get(request, "reason") if name == "abandon_report" else None, error=event.failure,
                 reviewer=_get(request, "decision", "reviewer_id"))

    def _ncmec_batch(self, event: DecodedEvent, request: Any, result: Any) -> None:
        """A batch of files (one activity): each file NCMEC took is an upload and its description."""
        report_id = _get(request, "report_id")
        if event.failure is not None:
            media = [_get(f, "media", "media_id") for f in _get(request, "files") or []]
            self.add(event, "ncmec.send_files_failed", f"NCMEC file batch: {event.failure}", report_id=report_id,
                     media_ids=media, error=event.failure)
            return
        for sent in _get(result, "files") or []:
            file_id, media_id = _get(sent, "file_id"), _get(sent, "media_id")
            self.add(event, "ncmec.file_uploaded", f"NCMEC upload file: file {file_id}", report_id=report_id,
                     media_id=media_id, file_id=file_id)
            self.add(event, "ncmec.file_details_sent", f"NCMEC send file details: file {file_id}",
                     report_id=report_id, media_id=media_id, file_id=file_id)

    def _start_child_workflow_execution_initiated(self, event: DecodedEvent) -> None:
        child = event.extra.get("workflow_id") or ""
        if event.name == "CaseHistoryExportWorkflow":
            # The export's own runs are not fetched: the row it leaves (history.export_recorded) is what is kept.
            number = child.rsplit("/", 1)[-1]
            self.add(event, "history.export_started", f"history export {child} started",
                     case_number=int(number) if number.isdigit() else None, child_workflow_id=child)
            return
        self.add(event, "filing.child_started", f"filing workflow {child} started",
                 case_number=filing_case_number(child), child_workflow_id=child)

    def _upsert_workflow_search_attributes(self, event: DecodedEvent) -> None:
        status = event.extra.get("TiplineCaseStatus")
        if status is not None:
            self.add(event, "case.status", f"head case {status}", status=status,
                     urgent=event.extra.get("TiplineUrgent"), report_id=event.extra.get("TiplineNcmecReportId"))

    def _workflow_execution_continued_as_new(self, event: DecodedEvent) -> None:
        start = event.values[0] if event.values else None
        self.add(event, "run.continued_as_new", "the run continued as new to keep its history short",
                 case_number=_get(start, "case_number"), next_run_id=event.extra.get("next_run_id"))

    def _workflow_execution_completed(self, event: DecodedEvent) -> None:
        state = event.values[0] if event.values else None
        if self.run.workflow_type == "CaseFilingWorkflow":
            self.add(event, "filing.completed", f"filing attempt ended: {_get(state, 'status')}",
                     status=_get(state, "status"), report_id=_get(state, "filing", "report_id"))
        else:
            self.add(event, "run.completed", "the user's workflow closed: no open cases")
        self.urgency(event, state)

    def _workflow_execution_failed(self, event: DecodedEvent) -> None:
        self.add(event, "run.ended_badly", f"the run ended: {event.type.lower()}")

    _workflow_execution_terminated = _workflow_execution_timed_out = _workflow_execution_failed


def history_entries(runs: Iterable[DecodedRun]) -> list[TimelineEntry]:
    """Entries of every run, parents first (they preserve the media whose digests the children name)."""
    media_by_sha: dict[str, str] = {}
    urgency_seen: dict[int, tuple] = {}
    entries: list[TimelineEntry] = []
    for run in runs:
        entries.extend(_RunReader(run, media_by_sha, urgency_seen).read())
    return entries


def record_entries(records: CaseRecords) -> list[TimelineEntry]:
    entries = [TimelineEntry(at=v.viewed_at, kind="media.viewed", source="database", actor=_viewer(v),
                             summary=f"{_viewer(v)} viewed {v.media_id}", detail={"media_id": v.media_id,
                                                                                  "role": v.role},
                             record=f"media_view:{v.id}") for v in records.views]
    entries += [TimelineEntry(at=c.at, kind=f"claim.{c.action}", source="database", actor=c.actor,
                              case_number=c.case_number, summary=f"{c.actor}: {c.action}"
                              + (f", held by {c.holder}" if c.holder else ""), detail={"holder": c.holder},
                              record=f"claim_event:{c.id}") for c in records.claims]
    # The view log has every view: the audit log's copy of each would only repeat it.
    entries += [TimelineEntry(at=a.at, kind=f"audit.{a.action}", source="database", actor=a.actor,
                              case_number=json.loads(a.detail).get("case_number"),
                              summary=f"audit row {a.seq}: {a.action} by {a.actor}",
                              detail={**json.loads(a.detail), "seq": a.seq, "seal": a.seal},
                              record=f"audit_log:{a.seq}") for a in records.audit if a.action != "media.viewed"]
    files_by_report: dict[int, list[FiledFile]] = {}
    for file in records.files:
        files_by_report.setdefault(file.report_pk, []).append(file)
    for report in records.reports:
        detail = {"report_id": report.ncmec_report_id, "attempt": report.attempt, "status": report.status,
                  "environment": report.ncmec_environment, "submitted_by": report.submitted_by,
                  "files": [{"media_id": f.media_id, "ncmec_file_id": f.ncmec_file_id, "sha256": f.evidence_sha256,
                             "md5": f.md5} for f in files_by_report.get(report.id or 0, [])]}
        entries.append(TimelineEntry(at=report.opened_at, kind="report.recorded", source="database",
                                     case_number=report.case_number, actor=report.submitted_by,
                                     summary=f"CyberTip {report.ncmec_report_id} (attempt {report.attempt}): "
                                             f"{report.status}", detail=detail, record=f"filed_report:{report.id}"))
        if report.finished_at is not None:
            entries.append(TimelineEntry(at=report.finished_at, kind="report.receipt", source="database",
                                         case_number=report.case_number,
                                         summary=f"NCMEC's receipt for CyberTip {report.ncmec_report_id}",
                                         detail={"report_id": report.ncmec_report_id,
                                                 "receipt": report.finish_receipt_xml is not None},
                                         record=f"filed_report:{report.id}"))
    entries += [TimelineEntry(at=e.exported_at, kind="history.export_recorded", source="database",
                              case_number=e.case_number, summary=f"{e.runs} run(s) exported, digest {e.sha256[:12]}…"
                              + (" (purged)" if e.purged_at else ""),
                              detail={"sha256": e.sha256, "runs": e.runs, "purged_at": e.purged_at and
                                      e.purged_at.isoformat()}, record=f"history_export:{e.id}")
                for e in records.exports]
    for assessed in records.urgency:
        reasons = json.loads(assessed.reasons_json)
        entries.append(TimelineEntry(
            at=assessed.assessed_at, kind="urgency.assessed", source="database", case_number=assessed.case_number,
            summary=f"urgency {assessed.level} (score {assessed.score})",
            detail={"level": assessed.level, "score": assessed.score, "reasons": [r.get("text") for r in reasons],
                    "rules": [r.get("rule_id") for r in reasons], "evidence": [r.get("evidence") for r in reasons]},
            record=f"urgency_assessment:{assessed.id}"))
    return entries


def _viewer(view: MediaView) -> str:
    return f"user:{view.user_id}" if view.user_id is not None else f"key:{view.api_key_id}"


def build_timeline(case_ref: str, runs: list[tuple[DecodedRun, bool]], missing: list[str],
                   records: CaseRecords) -> Timeline:
    """Every entry in time order; at one instant, a run's events in their history order."""
    recorded = record_entries(records)
    # Every change of urgency published is in the database; the history shows only those in the state it carries.
    assessed = {e.case_number for e in recorded if e.kind == "urgency.assessed"}
    entries = [e for e in history_entries(run for run, _ in runs)
               if not (e.kind == "urgency.assessed" and e.case_number in assessed)] + recorded
    order = {id(e): n for n, e in enumerate(entries)}
    entries.sort(key=lambda e: (e.at, order[id(e)]))
    return Timeline(case_ref=case_ref, missing_runs=missing, entries=entries,
                    runs=[TimelineRun(workflow_id=r.workflow_id, run_id=r.run_id, workflow_type=r.workflow_type,
                                      events=len(r.events), from_export=exported) for r, exported in runs])
