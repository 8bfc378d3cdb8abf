"""Exported case histories: every run's Temporal history of a closed case, kept in the evidence store (encrypted
as evidence is) after Temporal's own retention forgets them. The workflow payloads carry references only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Column, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.records import UtcDateTime, utcnow

EXPORT_FORMAT = "tipline-history-export/1"


class HistoryExport(SQLModel, table=True):
    """One closed case's exported histories: the evidence object holding them, and its digest.

    The purge deletes the object and keeps this row (digest, dates) as part of the case's tombstone."""

    __tablename__ = "history_export"
    __table_args__ = (UniqueConstraint("case_ref", "case_number", name="uq_history_export_case"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    case_ref: str = Field(index=True, max_length=120)
    case_number: int
    # SHA-256 of the export's plaintext: its address in the evidence store, and what a reader checks it against.
    sha256: str = Field(max_length=64)
    size: int = Field(sa_column=Column(Integer, nullable=False))
    runs: int = Field(sa_column=Column(Integer, nullable=False))
    exported_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    purged_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))


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
