"""What the review page shows as the suggested urgency while the reviewer classifies: the case's signals with
the incident type, annotations and notes the reviewer has chosen so far, so the text they send already holds
every reason their own choices add (and sending it unchanged is recorded as confirmed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import NcmecReviewer, Temporal
from api.ownership import OwnedCaseRef
from api.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from api.routers.cases import _case_state
from cybertipline.enums import FileAnnotation, IncidentType, ReportAnnotation
from models.case_urgency import case_urgency_signals
from models.urgency import UrgencyAssessment, assess_urgency

router = APIRouter(prefix="/v1/cases", tags=["review"], responses=PROBLEM_RESPONSES)


class MediaChoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_id: str
    annotations: list[FileAnnotation] = Field(default=[], description="Only those of media to be reported")


class UrgencyPreviewIn(BaseModel):
    """The reviewer's choices so far (a subset of the decision)."""

    model_config = ConfigDict(extra="forbid")

    incident_type: IncidentType | None = None
    media: list[MediaChoiceIn] = []
    report_annotations: list[ReportAnnotation] = []
    additional_info: str | None = Field(default=None, max_length=3000)


@router.post("/{case_ref}/urgency-preview", response_model=UrgencyAssessment,
             summary="The suggested urgency with the reviewer's choices applied; nothing is recorded")
async def preview_urgency(case_ref: OwnedCaseRef, body: UrgencyPreviewIn, principal: NcmecReviewer,
                          temporal: Temporal,
                          case_number: Annotated[int | None, Query(ge=1, description="The case being reviewed; "
                                                                   "default: the oldest still open")] = None
                          ) -> UrgencyAssessment:
    state = await _case_state(temporal, principal, case_ref, case_number)
    known = {media.media_id for media in state.media}
    unknown = [FieldProblem(field=f"body.media.{index}.media_id", message=f"no media {choice.media_id!r} in this case")
               for index, choice in enumerate(body.media) if choice.media_id not in known]
    if unknown:
        raise ProblemError(422, "The preview names media the case does not hold", errors=unknown)
    return assess_urgency(case_urgency_signals(state, datetime.now(UTC), body))
