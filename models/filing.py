"""Inputs and results of the case workflow's activities: ids, references and metadata only."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.case import (
    CaseState,
    CaseStatus,
    ConversationThread,
    EvidenceRef,
    FilingPolicy,
    MediaDecision,
    MediaItem,
    MediaSource,
    ReviewDecision,
)
from models.platform_metadata import UserMetadata
from models.urgency import UrgencyAssessment


class UserHistory(BaseModel):
    """What earlier cases of the same user left behind, read when a fresh case run starts."""

    case_number: int
    prior_report_ids: list[int] = Field(default_factory=list)


class PreserveMediaInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    workflow_id: str
    media_id: str
    source: MediaSource


class PreservedMedia(BaseModel):
    evidence: EvidenceRef | None = None
    error: str | None = None


class OpenReportInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    workflow_id: str
    case_number: int
    user_id: str
    decision: ReviewDecision
    incident_at: datetime = Field(description="When the earliest reported item was uploaded or received")
    urgency_suggestion: str | None = None
    user_metadata: UserMetadata | None = None
    location_urls: list[str] = Field(default_factory=list, description="Where the reported files were")
    prior_report_ids: list[int] = Field(default_factory=list)
    attempt: int = Field(default=1, ge=1, description="Which filing attempt of the case this is: a refile or a "
                                                      "re-decision opens a new one, a retried activity the same")


class OpenedReport(BaseModel):
    environment: str
    report_id: int
    opened_at: datetime


class UploadFileInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    report_id: int
    media_id: str
    evidence: EvidenceRef
    file_name: str


class UploadedFile(BaseModel):
    file_id: str
    md5: str
    uploaded_at: datetime


class FileDetailsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    report_id: int
    file_id: str
    media: MediaItem
    decision: MediaDecision


class FileDetailsSent(BaseModel):
    sent_at: datetime


class FileToSend(BaseModel):
    """One reported item of a batch: uploaded (unless ``file_id`` says it already is) and described."""

    model_config = ConfigDict(frozen=True)

    media: MediaItem
    decision: MediaDecision
    file_name: str
    file_id: str | None = Field(default=None, description="NCMEC's id when an earlier batch uploaded it")


class SendFilesInput(BaseModel):
    """A batch of a report's files, sent in one activity: a Temporal round trip per batch, not two per file."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    report_id: int
    files: list[FileToSend]
    concurrency: int = Field(default=4, ge=1, le=32)


class SentFile(BaseModel):
    media_id: str
    file_id: str
    md5: str


class SentFiles(BaseModel):
    files: list[SentFile]
    last_modified_at: datetime


class FinishReportInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    report_id: int
    expected_file_ids: list[str]


class FinishedReport(BaseModel):
    finished_at: datetime
    file_ids: list[str]


class CaseSummaryUpdate(BaseModel):
    """The queue row for a case; the workflow sends it whenever the case changes."""

    workflow_id: str
    case_number: int
    org_id: str
    status: CaseStatus
    urgent: bool
    urgency_level: str
    urgency_score: int
    review_deadline: datetime | None
    escalated_at: datetime | None
    media_count: int
    ncmec_report_id: int | None
    ncmec_deadline: datetime | None
    opened_at: datetime
    updated_at: datetime
    # The whole case, sent when it closes (filed or dismissed): kept as its closed-case record (models.records).
    case: CaseState | None = None
    # The assessment behind urgency_level and urgency_score: each change is kept for the timeline.
    urgency: UrgencyAssessment | None = None


class AbandonReportInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    report_id: int
    reason: str


class AbandonedReport(BaseModel):
    """What NCMEC said when asked to retract: it was retracted now, was already gone, or was in fact finished."""

    outcome: Literal["retracted", "gone", "finished"]


class EscalationNotice(BaseModel):
    """Sent to the org's escalation webhook when a case waits past its review deadline. Ids only."""

    org_id: str
    case_ref: str
    case_number: int
    urgency_level: str
    review_deadline: datetime
    escalated_at: datetime


class EnrichUserInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    case_ref: str
    user_id: str


class EnrichedUser(BaseModel):
    """The platform's answer; None when the org has no enrichment callback."""

    user: UserMetadata | None = None


class UploadConversationInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    report_id: int
    thread: ConversationThread


class UploadedConversation(BaseModel):
    file_id: str
    evidence: EvidenceRef
    sent_at: datetime


class ConversationDetailsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    report_id: int
    file_id: str
    thread_id: str
    evidence: EvidenceRef


class AnalyzeMediaInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    evidence: EvidenceRef


class ReportedMedia(BaseModel):
    media_id: str
    evidence: EvidenceRef
    classification: str | None = None


class BankReportedMediaInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    report_id: int
    items: list[ReportedMedia]


class ListUserMediaInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    case_ref: str
    user_id: str
    cursor: str | None = None


class AssociatedMediaItem(BaseModel):
    """One item the platform has for the user, as its media-list callback describes it."""

    content_id: str = Field(min_length=1, max_length=200)
    media_url: str = Field(pattern=r"^https?://\S+$", max_length=2083)
    file_name: str | None = Field(default=None, max_length=2056)
    content_type: str | None = Field(default=None, max_length=200)
    uploaded_at: datetime | None = None


class UserMediaPage(BaseModel):
    items: list[AssociatedMediaItem] = Field(default_factory=list, max_length=1000)
    next_cursor: str | None = None


class FilingStart(BaseModel):
    """Input of one filing attempt (a child workflow): the decided case, with only the media it sends."""

    parent_workflow_id: str
    case: CaseState
    policy: FilingPolicy


class FilingReport(BaseModel):
    """A filing attempt tells the user's workflow where it is (progress) and how it ended (``ended``)."""

    case_number: int
    attempt: int
    case: CaseState
    ended: bool = False


def filing_workflow_id(parent_workflow_id: str, case_number: int, attempt: int) -> str:
    """One id per attempt at one case: a retried start never files twice, a new attempt never collides."""
    return f"{parent_workflow_id}/filing/{case_number}/{attempt}"


class PreserveMediaBatch(BaseModel):
    """Several items preserved in one activity: a case with thousands of items keeps its history short."""

    model_config = ConfigDict(frozen=True)

    items: list[PreserveMediaInput] = Field(max_length=100)


class AnalyzeMediaBatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: str
    items: list[EvidenceRef] = Field(max_length=100)
