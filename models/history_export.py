"""Exported case histories: every run's Temporal history of a closed case, kept in the evidence store (encrypted
as evidence is) after Temporal's own retention forgets them. Its messages (references only) are in
models.history_export_messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.records import UtcDateTime, utcnow


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
