"""Filing a CyberTip: each activity is one NCMEC call, recorded in the database as soon as it answers.

The workflows import these definitions, and the worker imports them before it polls, so this module stays light:
the NCMEC client, the report XML, the database and the evidence store are ``activities.ncmec_filing``'s, imported
when the worker makes its instance.

The activities are async for their HTTP calls; database sessions and evidence-store reads and writes are
synchronous, so they run on worker threads and never stall the event loop that keeps heartbeats, polling and
every other activity of the worker going.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity

from models.filing import (
    AbandonedReport,
    AbandonReportInput,
    ConversationDetailsInput,
    FileDetailsInput,
    FileDetailsSent,
    FinishedReport,
    FinishReportInput,
    OpenedReport,
    OpenReportInput,
    SendFilesInput,
    SentFiles,
    UploadConversationInput,
    UploadedConversation,
    UploadedFile,
    UploadFileInput,
)
from tipline.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tipline.evidence import EvidenceStore

REPORT_GONE_ERROR = "NcmecReportGone"
ATTEMPT_CLOSED_ERROR = "ReportAttemptClosed"


class FilingActivities:
    def __init__(self, settings: Settings, engine: Engine, store: EvidenceStore) -> None:
        from activities.ncmec_filing import NcmecFiling

        self.ncmec = NcmecFiling(settings, engine, store)

    async def aclose(self) -> None:
        """Close the NCMEC connections kept between calls (the worker does, once its activities have drained)."""
        await self.ncmec.aclose()

    @activity.defn
    async def open_report(self, request: OpenReportInput) -> OpenedReport:
        return await self.ncmec.open_report(request)

    @activity.defn
    async def upload_file(self, request: UploadFileInput) -> UploadedFile:
        return await self.ncmec.upload_file(request)

    @activity.defn
    async def send_files(self, request: SendFilesInput) -> SentFiles:
        """A batch of the report's files uploaded and described; a retry sends only what is not recorded."""
        return await self.ncmec.send_files(request)

    @activity.defn
    async def send_file_details(self, request: FileDetailsInput) -> FileDetailsSent:
        return await self.ncmec.send_file_details(request)

    @activity.defn
    async def upload_conversation(self, request: UploadConversationInput) -> UploadedConversation:
        """The thread as a CSV: preserved in the evidence store, then uploaded as a supplemental file."""
        return await self.ncmec.upload_conversation(request)

    @activity.defn
    async def send_conversation_details(self, request: ConversationDetailsInput) -> FileDetailsSent:
        return await self.ncmec.send_conversation_details(request)

    @activity.defn
    async def finish_report(self, request: FinishReportInput) -> FinishedReport:
        return await self.ncmec.finish_report(request)

    @activity.defn
    async def abandon_report(self, request: AbandonReportInput) -> AbandonedReport:
        """Retract a report the case will not finish, and record why; NCMEC may have deleted it already."""
        return await self.ncmec.abandon_report(request)
