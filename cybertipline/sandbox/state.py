"""Per-report state machine, the sandbox clock, and JSON persistence.

Transitions (spec section 6): open -> finished | retracted | expired. Expiry is evaluated lazily against the
injectable clock at ``max(opened + 24h, last upload/fileinfo + 1h)``, so moving the clock is enough to expire
reports; nothing runs in the background.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cybertipline import responses as codes

OPEN_WINDOW = timedelta(hours=24)
IDLE_WINDOW = timedelta(hours=1)


def _real_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SandboxClock:
    """Real time plus an adjustable offset, so tests can jump days ahead without waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta(0) if start is None else as_utc(start) - _real_now()

    def now(self) -> datetime:
        return _real_now() + self._offset

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    def set(self, when: datetime) -> None:
        self._offset = as_utc(when) - _real_now()

    def reset(self) -> None:
        self._offset = timedelta(0)

    @property
    def offset(self) -> timedelta:
        return self._offset

    @offset.setter
    def offset(self, value: timedelta) -> None:
        self._offset = value


class ReportStatus(StrEnum):
    OPEN = "open"
    FINISHED = "finished"
    RETRACTED = "retracted"
    EXPIRED = "expired"


class SandboxError(Exception):
    """An application error the sandbox answers with a ``reportResponse`` code."""

    def __init__(self, code: int, description: str | None = None, *, report_id: int | None = None) -> None:
        self.code = code
        self.description = description or codes.describe(code)
        self.report_id = report_id
        super().__init__(f"{code}: {self.description}")


@dataclass
class StoredFile:
    # Only metadata is kept: the sandbox hashes uploads and throws the bytes away.
    file_id: str
    filename: str
    md5: str
    size: int
    uploaded_at: datetime
    file_details_xml: str | None = None
    content_type: str | None = None  # as the file part declared it


@dataclass
class Report:
    report_id: int
    owner: str
    report_xml: str
    opened_at: datetime
    status: ReportStatus = ReportStatus.OPEN
    last_modified_at: datetime | None = None
    finished_at: datetime | None = None
    retracted_at: datetime | None = None
    files: dict[str, StoredFile] = field(default_factory=dict)

    @property
    def expires_at(self) -> datetime | None:
        if self.status in (ReportStatus.FINISHED, ReportStatus.RETRACTED):
            return None
        deadline = self.opened_at + OPEN_WINDOW
        if self.last_modified_at is not None:
            deadline = max(deadline, self.last_modified_at + IDLE_WINDOW)
        return deadline


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_dt(value: str | None) -> datetime | None:
    return None if value is None else as_utc(datetime.fromisoformat(value))


def _required_dt(data: dict[str, Any], key: str) -> datetime:
    value = _parse_dt(data.get(key))
    if value is None:
        raise ValueError(f"state file entry without {key}")
    return value


def file_to_json(f: StoredFile) -> dict[str, Any]:
    return {
        "file_id": f.file_id,
        "filename": f.filename,
        "md5": f.md5,
        "size": f.size,
        "uploaded_at": _iso(f.uploaded_at),
        "file_details_xml": f.file_details_xml,
        "content_type": f.content_type,
    }


def report_to_json(r: Report) -> dict[str, Any]:
    return {
        "report_id": r.report_id,
        "owner": r.owner,
        "status": r.status.value,
        "opened_at": _iso(r.opened_at),
        "last_modified_at": _iso(r.last_modified_at),
        "expires_at": _iso(r.expires_at),
        "finished_at": _iso(r.finished_at),
        "retracted_at": _iso(r.retracted_at),
        "report_xml": r.report_xml,
        "files": [file_to_json(f) for f in r.files.values()],
    }


def _file_from_json(data: dict[str, Any]) -> StoredFile:
    return StoredFile(
        file_id=data["file_id"],
        filename=data["filename"],
        md5=data["md5"],
        size=data["size"],
        uploaded_at=_required_dt(data, "uploaded_at"),
        file_details_xml=data.get("file_details_xml"),
        content_type=data.get("content_type"),
    )


def _report_from_json(data: dict[str, Any]) -> Report:
    files = [_file_from_json(f) for f in data.get("files", [])]
    return Report(
        report_id=data["report_id"],
        owner=data["owner"],
        report_xml=data["report_xml"],
        opened_at=_required_dt(data, "opened_at"),
        status=ReportStatus(data["status"]),
        last_modified_at=_parse_dt(data.get("last_modified_at")),
        finished_at=_parse_dt(data.get("finished_at")),
        retracted_at=_parse_dt(data.get("retracted_at")),
        files={f.file_id: f for f in files},
    )


def _first_report_id() -> int:
    # A random 7-digit start, like the 2016 test server's ~7,855,7xx, so ids never look like 1, 2, 3.
    return random.SystemRandom().randint(1_000_000, 8_999_999)


class ReportStore:
    """All reports, keyed by reportId, with the rules for who may do what to which report."""

    def __init__(self, clock: SandboxClock, state_file: Path | None = None, *, restore_clock: bool = True) -> None:
        self.clock = clock
        self.state_file = state_file
        self.reports: dict[int, Report] = {}
        self.next_report_id = _first_report_id()
        if state_file is not None and state_file.exists():
            self._load(state_file, restore_clock=restore_clock)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def open_report(self, owner: str, report_xml: str) -> Report:
        report = Report(report_id=self.next_report_id, owner=owner, report_xml=report_xml, opened_at=self.clock.now())
        self.next_report_id += 1
        self.reports[report.report_id] = report
        self.save()
        return report

    def add_file(
        self, owner: str, report_id: int, filename: str, md5: str, size: int, content_type: str | None = None
    ) -> StoredFile:
        report = self.writable(owner, report_id)
        now = self.clock.now()
        stored = StoredFile(file_id=secrets.token_hex(16), filename=filename, md5=md5, size=size, uploaded_at=now,
                            content_type=content_type)
        report.files[stored.file_id] = stored
        report.last_modified_at = now
        self.save()
        return stored

    def set_file_details(self, owner: str, report_id: int, file_id: str, details_xml: str) -> Report:
        report = self.writable(owner, report_id)
        stored = report.files.get(file_id)
        if stored is None:
            raise SandboxError(codes.FILE_DOES_NOT_EXIST, report_id=report_id)
        stored.file_details_xml = details_xml
        report.last_modified_at = self.clock.now()
        self.save()
        return report

    def finish(self, owner: str, report_id: int) -> Report:
        report = self.writable(owner, report_id)
        report.status = ReportStatus.FINISHED
        report.finished_at = self.clock.now()
        self.save()
        return report

    def retract(self, owner: str, report_id: int) -> Report:
        report = self.writable(owner, report_id)
        report.status = ReportStatus.RETRACTED
        report.retracted_at = self.clock.now()
        self.save()
        return report

    # -- lookups -------------------------------------------------------------------------------------------

    def visible(self, owner: str, report_id: int) -> Report:
        """The report if ``owner`` can see it; gone, expired and foreign reports all look like 5001."""
        self.expire_due()
        report = self.reports.get(report_id)
        if report is None or report.owner != owner or report.status is ReportStatus.EXPIRED:
            raise SandboxError(codes.REPORT_DOES_NOT_EXIST, report_id=report_id)
        return report

    def writable(self, owner: str, report_id: int) -> Report:
        report = self.visible(owner, report_id)
        if report.status is ReportStatus.RETRACTED:
            raise SandboxError(codes.REPORT_ALREADY_RETRACTED, report_id=report_id)
        if report.status is ReportStatus.FINISHED:
            raise SandboxError(codes.REPORT_ALREADY_FINISHED, report_id=report_id)
        return report

    def expire_due(self) -> None:
        now = self.clock.now()
        changed = False
        for report in self.reports.values():
            expires_at = report.expires_at
            if report.status is ReportStatus.OPEN and expires_at is not None and now >= expires_at:
                report.status = ReportStatus.EXPIRED
                changed = True
        if changed:
            self.save()

    def snapshot(self) -> list[dict[str, Any]]:
        self.expire_due()
        return [report_to_json(r) for r in sorted(self.reports.values(), key=lambda r: r.report_id)]

    def reset(self) -> None:
        self.reports.clear()
        self.save()

    # -- persistence ---------------------------------------------------------------------------------------

    def save(self) -> None:
        if self.state_file is None:
            return
        payload = {
            "version": 1,
            "next_report_id": self.next_report_id,
            # Kept so a restart does not bring reports back to life that a moved clock had expired.
            "clock_offset_seconds": self.clock.offset.total_seconds(),
            "reports": [report_to_json(r) for r in self.reports.values()],
        }
        target = self.state_file
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a crash mid-write never leaves a truncated state file behind.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def _load(self, path: Path, *, restore_clock: bool) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if restore_clock:
            self.clock.offset = timedelta(seconds=float(data.get("clock_offset_seconds", 0.0)))
        self.reports = {r.report_id: r for r in map(_report_from_json, data.get("reports", []))}
        self.next_report_id = max(
            int(data.get("next_report_id", self.next_report_id)),
            max(self.reports, default=0) + 1,
        )
