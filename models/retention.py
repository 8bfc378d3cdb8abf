"""Retention: legal holds, which evidence a user's cases preserved, and what is kept of a purged case.

The retention workflow's messages are in models.retention_messages."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Column, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.records import UtcDateTime, utcnow

# 18 U.S.C. §2703(f)(2): a preservation request holds records for 90 days, extended by 90 on a renewed request.
PRESERVATION_PERIOD = timedelta(days=90)


class HoldKind(StrEnum):
    LEGAL = "legal"  # until released by a Moderator Manager or Admin
    PRESERVATION = "preservation_2703f"  # a law-enforcement request: 90 days unless renewed


class LegalHold(SQLModel, table=True):
    """A hold on every case of one user's case ref: while one is in force nothing of theirs is purged."""

    __tablename__ = "legal_hold"

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    case_ref: str = Field(index=True, max_length=120)
    kind: str = Field(max_length=30)
    # Why, in the placer's words (a matter or request number): kept here, never in the audit log or Temporal.
    reason: str = Field(sa_column=Column(Text, nullable=False))
    placed_by: str = Field(max_length=80)
    placed_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    # Only preservation requests expire; a legal hold lasts until it is released.
    expires_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    renewals: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    released_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    released_by: str | None = Field(default=None, max_length=80)

    def in_force(self, now: datetime) -> bool:
        return self.released_at is None and (self.expires_at is None or now < self.expires_at)


class EvidenceLink(SQLModel, table=True):
    """An evidence object a user's case preserved: the store is content-addressed, so one object may serve
    several users' cases, and it is deleted only when no case that still keeps it links it."""

    __tablename__ = "evidence_link"
    __table_args__ = (UniqueConstraint("case_ref", "sha256", name="uq_evidence_link"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    case_ref: str = Field(index=True, max_length=120)
    sha256: str = Field(index=True, max_length=64)
    linked_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class CaseTombstone(SQLModel, table=True):
    """What remains of a purged case: which objects it held (by digest), which reports it made, and when."""

    __tablename__ = "case_tombstone"
    __table_args__ = (UniqueConstraint("case_ref", "case_number", name="uq_case_tombstone"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    case_ref: str = Field(index=True, max_length=120)
    case_number: int
    status: str = Field(max_length=20)
    # JSON lists: the NCMEC report ids, and the SHA-256 of every evidence object the case held.
    ncmec_report_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    evidence_sha256: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    # JSON list: the SHA-256 of each history export the purge deleted (models.history_export).
    history_sha256: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    opened_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    # The report's date for a filed case, the dismissal's for a dismissed one: retention runs from here.
    closed_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    due_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    purged_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    audit_seq: int | None = None
