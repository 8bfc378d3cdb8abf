"""The other ways in: screening by banks and classifier, user reports, and a reviewer's escalation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.deps import AppSettings, NcmecReviewer, Platform, Registry, Temporal
from api.ownership import OwnedScreeningRef
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.routers.content import UPLOAD_OPENAPI, ContentByUrl, ContentMetadata, Upload, content_item
from models.case import EnqueueReason, MediaSource
from models.routing import ClassifierThresholds
from models.screening import ScreeningOutcome, ScreeningStart
from tipline.intake import enqueue_content
from tipline.registry import RefRegistry
from tipline.settings import Settings
from workflows.screening import ScreeningWorkflow

router = APIRouter(tags=["intake"], responses=PROBLEM_RESPONSES)


class ScreeningAccepted(BaseModel):
    screening_ref: str = Field(description="Follow it at GET /v1/screenings/{screening_ref}")


class UserReportIn(ContentByUrl):
    reporter_id: str = Field(min_length=1, max_length=200, description="The platform's id of the reporting user")
    reason: str = Field(min_length=1, max_length=500, description="The reason the reporter chose")
    csam: bool = Field(description="The platform classed the reason as child sexual abuse material")


class UserReportAccepted(BaseModel):
    route: Literal["ncmec", "screening"]
    case_ref: str | None = None
    screening_ref: str | None = None


class EscalationIn(ContentByUrl):
    reason: str | None = Field(default=None, max_length=3000)


class EscalationAccepted(BaseModel):
    case_ref: str


@router.post("/v1/screenings", status_code=status.HTTP_202_ACCEPTED, response_model=ScreeningAccepted,
             summary="Screen an item: a bank match or a high classifier priority puts it in the NCMEC queue, "
                     "a middle priority in triage")
async def screen(body: ContentByUrl, principal: Platform, temporal: Temporal, registry: Registry,
                 settings: AppSettings) -> ScreeningAccepted:
    media = MediaSource(url=body.media_url)
    return ScreeningAccepted(
        screening_ref=await _start_screening(temporal, registry, settings, principal.org_id, body, media))


@router.post("/v1/screenings/upload", status_code=status.HTTP_202_ACCEPTED, response_model=ScreeningAccepted,
             summary="Screen an item sent with its media bytes (multipart, the fields of /v1/content/upload)",
             openapi_extra=UPLOAD_OPENAPI)
async def screen_upload(principal: Platform, temporal: Temporal, registry: Registry, settings: AppSettings,
                        upload: Upload) -> ScreeningAccepted:
    media = MediaSource(evidence=upload.evidence)
    return ScreeningAccepted(
        screening_ref=await _start_screening(temporal, registry, settings, principal.org_id, upload.metadata, media))


@router.get("/v1/screenings/{screening_ref}", response_model=ScreeningOutcome | None,
            summary="Where a screened item went (null while it is being screened)")
async def screening_outcome(screening_ref: OwnedScreeningRef, temporal: Temporal) -> ScreeningOutcome | None:
    try:
        return await temporal.get_workflow_handle(screening_ref).query(ScreeningWorkflow.result)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:  # recorded, but its start never reached Temporal
            raise ProblemError(404, "No such screening") from None
        raise


@router.post("/v1/user-reports", status_code=status.HTTP_202_ACCEPTED, response_model=UserReportAccepted,
             summary="A user's report: with a CSAM reason it goes straight to the NCMEC queue, otherwise to screening")
async def user_report(body: UserReportIn, principal: Platform, temporal: Temporal, registry: Registry,
                      settings: AppSettings) -> UserReportAccepted:
    if not body.csam:
        screening_ref = await _start_screening(temporal, registry, settings, principal.org_id, body,
                                               MediaSource(url=body.media_url))
        return UserReportAccepted(route="screening", screening_ref=screening_ref)
    reason = EnqueueReason(kind="user_report", detail=body.reason, by=body.reporter_id, at=datetime.now(UTC))
    item = content_item(principal.org_id, body, MediaSource(url=body.media_url), reason)
    return UserReportAccepted(route="ncmec", case_ref=await enqueue_content(temporal, registry, settings, item))


@router.post("/v1/escalations", status_code=status.HTTP_202_ACCEPTED, response_model=EscalationAccepted,
             summary="A reviewer with NCMEC access puts any item in the NCMEC queue")
async def escalate(body: EscalationIn, principal: NcmecReviewer, temporal: Temporal, registry: Registry,
                   settings: AppSettings) -> EscalationAccepted:
    reason = EnqueueReason(kind="manual_escalation", detail=body.reason, by=principal.actor, at=datetime.now(UTC))
    item = content_item(principal.org_id, body, MediaSource(url=body.media_url), reason)
    return EscalationAccepted(case_ref=await enqueue_content(temporal, registry, settings, item))


async def _start_screening(temporal: Temporal, registry: RefRegistry, settings: Settings, org_id: str,
                           body: ContentMetadata, media: MediaSource) -> str:
    classifier = settings.orgs.get(org_id).classifier
    start = ScreeningStart(
        item=content_item(org_id, body, media),
        thresholds=ClassifierThresholds(high_precision=classifier.high_precision, high_recall=classifier.high_recall),
    )
    # Recorded as the org's before the screening exists, so it is never reachable without a recorded owner.
    workflow_id = await run_in_threadpool(registry.screening_ref_for, org_id, body.content_id)
    # A repeated request finds the screening already under way instead of starting another.
    await temporal.start_workflow(ScreeningWorkflow.run, start, id=workflow_id, task_queue=settings.task_queue,
                                  id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                                  static_summary=f"Screening · org {org_id}")
    return workflow_id
