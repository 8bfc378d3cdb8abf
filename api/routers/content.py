"""Platforms send content: each item joins its creator's open case, or opens one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, Json, ValidationError
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.deps import AppSettings, Platform, Registry, Store, Temporal
from api.problems import PROBLEM_RESPONSES
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
from tipline.intake import enqueue_content, signal_case
from tipline.logging import get_logger
from tipline.registry import RefRegistry
from tipline.settings import Settings

router = APIRouter(prefix="/v1/content", tags=["platform"], responses=PROBLEM_RESPONSES)
log = get_logger(__name__)


class ContentMetadata(BaseModel):
    content_id: str = Field(min_length=1, max_length=200, description="The platform's id for this item")
    creator_id: str = Field(min_length=1, max_length=200, description="The platform's id of the user who posted it")
    file_name: str | None = Field(default=None, max_length=2056)
    content_type: str | None = Field(default=None, max_length=200)
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


async def uploaded_content(
    store: Store,
    file: Annotated[UploadFile, File(description="The media bytes")],
    content_id: Annotated[str, Form(min_length=1, max_length=200)],
    creator_id: Annotated[str, Form(min_length=1, max_length=200)],
    uploaded_at: Annotated[datetime | None, Form()] = None,
    upload_ip: Annotated[str | None, Form(max_length=64)] = None,
    location_url: Annotated[str | None, Form(max_length=2083)] = None,
    report_text: Annotated[str | None, Form(max_length=10000)] = None,
    indicators: Annotated[Json[PlatformIndicators] | None, Form(description="PlatformIndicators as JSON")] = None,
    user: Annotated[Json[UserMetadata] | None, Form(description="UserMetadata as JSON")] = None,
    file_metadata: Annotated[Json[FileMetadata] | None, Form(description="FileMetadata as JSON")] = None,
) -> UploadedContent:
    """A multipart item (the fields of ContentMetadata, and the file), its media preserved before anything else."""
    try:
        metadata = ContentMetadata(content_id=content_id, creator_id=creator_id, file_name=file.filename,
                                   content_type=file.content_type, uploaded_at=uploaded_at, upload_ip=upload_ip,
                                   location_url=location_url, report_text=report_text, indicators=indicators,
                                   user=user, file=file_metadata)
    except ValidationError as error:
        raise RequestValidationError(error.errors()) from None
    # Preserved before a workflow hears of it: workflows get a reference, never the bytes.
    return UploadedContent(metadata, await run_in_threadpool(store.put_stream, file.file))


# Declared after the principal in each endpoint, so a request that fails authentication stores nothing.
Upload = Annotated[UploadedContent, Depends(uploaded_content)]


@router.post("/upload", status_code=status.HTTP_202_ACCEPTED, response_model=ContentAccepted,
             summary="Send a content item with its media bytes")
async def upload_content(principal: Platform, temporal: Temporal, registry: Registry, settings: AppSettings,
                         upload: Upload) -> ContentAccepted:
    return await _enqueue(temporal, registry, settings, principal.org_id, upload.metadata,
                          MediaSource(evidence=upload.evidence))


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


class ContentBatch(BaseModel):
    items: list[ContentByUrl] = Field(min_length=1, max_length=500)


class BatchAccepted(BaseModel):
    accepted: list[ContentAccepted]


@router.post("/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchAccepted,
             summary="Send several content items fetched by URL; each joins its creator's case")
async def send_content_batch(body: ContentBatch, principal: Platform, temporal: Temporal, registry: Registry,
                             settings: AppSettings) -> BatchAccepted:
    return BatchAccepted(accepted=[
        await _enqueue(temporal, registry, settings, principal.org_id, item, MediaSource(url=item.media_url))
        for item in body.items
    ])


class ConversationIn(BaseModel):
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
