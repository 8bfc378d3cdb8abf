"""A case's timeline as the API returns it: every event of a user's cases, from Temporal's histories and the
database's records, in order."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class TimelineEntry(BaseModel):
    at: datetime
    kind: str = Field(description="What happened, e.g. content.arrived, media.preserved, media.viewed, "
                      "case.decided, ncmec.report_opened, ncmec.report_retracted, filing.started")
    source: Literal["temporal", "database"]
    summary: str = Field(description="One line for a person")
    case_number: int | None = None
    actor: str | None = Field(default=None, description="Who, as the audit log names people (user:7, key:3)")
    detail: dict[str, Any] = Field(default_factory=dict)
    # Where it was read: the workflow run and event, or the table and row.
    workflow_id: str | None = None
    run_id: str | None = None
    event_id: int | None = None
    record: str | None = Field(default=None, description="table:id for an entry read from the database")


class TimelineRun(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    events: int
    from_export: bool = Field(description="Read from the case's exported histories, not from Temporal")


class Timeline(BaseModel):
    case_ref: str
    runs: list[TimelineRun]
    missing_runs: list[str] = Field(description="Runs the histories name that neither Temporal nor an export has")
    entries: list[TimelineEntry]
