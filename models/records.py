"""Database tables. The schema is changed only by Alembic migrations (``tipline/migrations``)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, DateTime, Text, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.roles import Role as Role  # stored here; defined apart for the command line


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, SQLite included (it stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _timestamp(*, nullable: bool = False, index: bool = False) -> Column:
    return Column(UtcDateTime(), nullable=nullable, index=index)


NCMEC_ROLES = frozenset({Role.ADMIN, Role.MODERATOR_MANAGER, Role.CHILD_SAFETY_MODERATOR})


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    role: str = Field(max_length=40)
    # Only a hash is stored: a leaked database does not leak working keys.
    key_hash: str = Field(unique=True, max_length=64)
    label: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    revoked_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class CaseSummary(SQLModel, table=True):
    """The review queue's view of a case, kept current by the case workflow."""

    __tablename__ = "case_summary"

    workflow_id: str = Field(primary_key=True, max_length=120)
    case_number: int = Field(primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    status: str = Field(index=True, max_length=40)
    urgent: bool = False
    urgency_level: str = Field(default="normal", max_length=20, sa_column_kwargs={"server_default": "normal"})
    urgency_score: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    review_deadline: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    escalated_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    media_count: int = 0
    ncmec_report_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    ncmec_deadline: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    opened_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())


class ClosedCase(SQLModel, table=True):
    """A closed case (filed or dismissed) as the user's workflow last held it, so any of them stays readable by its
    number; the workflow itself keeps only the latest. Written by ``publish_case_summary`` when the update carries
    the case."""

    __tablename__ = "closed_case"

    workflow_id: str = Field(primary_key=True, max_length=120)
    case_number: int = Field(primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    status: str = Field(max_length=40)
    closed_at: datetime = Field(sa_column=_timestamp())
    state_json: str = Field(sa_column=Column(Text, nullable=False))


class ReportStatus(StrEnum):
    OPEN = "open"
    FINISHED = "finished"
    RETRACTED = "retracted"
    EXPIRED = "expired"
    FAILED = "failed"


class FiledReport(SQLModel, table=True):
    """A CyberTip as sent to NCMEC: written the moment ``/submit`` answers, completed by ``/finish``.

    One row per filing attempt of a case: the workflow numbers its attempts, and the database refuses a second
    row for the same attempt, so two submits racing for one attempt cannot both become the case's report.
    """

    __tablename__ = "filed_report"
    __table_args__ = (UniqueConstraint("ncmec_environment", "ncmec_report_id"),
                      UniqueConstraint("workflow_id", "case_number", "attempt", name="uq_filed_report_attempt"))

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    workflow_id: str = Field(index=True, max_length=120)
    case_number: int
    attempt: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    ncmec_environment: str = Field(max_length=20)
    ncmec_report_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(index=True, max_length=20)
    report_xml: str = Field(sa_column=Column(Text, nullable=False))
    finish_receipt_xml: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    submitted_by: str = Field(max_length=200)
    # What was sent in escalateToHighPriority, what Tipline had suggested, and what the reviewer did with it.
    escalation_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    urgency_suggestion: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    urgency_outcome: str | None = Field(default=None, max_length=20)
    opened_at: datetime = Field(sa_column=_timestamp())
    finished_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    failure_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class FiledFile(SQLModel, table=True):
    __tablename__ = "filed_file"
    __table_args__ = (UniqueConstraint("report_pk", "media_id"),)

    id: int | None = Field(default=None, primary_key=True)
    report_pk: int = Field(foreign_key="filed_report.id", index=True)
    media_id: str = Field(max_length=200)
    evidence_sha256: str = Field(max_length=64)
    ncmec_file_id: str = Field(max_length=64)
    md5: str = Field(max_length=32)
    file_relevance: str = Field(default="Reported", max_length=40)
    file_details_xml: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    uploaded_at: datetime = Field(sa_column=_timestamp())


class UrgencyAssessmentRecord(SQLModel, table=True):
    """A case's urgency each time it changed, as its workflow published it: the timeline's record of every
    assessment (a reassessment mid-run leaves no payload of its own in the history). Rule ids, rule texts and
    evidence ids only: nothing the platform or a reviewer wrote."""

    __tablename__ = "urgency_assessment"

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True, max_length=120)
    case_number: int
    org_id: str = Field(max_length=40)
    assessed_at: datetime = Field(sa_column=_timestamp())
    level: str = Field(max_length=20)
    score: int
    # [{"rule_id", "weight", "text", "evidence"}]
    reasons_json: str = Field(sa_column=Column(Text, nullable=False))


class MediaView(SQLModel, table=True):
    """Every time a person looks at a media item: who, when, which."""

    __tablename__ = "media_view"

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    # Exactly one of the two: the signed-in person, or the API key of a script.
    api_key_id: int | None = None
    user_id: int | None = Field(default=None, index=True)
    role: str = Field(max_length=40)
    workflow_id: str = Field(max_length=120)
    media_id: str = Field(max_length=200)
    viewed_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class TriageItem(SQLModel, table=True):
    """Items the classifier flagged below the org's high-precision threshold: a reviewer escalates or dismisses."""

    __tablename__ = "triage_item"

    screening_id: str = Field(primary_key=True, max_length=120)
    org_id: str = Field(index=True, max_length=40)
    creator_id: str = Field(max_length=200)
    content_id: str = Field(max_length=200)
    evidence_sha256: str | None = Field(default=None, max_length=64)
    content_type: str | None = Field(default=None, max_length=200)
    classifier_priority: str = Field(max_length=20)
    # Set when a step of the screening gave up: the item waits here for a person rather than being dropped.
    screening_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(index=True, max_length=20)
    created_at: datetime = Field(sa_column=_timestamp())
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    case_ref: str | None = Field(default=None, max_length=120)


class SeenSignedMessage(SQLModel, table=True):
    """Ids of signed messages already accepted, until they would be refused as stale anyway: shared by every
    process, so a captured message is used at most once, across restarts and workers."""

    __tablename__ = "seen_signed_message"
    __table_args__ = (UniqueConstraint("org_id", "message_id", name="uq_seen_signed_message"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(max_length=40)
    message_id: str = Field(max_length=100)
    expires_at: datetime = Field(sa_column=_timestamp(index=True))


class RefKind(StrEnum):
    CASE = "case"
    SCREENING = "screening"


class IssuedRef(SQLModel, table=True):
    """Every workflow id Tipline hands out and later gets back from outside, with the org it was issued to.

    Ownership is read from here, never from the id's spelling. For cases, ``subject_key`` (a keyed MAC of org and
    user) says which workflow a user's content goes to: a user whose case predates keyed ids keeps their old id.
    """

    __tablename__ = "issued_ref"
    __table_args__ = (UniqueConstraint("kind", "org_id", "subject_key", name="uq_issued_ref_subject"),)

    ref: str = Field(primary_key=True, max_length=120)
    kind: str = Field(max_length=20)
    org_id: str = Field(index=True, max_length=40)
    subject_key: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
