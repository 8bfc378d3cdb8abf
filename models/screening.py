"""Messages of the screening workflow: one content item checked against banks and the classifier."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.case import ContentItem, EnqueueReason, EvidenceRef, MediaAnalysis
from models.routing import ClassifierThresholds, Route


def detection_reason(analysis: MediaAnalysis, at: datetime) -> EnqueueReason:
    """Why detection put an item in a case: its closest bank match, else the classifier's priority."""
    if analysis.matches:
        best = min(analysis.matches, key=lambda m: m.distance)
        detail = f"bank {best.bank_name}: {best.hash_type} distance {best.distance}"
        return EnqueueReason(kind="hash_match", detail=detail, at=at)
    return EnqueueReason(kind="classifier", detail=analysis.classifier_priority, at=at)


class ScreeningStart(BaseModel):
    model_config = ConfigDict(frozen=True)

    item: ContentItem
    thresholds: ClassifierThresholds = ClassifierThresholds()


class TriageDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: Literal["escalate", "dismiss"]
    reviewer_id: str
    reason: str | None = Field(default=None, max_length=3000)


class TriageRecord(BaseModel):
    """A triage queue row: enough for a reviewer to find and look at the item, ids only."""

    screening_id: str
    org_id: str
    creator_id: str
    content_id: str
    evidence: EvidenceRef | None = Field(default=None, description="None when the item could not be preserved")
    content_type: str | None
    classifier_priority: str
    created_at: datetime
    screening_error: str | None = Field(default=None, description="Why the item was not screened automatically")


class TriageClosed(BaseModel):
    screening_id: str
    status: Literal["escalated", "dismissed"]
    decided_by: str
    reason: str | None
    case_ref: str | None = None


class ScreeningOutcome(BaseModel):
    route: Route
    analysis: MediaAnalysis | None = None
    case_ref: str | None = None
    triage: Literal["escalated", "dismissed"] | None = None
    error: str | None = None

