"""Messages into and out of a case workflow, and the case state they build.

Everything here crosses Temporal as JSON: references and metadata only, never media bytes, never
credentials.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cybertipline.enums import FileAnnotation, IncidentType, IndustryClassification, ReportAnnotation
from models.conversation_csv import ConversationMessage
from models.platform_metadata import FileMetadata, IntendedRecipientInfo, UserMetadata, VictimInfo
from models.urgency import UrgencyAssessment, UrgencyLevel


class CaseStatus(StrEnum):
    AWAITING_REVIEW = "awaiting_review"
    FILING = "filing"
    NEEDS_ATTENTION = "needs_attention"
    FILED = "filed"
    DISMISSED = "dismissed"


OPEN_STATUSES = (CaseStatus.AWAITING_REVIEW, CaseStatus.FILING, CaseStatus.NEEDS_ATTENTION)


class EvidenceRef(BaseModel):
    """Where preserved bytes are, and what they hash to. The bytes stay in the evidence store."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    md5: str
    sha1: str
    size: int


class MediaSource(BaseModel):
    """Exactly one of: a URL the worker fetches, or bytes the API already preserved."""

    model_config = ConfigDict(frozen=True)

    url: str | None = None
    evidence: EvidenceRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MediaSource:
        if (self.url is None) == (self.evidence is None):
            raise ValueError("media needs exactly one of url or evidence")
        return self


class EnqueueReason(BaseModel):
    """Why an item is in the NCMEC queue. Issue-specific paths add their own kinds."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["platform_signal", "hash_match", "classifier", "user_report", "manual_escalation",
                  "associated_media"]
    detail: str | None = Field(default=None, description="Bank and distance, priority, report reason, reviewer")
    by: str | None = Field(default=None, description="Who: the reporting user's id, or the escalating reviewer")
    at: datetime | None = None


class PlatformIndicators(BaseModel):
    """What the platform knows that bears on urgency."""

    # A misspelt indicator must be refused, not dropped: a lost live_session_active is a lost urgent case.
    model_config = ConfigDict(frozen=True, extra="forbid")

    live_session_active: bool = Field(default=False, description="The user is in a live stream or call now")
    victim_age: int | None = Field(default=None, ge=0, le=150, description="Apparent or stated age of a victim")
    location_observed_at: datetime | None = Field(default=None, description="When the user's location was seen")


class BankMatchSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    bank_name: str
    hash_type: str
    distance: int
    external_id: str | None = None
    classification: str | None = None


class MediaAnalysis(BaseModel):
    """What hashing and matching found for one item; the hashes later go into fileDetails."""

    model_config = ConfigDict(frozen=True)

    pdq: str | None = None
    pdq_quality: int | None = None
    phash: str | None = None
    unhashable_reason: str | None = None
    matches: list[BankMatchSummary] = Field(default_factory=list)
    classifier_priority: str | None = None


class ContentItem(BaseModel):
    """One piece of content a platform sent: the ``add_content`` signal."""

    model_config = ConfigDict(frozen=True)

    content_id: str = Field(min_length=1, max_length=200)
    org_id: str
    user_id: str = Field(min_length=1, max_length=200)
    media: MediaSource
    file_name: str | None = Field(default=None, max_length=2056)
    content_type: str | None = None
    uploaded_at: datetime | None = None
    upload_ip: str | None = None
    location_url: str | None = None
    received_at: datetime
    reason: EnqueueReason = EnqueueReason(kind="platform_signal")
    report_text: str | None = Field(default=None, max_length=10000, description="A user report's text, if any")
    indicators: PlatformIndicators | None = None
    user: UserMetadata | None = None
    file: FileMetadata | None = None
    analysis: MediaAnalysis | None = Field(default=None, description="Set when screening already hashed it")


class ConversationThread(BaseModel):
    """Messages the platform sent as context for the case; filed as a CSV when the reviewer attaches them."""

    model_config = ConfigDict(frozen=True)

    thread_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")
    org_id: str
    user_id: str
    messages: list[ConversationMessage] = Field(min_length=1, max_length=1000)


class MediaItem(BaseModel):
    """A content item inside a case, with its preserved evidence once the worker has it."""

    media_id: str
    content: ContentItem
    evidence: EvidenceRef | None = None
    preservation_error: str | None = None
    reasons: list[EnqueueReason] = Field(default_factory=list)
    analysis: MediaAnalysis | None = None


class MediaDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    media_id: str
    reported: bool
    classification: IndustryClassification | None = None
    annotations: list[FileAnnotation] = Field(default_factory=list)
    # Sent as "Supplemental Reported" (a screenshot, context): uploaded, but not itself classified.
    supplemental: bool = False
    # Set by the API from the view log, never by the client: whether a person of the org looked at the item before
    # it was decided; None in histories recorded before views were counted (they were taken as viewed).
    viewed: bool | None = None

    @property
    def sent(self) -> bool:
        return self.reported or self.supplemental


def broken_reason(item: MediaItem) -> str | None:
    """Why an item cannot be judged as it is (never preserved, or its bytes could not be decoded and hashed)."""
    if item.preservation_error is not None:
        return f"not preserved: {item.preservation_error}"
    if item.analysis is not None and item.analysis.unhashable_reason is not None:
        return f"unhashable: {item.analysis.unhashable_reason}"
    return None


CASE_NUMBER_FIELD = Field(default=None, ge=1, description="The case the reviewer looked at; any other is refused")
# Set by the API, not the client: the case's settled items as it read them when the request came. Items of the case
# not among them (still being preserved or hashed then, or arrived since) go on to the user's next case.
MEDIA_SEEN_FIELD = Field(default=None, max_length=100_000)


class ReviewDecision(BaseModel):
    """What a reviewer decided. Checked against the case by ``decision_errors``."""

    model_config = ConfigDict(frozen=True)

    reviewer_id: str = Field(min_length=1)
    # None only in histories recorded before decisions named their case.
    case_number: int | None = CASE_NUMBER_FIELD
    incident_type: IncidentType | None = None
    media: list[MediaDecision] = Field(default_factory=list)
    report_annotations: list[ReportAnnotation] = Field(default_factory=list)
    escalate_to_high_priority: str | None = None
    additional_info: str | None = None
    victims: list[VictimInfo] = Field(default_factory=list)
    intended_recipients: list[IntendedRecipientInfo] = Field(default_factory=list)
    attach_conversations: list[str] = Field(default_factory=list, description="Thread ids filed as CSV files")
    # The suggested escalateToHighPriority text the reviewer was shown when deciding ("" = none was shown);
    # None when the client did not say. "Confirmed" means escalate_to_high_priority equals it.
    urgency_suggestion_shown: str | None = Field(default=None, max_length=3000)
    media_seen: list[str] | None = MEDIA_SEEN_FIELD
    # The reviewer chose a report with no file and no conversation: only the text (incident, people, notes).
    text_only: bool = False


class Dismissal(BaseModel):
    model_config = ConfigDict(frozen=True)

    reviewer_id: str = Field(min_length=1)
    case_number: int | None = CASE_NUMBER_FIELD
    reason: str = Field(min_length=1, max_length=3000)
    media_seen: list[str] | None = MEDIA_SEEN_FIELD


class RetryFiling(BaseModel):
    model_config = ConfigDict(frozen=True)

    reviewer_id: str = Field(min_length=1)
    case_number: int | None = CASE_NUMBER_FIELD


class SideEffectFailure(BaseModel):
    """A step around the case that failed (a webhook, banking, the queue row): shown, retried, never fatal."""

    # media_analysis: hashing and matching failed for a reason outside the items (database, store, worker).
    what: Literal["escalation_webhook", "bank_reported_media", "queue_row", "media_analysis"]
    reason: str
    first_failed_at: datetime
    last_failed_at: datetime
    attempts: int = 1
    retry_at: datetime | None = Field(default=None, description="When it is tried again; None once given up")
    resolved_at: datetime | None = None


class FiledFile(BaseModel):
    """Progress of one reported file at NCMEC: each field is a completed checkpoint."""

    media_id: str
    file_id: str
    md5: str
    details_sent: bool = False


class FilingPolicy(BaseModel):
    """How patient filing is. Set per deployment; tests shorten it so a killed worker is replaced quickly."""

    model_config = ConfigDict(frozen=True)

    call_timeout: timedelta = timedelta(minutes=2)
    upload_timeout: timedelta = timedelta(hours=2)
    upload_heartbeat_timeout: timedelta = timedelta(minutes=1)
    upload_concurrency: int = Field(default=4, ge=1, le=32)
    # Stop working on a report this long before NCMEC would delete it, and file afresh instead.
    deadline_margin: timedelta = timedelta(minutes=10)
    max_refiles: int = Field(default=3, ge=0)
    # How long to keep asking a platform whose enrichment callback fails before the case needs attention.
    enrichment_patience: timedelta = timedelta(hours=6)
    enrichment_retry_every: timedelta = timedelta(minutes=1)
    # A failed side effect (webhook, banking, queue row) is tried again this often, this many times.
    side_effect_retry_every: timedelta = timedelta(minutes=5)
    side_effect_retries: int = Field(default=12, ge=0)
    # Media whose analysis failed is analysed again this often (side_effect_retries times, then called unhashable).
    analysis_retry_every: timedelta = timedelta(minutes=1)
    # How many times a reviewer may send a case that needs attention back to filing.
    max_filing_attempts: int = Field(default=10, ge=1)


class FiledConversation(BaseModel):
    thread_id: str
    file_id: str
    evidence: EvidenceRef
    details_sent: bool = False


class FilingProgress(BaseModel):
    environment: str | None = None
    report_id: int | None = None
    opened_at: datetime | None = None
    last_modified_at: datetime | None = None
    files: list[FiledFile] = Field(default_factory=list)
    finished_at: datetime | None = None
    abandoned_report_ids: list[int] = Field(default_factory=list)
    conversations: list[FiledConversation] = Field(default_factory=list)

    def file_for(self, media_id: str) -> FiledFile | None:
        return next((f for f in self.files if f.media_id == media_id), None)


class ReviewPolicy(BaseModel):
    """How long a case may wait for a reviewer, by urgency, before Moderator Managers are alerted."""

    model_config = ConfigDict(frozen=True)

    urgent_within: timedelta = timedelta(hours=1)
    elevated_within: timedelta = timedelta(hours=8)
    normal_within: timedelta = timedelta(hours=48)

    def window(self, level: UrgencyLevel) -> timedelta:
        return {UrgencyLevel.URGENT: self.urgent_within, UrgencyLevel.ELEVATED: self.elevated_within,
                UrgencyLevel.NORMAL: self.normal_within}[level]


class CaseState(BaseModel):
    """The whole case, as the ``case`` query returns it."""

    workflow_id: str
    case_number: int = 1
    org_id: str
    user_id: str
    status: CaseStatus = CaseStatus.AWAITING_REVIEW
    opened_at: datetime
    media: list[MediaItem] = Field(default_factory=list)
    user_metadata: UserMetadata | None = Field(default=None, description="All the platform said about the user")
    conversations: list[ConversationThread] = Field(default_factory=list)
    enriched: bool = False
    media_listed: bool = Field(default=False, description="The platform's list of the user's media was fetched")
    media_list_error: str | None = Field(default=None, description="Why the platform's media list is incomplete")
    waiting_reason: str | None = Field(default=None, description="Why filing is waiting, when it is")
    prior_report_ids: list[int] = Field(default_factory=list)
    decision: ReviewDecision | None = None
    dismissal: Dismissal | None = None
    filing: FilingProgress = Field(default_factory=FilingProgress)
    attention_reason: str | None = None
    urgency: UrgencyAssessment | None = None
    review_deadline: datetime | None = None
    escalated_at: datetime | None = None
    side_effect_failures: list[SideEffectFailure] = Field(default_factory=list)
    # Filing: which attempt (one child workflow each), and whether NCMEC refused for good (retry once fixed).
    filing_attempt: int = 0
    attention_permanent: bool = False
    retract_report: str | None = Field(default=None, description="Why the open report is withdrawn before filing")
    filing_running: bool = Field(default=False, description="A filing attempt (child workflow) is under way")
    reported_media_banked: bool = False

    @property
    def urgent(self) -> bool:
        return self.urgency is not None and self.urgency.level is UrgencyLevel.URGENT

    @property
    def case_id(self) -> str:
        return f"{self.workflow_id}/{self.case_number}"

    def media_item(self, media_id: str) -> MediaItem | None:
        return next((m for m in self.media if m.media_id == media_id), None)

    def conversation(self, thread_id: str) -> ConversationThread | None:
        return next((c for c in self.conversations if c.thread_id == thread_id), None)


class CaseStart(BaseModel):
    """Input of a case run: a fresh case, or the next case for a user whose last one was filed."""

    org_id: str
    user_id: str
    case_number: int = 1
    prior_report_ids: list[int] = Field(default_factory=list)
    carried_content: list[ContentItem] = Field(default_factory=list)
    carried_conversations: list[ConversationThread] = Field(default_factory=list)
    policy: FilingPolicy = FilingPolicy()
    review: ReviewPolicy = ReviewPolicy()
    state: CaseState | None = Field(default=None, description="The same case, continued as new")
    # The user's workflow continued as new: decided cases still filing (or needing attention), where the
    # platform's media list had got to, and side effects still to retry.
    decided_cases: list[CaseState] = Field(default_factory=list)
    last_closed: CaseState | None = None
    listing_media: bool = False
    media_cursor: str | None = None
    media_pages: int = 0
    # Continue as new at this many history events even if Temporal never suggests it (its hard limit: 51,200).
    history_event_limit: int = Field(default=20_000, ge=100, le=40_000)


class DecisionAccepted(BaseModel):
    case_id: str
    status: CaseStatus
