"""The history export activity's messages, apart from its table (models.history_export), so the workflows that
schedule it import no database library."""

from __future__ import annotations

from pydantic import BaseModel

EXPORT_FORMAT = "tipline-history-export/1"


class ExportHistoryInput(BaseModel):
    org_id: str
    case_ref: str
    case_number: int
    # How many filing attempts the case made: their child workflows are ``{case_ref}/filing/{n}/{attempt}``.
    filing_attempts: int = 0


class ExportedHistory(BaseModel):
    sha256: str
    runs: int
    missing: list[str]
