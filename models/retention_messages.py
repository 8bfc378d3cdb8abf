"""The retention workflow's messages: references only (a case ref, a case number, a time), never content.

Apart from the tables (models.retention), so the workflow imports no database library."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class CaseKey(BaseModel):
    case_ref: str
    case_number: int


class RetentionStart(BaseModel):
    # Passes run this far apart on Temporal's clock; a run continues as new after ``passes_per_run``.
    interval_seconds: int = 86400
    passes_per_run: int = 30
    passes_before: int = 0


class DueCasesInput(BaseModel):
    now: datetime
    after: CaseKey | None = None
    limit: int = 200


class DueCases(BaseModel):
    cases: list[CaseKey]
    # Where the next page of closed cases starts; None once every closed case was looked at.
    next_after: CaseKey | None


class PurgeCaseInput(BaseModel):
    case: CaseKey
    now: datetime


class PurgeOutcome(BaseModel):
    purged: bool
    # Why not, when not: "held", "not_due", "open", "already_purged".
    skipped: str | None = None
    objects_deleted: int = 0


class PassSummary(BaseModel):
    at: datetime
    passes: int
    purged: int
    failed: int
