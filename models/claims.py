"""Who is working a case, and when it was claimed and decided: kept next to the queue row, not in the workflow,
so claiming never touches a case's history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from models.records import _timestamp


class CaseClaim(SQLModel, table=True):
    """One case of a user (workflow id and case number): its holder, if any, and its service-level times."""

    __tablename__ = "case_claim"

    workflow_id: str = Field(primary_key=True, max_length=120)
    case_number: int = Field(primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    # An actor as Principal.actor spells it ("user:12"); None once released.
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    # When anyone first took the case: kept through releases and reassignments, it is the time to pick-up.
    first_claimed_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    # When a decision or dismissal was first accepted.
    decided_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class ClaimAction(StrEnum):
    CLAIM = "claim"
    RELEASE = "release"
    REASSIGN = "reassign"


class ClaimEvent(SQLModel, table=True):
    """Every claim, release and reassignment, against the person who did it."""

    __tablename__ = "claim_event"

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    workflow_id: str = Field(index=True, max_length=120)
    case_number: int
    action: str = Field(max_length=20)
    actor: str = Field(max_length=200)
    # Who holds the case afterwards (None after a release).
    holder: str | None = Field(default=None, max_length=200)
    at: datetime = Field(sa_column=_timestamp())
