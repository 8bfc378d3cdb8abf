"""Platforms send content: each item joins its creator's open case, or opens one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, Json, ValidationError
from temporalio.client import Client

from api.deps import Analyzer, AppSettings, Platform, Registry, Store, Temporal
from api.problems import PROBLEM_RESPONSES, BodyTooLarge
from api.requests import CONTENT_TYPE_PATTERN, PRINTABLE_PATTERN, RequestBody
from api.uploads import ReceivedUpload, UploadLimits, receive_upload
from models.case import (
    ContentItem,
    ConversationThread,
    EnqueueReason,
    EvidenceRef,
    MediaSource,
    PlatformIndicators,
)
from models.conversation_csv import ConversationMessage
from models.platform_metadata import FileMetadata, IpAddress, UserMetadata
from models.screening import detection_reason
from tipline.intake import enqueue_batch, enqueue_content, signal_case
from tipline.logging import get_logger
from tipline.registry import RefRegistry
from tipline.settings import Settings

router = APIRouter(prefix="/v1/content", tags=["platform"], responses=PROBLEM_RESPONSES)
log = get_logger(__name__)


class ContentMetadata(RequestBody):
    content_id: str = Field(min_length=1, max_length=200, description="The platform's id for this item")
    creator_id: str = Field(min_length=1, max_length=200, description="The platform's id of the user who posted it")
    file_name: str | None = Field(default=None, max_length=2056, pattern=PRINTABLE_PATTERN)
    content_type: str | None = Field(default=None, max_length=200, pattern=CONTENT_TYPE_PATTERN,
                                     description="The platform's MIME type for the item, e.g. image/jpeg")
    uploaded_at: datetime | None = None
    upload_ip: IpAddress | None = None
    location_url: str | None = Field(default=None, max_length=2083, pattern=r"^\S+$")
    report_text: str | None = Field(default=None, max_length=10000,
                                    description="The text of a user report about this item, if one was made")
    indicators: PlatformIndicators | None = Field(default=None, description="What bears on urgency")
    user: UserMetadata | None = Field(default=None, description="What the platform knows about the creator")
    file: FileMetadata | None = Field(default=None, description="More about this file: EXIF, devices, …")


class ContentByUrl(ContentMetadata):
    media_url: str = Field(pattern=r"^https?://\S+$", max_length=2083,
                           description="Where Tipline fetches the media; it is preserved on arrival")


class ContentAccepted(BaseModel):
    case_ref: str = Field(description="The user's case; reviewers open it at /v1/cases/{case_ref}")
    content_id: str


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ContentAccepted,
             summary="Send a content item whose media Tipline fetches from a URL")
async def send_content(body: ContentByUrl, principal: Platform, temporal: Temporal, registry: Registry,
                       settings: AppSettings) -> ContentAccepted:
    return await _enqueue(temporal, registry, settings, principal.org_id, body, MediaSource(url=body.media_url))


@dataclass(frozen=True)
class UploadedContent:
    metadata: ContentMetadata
    evidence: EvidenceRef


class UploadForm(RequestBody):
    """The form fields of a multipart upload besides ``file``: those of ContentMetadata, nested ones as JSON."""

    content_id: str = Field(min_length=1, max_length=200)
    creator_id: str = Field(min_length=1, max_length=200)
    uploaded_at: datetime | None = None
    upload_ip: str | None = Field(default=None, max_length=64)
    location_url: str | None = Field(default=None, max_length=2083)
    report_text: str | None = Field(default=None, max_length=10000)
    indicators: Json[PlatformIndicators] | None = None
    user: Json[UserMetadata] | None = None
    file_metadata: Json[FileMetadata] | None = None


def _upload_openapi() -> dict[str, Any]:
    """The multipart body as OpenAPI describes it (FastAPI cannot: the endpoint reads the stream itself)."""
    json_fields = {"indicators": PlatformIndicators, "user": UserMetadata, "file_metadata": FileMetadata}
    properties: dict[str, Any] = {"file": {
        "type": "string", "format": "binary",
        "description": "The media bytes, not empty; the part's filename and Content-Type are kept as the "
                       "platform's file name and content type"}}
    for name in UploadForm.model_fields:
        properties[name] = {"type": "string"}
        if name in json_fields:
            properties[name]["description"] = f"{json_fields[name].__name__} as JSON"
    schema = {"type": "object", "additionalProperties": False, "required": ["file", "content_id", "creator_id"],
              "properties": properties}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}},
            "responses": {"400": {"description": "The body ended early (the client went away)", "content": problem},
                          "415": {"description": "Not multipart/form-data", "content": problem}}}


UPLOAD_OPENAPI = _upload_openapi()


def _upload_metadata(upload: ReceivedUpload) -> ContentMetadata:
    try:
        form = UploadForm.model_validate(upload.fields)
        return ContentMetadata(
            content_id=form.content_id, creator_id=form.creator_id, file_name=upload.file_name,
            content_type=upload.file_content_type, uploaded_at=form.uploaded_at, upload_ip=form.upload_ip,
            location_url=form.location_url, report_text=form.report_text, indicators=form.indicators,
            user=form.user, file=form.file_metadata,
        )
    except ValidationError as error:
        # The file part's name and type are checked as ContentMetadata's file_name and content_type.
        part_headers = {"file_name": ("file", "filename"), "content_type": ("file", "content_type")}
        raise RequestValidationError([
            {**e, "loc": ("body", *part_headers.get(str(e["loc"][0]), e["loc"][:1]), *e["loc"][1:])}
            for e in error.errors()
        ]) from None


async def uploaded_content(request: Request, store: Store, settings: AppSettings) -> UploadedContent:
    """A multipart item (the fields of ContentMetadata, and the file), its media preserved before anything else."""
    limits = UploadLimits(max_file_bytes=settings.max_upload_bytes, max_fields_bytes=settings.max_json_body_bytes)
    # Preserved before a workflow hears of it: workflows get a reference, never the bytes.
    metadata, evidence = await receive_upload(request, store, file_field="file",
                                              field_names=frozenset(UploadForm.model_fields), limits=limits,
                                              validate=_upload_metadata)
    return UploadedContent(metadata, evidence)


# Declared after the principal in each endpoint, so a request that fails authentication stores nothing.
Upload = Annotated[UploadedContent, Depends(uploaded_content)]


@router.post("/upload", status_code=status.HTTP_202_ACCEPTED, response_model=ContentAccepted,
             summary="Send a content item with its media bytes", openapi_extra=UPLOAD_OPENAPI)
async def upload_content(principal: Platform, temporal: Temporal, registry: Registry, settings: AppSettings,
                         analyzer: Analyzer, upload: Upload) -> ContentAccepted:
    org_id, metadata = principal.org_id, upload.metadata
    case_ref = await asyncio.to_thread(registry.case_ref_for, org_id, metadata.creator_id)
    # Hashed and matched here, where the bytes are, when the API can: the case then needs no detection worker.
    analysis = await analyzer.analyze(org_id, case_ref, upload.evidence)
    reason = detection_reason(analysis, datetime.now(UTC)) if analysis is not None and analysis.matches else None
    item = content_item(org_id, metadata, MediaSource(evidence=upload.evidence), reason)
    if analysis is not None:
        item = item.model_copy(update={"analysis": analysis})
    await enqueue_content(temporal, registry, settings, item, case_ref=case_ref)
    return ContentAccepted(case_ref=case_ref, content_id=metadata.content_id)


def content_item(org_id: str, metadata: ContentMetadata, media: MediaSource,
                 reason: EnqueueReason | None = None) -> ContentItem:
    return ContentItem(
        content_id=metadata.content_id, org_id=org_id, user_id=metadata.creator_id, media=media,
        file_name=metadata.file_name, content_type=metadata.content_type, uploaded_at=metadata.uploaded_at,
        upload_ip=metadata.upload_ip, location_url=metadata.location_url, received_at=datetime.now(UTC),
        report_text=metadata.report_text, indicators=metadata.indicators, user=metadata.user, file=metadata.file,
        **({"reason": reason} if reason else {}),
    )


async def _enqueue(temporal: Client, registry: RefRegistry, settings: Settings, org_id: str, metadata: ContentMetadata,
                   media: MediaSource) -> ContentAccepted:
    item = content_item(org_id, metadata, media)
    return ContentAccepted(case_ref=await enqueue_content(temporal, registry, settings, item),
                           content_id=metadata.content_id)


class ContentBatch(RequestBody):
    items: list[ContentByUrl] = Field(min_length=1, max_length=500)


class BatchAccepted(BaseModel):
    accepted: list[ContentAccepted]


@router.post("/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchAccepted,
             summary="Send several content items fetched by URL; each joins its creator's case")
async def send_content_batch(body: ContentBatch, principal: Platform, temporal: Temporal, registry: Registry,
                             settings: AppSettings) -> BatchAccepted:
    for index, item in enumerate(body.items):
        # Each item becomes one case signal, which has to stay within what one item may be on its own.
        if len(item.model_dump_json()) > settings.max_json_body_bytes:
            raise BodyTooLarge(settings.max_json_body_bytes, "TIPLINE_MAX_JSON_BODY_BYTES", f"body.items.{index}")
    items = [content_item(principal.org_id, item, MediaSource(url=item.media_url)) for item in body.items]
    # One signal per user (their items together), not one per item: a batch of many users' items costs a
    # round trip per user, and a user's items arrive in their case as one history event.
    case_refs = await enqueue_batch(temporal, registry, settings, items, signal_bytes=settings.max_json_body_bytes)
    return BatchAccepted(accepted=[ContentAccepted(case_ref=ref, content_id=item.content_id)
                                   for ref, item in zip(case_refs, body.items, strict=True)])


class ConversationIn(RequestBody):
    creator_id: str = Field(min_length=1, max_length=200, description="The reported user this conversation is about")
    thread_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")
    messages: list[ConversationMessage] = Field(min_length=1, max_length=1000)


class ConversationAccepted(BaseModel):
    case_ref: str
    thread_id: str
    message_count: int


@router.post("/conversations", status_code=status.HTTP_202_ACCEPTED, response_model=ConversationAccepted,
             summary="Send a conversation thread; a reviewer may attach it to the CyberTip as a CSV file")
async def send_conversation(body: ConversationIn, principal: Platform, temporal: Temporal, registry: Registry,
                            settings: AppSettings) -> ConversationAccepted:
    thread = ConversationThread(thread_id=body.thread_id, org_id=principal.org_id, user_id=body.creator_id,
                                messages=body.messages)
    workflow_id = await signal_case(temporal, registry, settings, principal.org_id, body.creator_id,
                                    "add_conversation", thread)
    log.info("conversation.enqueued", org_id=principal.org_id, workflow_id=workflow_id, messages=len(body.messages))
    return ConversationAccepted(case_ref=workflow_id, thread_id=body.thread_id, message_count=len(body.messages))
