"""What the review page needs about the person using it: their wellness settings (how media is shown to them)
and the words NCMEC accepts (incident types, classifications, annotations), so that the page never hard-codes them."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import DbSession, NcmecReviewer, Principal
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.requests import RequestBody
from cybertipline.enums import FileAnnotation, IncidentType, IndustryClassification, ReportAnnotation
from models.accounts import ReviewerWellness
from models.records import utcnow

router = APIRouter(tags=["reviewer"], responses=PROBLEM_RESPONSES)


class WellnessSettings(RequestBody):
    """How media is shown to one reviewer. Media always starts hidden; these say how hidden, and what un-hides it."""

    blur_px: int = Field(default=24, ge=4, le=64, description="Blur of hidden media, in CSS pixels")
    greyscale: bool = Field(default=True, description="Hidden media is also shown without colour")
    reveal_on_hover: bool = Field(default=False, description="Pointing at an item reveals it (else: click or v)")
    reblur_on_leave: bool = Field(default=True, description="An item is hidden again when the reviewer moves on")
    video_muted: bool = Field(default=True, description="Videos start without sound")
    video_paused: bool = Field(default=True, description="Videos do not play until started")


class WellnessOut(WellnessSettings):
    updated_at: datetime | None = Field(description="None: the defaults, never changed")


class Vocabulary(BaseModel):
    incident_types: list[str]
    classifications: list[str]
    file_annotations: list[str]
    report_annotations: list[str]


def _account_id(principal: Principal) -> int:
    if principal.user_id is None:
        raise ProblemError(409, "Wellness settings belong to a person", "sign in as a reviewer; an API key has none")
    return principal.user_id


@router.get("/v1/me/wellness", response_model=WellnessOut, summary="The signed-in reviewer's wellness settings")
def get_wellness(principal: NcmecReviewer, session: DbSession) -> WellnessOut:
    row = session.get(ReviewerWellness, _account_id(principal))
    if row is None:
        return WellnessOut(updated_at=None)
    return WellnessOut.model_validate(row.model_dump(exclude={"account_id"}))


@router.put("/v1/me/wellness", response_model=WellnessOut, summary="Keep the reviewer's wellness settings")
def put_wellness(body: WellnessSettings, principal: NcmecReviewer, session: DbSession) -> WellnessOut:
    account_id = _account_id(principal)
    row = session.get(ReviewerWellness, account_id) or ReviewerWellness(account_id=account_id)
    for name, value in body.model_dump().items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    return WellnessOut.model_validate(row.model_dump(exclude={"account_id"}))


@router.get("/v1/review/vocabulary", response_model=Vocabulary, summary="NCMEC's words the review page offers")
def vocabulary(principal: NcmecReviewer) -> Vocabulary:
    return Vocabulary(incident_types=[str(v) for v in IncidentType],
                      classifications=[str(v) for v in IndustryClassification],
                      file_annotations=[str(v) for v in FileAnnotation],
                      report_annotations=[str(v) for v in ReportAnnotation])
