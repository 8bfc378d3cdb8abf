"""Filing a CyberTip: each step is one NCMEC call, recorded in the database as soon as it answers
(``activities.filing`` holds the activity definitions the workflows import; this module does the work).

The activities are async for their HTTP calls; database sessions and evidence-store reads and writes are
synchronous, so they run on worker threads (``asyncio.to_thread``) and never stall the event loop that keeps
heartbeats, polling and every other activity of the worker going.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, contextmanager, suppress
from datetime import UTC, datetime
from typing import BinaryIO

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError

from activities.filing import ATTEMPT_CLOSED_ERROR, REPORT_GONE_ERROR
from activities.heartbeat import heartbeating
from cybertipline.client import CyberTiplineClient, CyberTiplineError, CyberTiplineTransportError, sniff_media_type
from cybertipline.enums import FileRelevance
from cybertipline.file_details_model import FileDetails
from cybertipline.report_xml import ReportValidationError, file_details_to_xml, report_to_xml
from cybertipline.xsd import load_schema, schema_errors
from models.case import EvidenceRef
from models.case_urgency import suggestion_of_record, urgency_outcome
from models.conversation_csv import conversation_csv
from models.cybertip import (
    compose_conversation_details,
    compose_file_details,
    compose_report,
    conversation_media_id,
)
from models.filing import (
    AbandonedReport,
    AbandonReportInput,
    ConversationDetailsInput,
    FileDetailsInput,
    FileDetailsSent,
    FileToSend,
    FinishedReport,
    FinishReportInput,
    OpenedReport,
    OpenReportInput,
    SendFilesInput,
    SentFile,
    SentFiles,
    UploadConversationInput,
    UploadedConversation,
    UploadedFile,
    UploadFileInput,
)
from models.records import FiledFile, FiledReport, ReportStatus
from tipline.evidence import EvidenceCorrupted, EvidenceStore
from tipline.logging import fingerprint, get_logger
from tipline.metrics import FILING_DURATION
from tipline.settings import OrgSettings, Settings

REPORT_GONE = 5001
ALREADY_RETRACTED = 5101
ALREADY_FINISHED = 5102
UPLOAD_CHUNK_BYTES = 1 << 20
log = get_logger(__name__)


class NcmecFiling:
    def __init__(self, settings: Settings, engine: Engine, store: EvidenceStore) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self._clients: dict[tuple[str, str], CyberTiplineClient] = {}

    async def open_report(self, request: OpenReportInput) -> OpenedReport:
        org = self.settings.orgs.get(request.org_id)
        existing = await asyncio.to_thread(self._attempt_row, request)
        if existing is not None:
            if existing.status != ReportStatus.OPEN:
                # Reusing an abandoned report would file into one NCMEC no longer has, or one we retracted.
                raise ApplicationError(f"filing attempt {request.attempt} of this case is closed ({existing.status}); "
                                       f"a new attempt must be opened", type=ATTEMPT_CLOSED_ERROR, non_retryable=True)
            # The previous try's /submit answered but its completion was lost: never submit twice.
            return _opened(existing)
        now = datetime.now(UTC)
        with _refusal_of("the report"):
            report_xml = report_to_xml(compose_report(org, request, now=now), now=now)
        await asyncio.to_thread(self._check_schema, report_xml, "the report")
        with _refusal_of("the report"):
            response = await self._client(org).submit(report_xml)
        assert response.report_id is not None
        suggestion = suggestion_of_record(request.decision.urgency_suggestion_shown, request.urgency_suggestion)
        recorded = await asyncio.to_thread(self._record_attempt, FiledReport(
            org_id=org.id, workflow_id=request.workflow_id, case_number=request.case_number, attempt=request.attempt,
            ncmec_environment=org.ncmec.environment.value, ncmec_report_id=response.report_id,
            status=ReportStatus.OPEN, report_xml=report_xml.decode(), submitted_by=request.decision.reviewer_id,
            escalation_reason=request.decision.escalate_to_high_priority,
            urgency_suggestion=suggestion,
            urgency_outcome=urgency_outcome(suggestion, request.decision.escalate_to_high_priority),
            opened_at=now,
        ))
        if recorded.ncmec_report_id != response.report_id:
            # A try of this attempt that outlived its timeout recorded its report first; that one is the case's.
            await self._retract_duplicate(org, response.report_id)
        else:
            log.info("ncmec.report_opened", org_id=org.id, workflow_id=request.workflow_id,
                     ncmec_report_id=response.report_id, environment=org.ncmec.environment.value,
                     attempt=request.attempt)
        return _opened(recorded)

    async def upload_file(self, request: UploadFileInput) -> UploadedFile:
        org = self.settings.orgs.get(request.org_id)
        file_id, now = await self._upload(org, request.report_id, request.media_id, request.evidence,
                                          request.file_name, FileRelevance.REPORTED)
        log.info("ncmec.file_uploaded", org_id=org.id, ncmec_report_id=request.report_id,
                 media=fingerprint(request.media_id), ncmec_file_id=file_id)
        return UploadedFile(file_id=file_id, md5=request.evidence.md5, uploaded_at=now)

    async def send_files(self, request: SendFilesInput) -> SentFiles:
        """Upload and describe a batch of the report's files, ``concurrency`` at a time, in one activity.

        Each upload and each description is recorded as NCMEC answers it, so a retry sends only what is left: a
        file whose upload was recorded is described, not uploaded again. After a failure no further file starts;
        those in flight finish, and the first failure is raised."""
        org = self.settings.orgs.get(request.org_id)
        recorded = await asyncio.to_thread(self._recorded_files, org, request.report_id)
        window = asyncio.Semaphore(request.concurrency)
        failures: list[BaseException] = []

        async def send(item: FileToSend) -> SentFile | None:
            async with window:
                if failures:
                    return None
                try:
                    return await self._send_one(org, request.report_id, item, recorded.get(item.media.media_id))
                except Exception as error:  # noqa: BLE001 (kept, raised once the files in flight are done)
                    failures.append(error)
                    return None

        async with heartbeating():
            sent = await asyncio.gather(*(send(item) for item in request.files))
        if failures:
            raise failures[0]
        return SentFiles(files=[f for f in sent if f is not None], last_modified_at=datetime.now(UTC))

    async def _send_one(self, org: OrgSettings, report_id: int, item: FileToSend,
                        recorded: tuple[str, bool] | None) -> SentFile:
        media, evidence = item.media, item.media.evidence
        assert evidence is not None
        file_id, described = recorded if recorded is not None else (item.file_id, False)
        if file_id is None:
            file_id, _ = await self._upload(org, report_id, media.media_id, evidence, item.file_name,
                                            FileRelevance.REPORTED)
            log.info("ncmec.file_uploaded", org_id=org.id, ncmec_report_id=report_id,
                     media=fingerprint(media.media_id), ncmec_file_id=file_id)
        if not described:
            with _refusal_of("the file details"):
                details = compose_file_details(FileDetailsInput(org_id=org.id, report_id=report_id, file_id=file_id,
                                                                media=media, decision=item.decision))
            await self._send_details(org.id, report_id, file_id, details, "the file details")
        return SentFile(media_id=media.media_id, file_id=file_id, md5=evidence.md5)

    def _recorded_files(self, org: OrgSettings, report_id: int) -> dict[str, tuple[str, bool]]:
        """The report's files NCMEC has answered for: media id -> (file id, described)."""
        with Session(self.engine) as session:
            report = self._report_row(session, org, report_id)
            rows = session.exec(select(FiledFile).where(FiledFile.report_pk == report.id)).all()
            return {row.media_id: (row.ncmec_file_id, row.file_details_xml is not None) for row in rows}

    async def send_file_details(self, request: FileDetailsInput) -> FileDetailsSent:
        with _refusal_of("the file details"):
            details = compose_file_details(request)
        return await self._send_details(request.org_id, request.report_id, request.file_id, details,
                                        "the file details")

    async def upload_conversation(self, request: UploadConversationInput) -> UploadedConversation:
        """The thread as a CSV: preserved in the evidence store, then uploaded as a supplemental file."""
        org = self.settings.orgs.get(request.org_id)
        evidence = await asyncio.to_thread(self.store.put_bytes, conversation_csv(request.thread.messages))
        file_id, now = await self._upload(org, request.report_id, conversation_media_id(request.thread.thread_id),
                                          evidence, f"conversation-{request.thread.thread_id}.csv",
                                          FileRelevance.SUPPLEMENTAL_REPORTED)
        return UploadedConversation(file_id=file_id, evidence=evidence, sent_at=now)

    async def send_conversation_details(self, request: ConversationDetailsInput) -> FileDetailsSent:
        with _refusal_of("the conversation's file details"):
            details = compose_conversation_details(request)
        return await self._send_details(request.org_id, request.report_id, request.file_id, details,
                                        "the conversation's file details")

    async def finish_report(self, request: FinishReportInput) -> FinishedReport:
        org = self.settings.orgs.get(request.org_id)
        receipt: str | None
        try:
            with _refusal_of("finishing the report"):
                response = await self._client(org).finish(request.report_id)
            file_ids, receipt = response.file_ids, response.raw_xml
        except ApplicationError as refusal:
            # A retry after a lost answer finds the report finished: that is the outcome we wanted.
            if not isinstance(refusal.__cause__, CyberTiplineError) or refusal.__cause__.code != ALREADY_FINISHED:
                raise
            file_ids, receipt = request.expected_file_ids, None
        missing = sorted(set(request.expected_file_ids) - set(file_ids))
        if missing:
            raise ApplicationError(f"NCMEC finished the report without files {', '.join(missing)}",
                                   type="NcmecIncomplete", non_retryable=True)
        now = datetime.now(UTC)
        opened_at = await asyncio.to_thread(self._record_finished, org, request.report_id, now, receipt)
        if opened_at is not None:
            FILING_DURATION.observe(max(0.0, (now - opened_at).total_seconds()))
        log.info("ncmec.report_finished", org_id=org.id, ncmec_report_id=request.report_id, files=len(file_ids))
        return FinishedReport(finished_at=now, file_ids=file_ids)

    async def abandon_report(self, request: AbandonReportInput) -> AbandonedReport:
        """Retract a report the case will not finish, and record why; NCMEC may have deleted it already."""
        org = self.settings.orgs.get(request.org_id)
        try:
            await self._client(org).retract(request.report_id)
            outcome, status = "retracted", ReportStatus.RETRACTED
        except CyberTiplineError as error:
            if error.code == REPORT_GONE:
                outcome, status = "gone", ReportStatus.EXPIRED
            elif error.code == ALREADY_RETRACTED:
                outcome, status = "retracted", ReportStatus.RETRACTED
            elif error.code == ALREADY_FINISHED:
                outcome, status = "finished", ReportStatus.FINISHED
            elif error.transient:
                raise
            else:
                raise ApplicationError(f"NCMEC refused to retract report {request.report_id} (code {error.code})",
                                       type="NcmecRejected", non_retryable=True) from error
        await asyncio.to_thread(self._record_abandoned, org, request.report_id, status, request.reason)
        log.info("ncmec.report_abandoned", org_id=org.id, ncmec_report_id=request.report_id, outcome=outcome)
        return AbandonedReport(outcome=outcome)

    async def _upload(self, org: OrgSettings, report_id: int, media_id: str, evidence: EvidenceRef, file_name: str,
                      relevance: FileRelevance) -> tuple[str, datetime]:
        """Upload preserved bytes to the open report and record the file id NCMEC gave them.

        The store decrypts and checks as it reads, so every read runs on a thread; the upload streams the chunks
        as they come, one read ahead, so memory stays at two chunks whatever the file's size."""
        try:
            stream = await asyncio.to_thread(self.store.open, evidence.sha256)
        except EvidenceCorrupted as error:
            raise ApplicationError(f"the preserved evidence failed its integrity check: {error}",
                                   type="EvidenceCorrupted", non_retryable=True) from error
        with stream as content, _refusal_of("the file upload"):
            media_type = await asyncio.to_thread(sniff_media_type, content, file_name)
            async with heartbeating(), aclosing(_read_ahead(content)) as chunks:
                try:
                    response = await self._client(org).upload_stream(report_id, file_name, chunks, evidence.size,
                                                                     media_type)
                except EvidenceCorrupted as error:
                    raise ApplicationError(f"the preserved evidence failed its integrity check: {error}",
                                           type="EvidenceCorrupted", non_retryable=True) from error
        assert response.file_id is not None
        if response.hash and response.hash.lower() != evidence.md5:
            raise ApplicationError("NCMEC received different bytes than the evidence store holds; uploading again")
        now = datetime.now(UTC)
        await asyncio.to_thread(self._record_upload, org, report_id, media_id, evidence, response.file_id, relevance,
                                now)
        return response.file_id, now

    def _record_upload(self, org: OrgSettings, report_id: int, media_id: str, evidence: EvidenceRef, file_id: str,
                       relevance: FileRelevance, now: datetime) -> None:
        with Session(self.engine) as session:
            report = self._report_row(session, org, report_id)
            # An earlier attempt may have uploaded and recorded the file before its completion was lost; the
            # workflow goes on with this attempt's file id, so the record follows it.
            row = session.exec(select(FiledFile).where(FiledFile.report_pk == report.id,
                                                       FiledFile.media_id == media_id)).first()
            if row is None:
                row = FiledFile(report_pk=report.id, media_id=media_id, evidence_sha256=evidence.sha256,
                                ncmec_file_id=file_id, md5=evidence.md5, file_relevance=relevance.value,
                                uploaded_at=now)
            else:
                row.ncmec_file_id, row.uploaded_at, row.file_details_xml = file_id, now, None
            session.add(row)
            session.commit()

    async def _send_details(self, org_id: str, report_id: int, file_id: str, details: FileDetails,
                            what: str) -> FileDetailsSent:
        """Send a file's fileDetails and keep exactly the XML that was sent."""
        org = self.settings.orgs.get(org_id)
        details_xml = file_details_to_xml(details)
        await asyncio.to_thread(self._check_schema, details_xml, what)
        with _refusal_of(what):
            await self._client(org).fileinfo(details_xml)
        await asyncio.to_thread(self._record_details, org, report_id, file_id, details_xml.decode())
        return FileDetailsSent(sent_at=datetime.now(UTC))

    def _client(self, org: OrgSettings) -> CyberTiplineClient:
        """The org's one client for the worker's life: its connections (and TLS sessions) are kept between calls,
        and building an HTTP client (its TLS context, the CA bundle) cost more than the call it made."""
        key = (org.id, org.ncmec.environment.value)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = CyberTiplineClient(
                self.settings.ncmec_base_url(org.ncmec.environment), org.ncmec.username,
                org.ncmec.password.get_secret_value())
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _check_schema(self, document: bytes, what: str) -> None:
        if self.settings.ncmec_xsd_path is None:
            return
        errors = schema_errors(document, load_schema(self.settings.ncmec_xsd_path))
        if errors:
            raise ApplicationError(f"{what} does not match NCMEC's schema: {'; '.join(errors[:3])}",
                                   type="ReportInvalid", non_retryable=True)

    def _record_details(self, org: OrgSettings, report_id: int, file_id: str, details_xml: str) -> None:
        with Session(self.engine) as session:
            report = self._report_row(session, org, report_id)
            row = session.exec(select(FiledFile).where(FiledFile.report_pk == report.id,
                                                       FiledFile.ncmec_file_id == file_id)).one()
            row.file_details_xml = details_xml
            session.commit()

    def _attempt_row(self, request: OpenReportInput) -> FiledReport | None:
        with Session(self.engine) as session:
            return session.exec(select(FiledReport).where(
                FiledReport.workflow_id == request.workflow_id, FiledReport.case_number == request.case_number,
                FiledReport.attempt == request.attempt,
            )).first()

    def _record_attempt(self, report: FiledReport) -> FiledReport:
        """Record the attempt's report, or return the one already recorded for it: the database keeps one per
        attempt, so of two submits racing for the same attempt exactly one becomes the case's report."""
        with Session(self.engine) as session:
            session.add(report)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                winner = session.exec(select(FiledReport).where(
                    FiledReport.workflow_id == report.workflow_id, FiledReport.case_number == report.case_number,
                    FiledReport.attempt == report.attempt,
                )).first()
                if winner is None:
                    raise
                return winner
            session.refresh(report)
            return report

    async def _retract_duplicate(self, org: OrgSettings, report_id: int) -> None:
        try:
            await self._client(org).retract(report_id)
        except (CyberTiplineError, CyberTiplineTransportError) as error:
            # NCMEC deletes unfinished reports on its own; the log keeps the id for whoever checks.
            log.warning("ncmec.duplicate_not_retracted", org_id=org.id, ncmec_report_id=report_id,
                        error=type(error).__name__)
            return
        log.info("ncmec.duplicate_retracted", org_id=org.id, ncmec_report_id=report_id)

    def _record_finished(self, org: OrgSettings, report_id: int, now: datetime, receipt: str | None
                         ) -> datetime | None:
        """Record the report finished; returns when it was opened, or None if an earlier try recorded it already
        (so a retry after a lost completion does not count the filing twice)."""
        with Session(self.engine) as session:
            report = self._report_row(session, org, report_id)
            first = report.status != ReportStatus.FINISHED
            report.status = ReportStatus.FINISHED
            report.finished_at = now
            report.finish_receipt_xml = receipt
            session.commit()
            return report.opened_at if first else None

    def _record_abandoned(self, org: OrgSettings, report_id: int, status: ReportStatus, reason: str) -> None:
        with Session(self.engine) as session:
            report = self._report_row(session, org, report_id)
            report.status = status
            if status is ReportStatus.FINISHED:
                report.finished_at = report.finished_at or datetime.now(UTC)
            else:
                report.failure_reason = reason
            session.commit()

    @staticmethod
    def _report_row(session: Session, org: OrgSettings, report_id: int) -> FiledReport:
        return session.exec(select(FiledReport).where(
            FiledReport.ncmec_environment == org.ncmec.environment.value,
            FiledReport.ncmec_report_id == report_id,
        )).one()


async def _read_ahead(source: BinaryIO) -> AsyncIterator[bytes]:
    """``source``'s chunks, each read on a thread while the one before is sent."""
    pending = asyncio.ensure_future(asyncio.to_thread(source.read, UPLOAD_CHUNK_BYTES))
    try:
        while chunk := await pending:
            pending = asyncio.ensure_future(asyncio.to_thread(source.read, UPLOAD_CHUNK_BYTES))
            yield chunk
    finally:
        # A read still running on its thread finishes before the caller closes the stream under it.
        with suppress(Exception):  # its error, if any, was the upload's, or no longer matters
            await asyncio.shield(pending)


def _opened(report: FiledReport) -> OpenedReport:
    return OpenedReport(environment=report.ncmec_environment, report_id=report.ncmec_report_id,
                        opened_at=report.opened_at)


@contextmanager
def _refusal_of(what: str) -> Iterator[None]:
    """Turn permanent refusals into non-retryable errors a reviewer can read; let transient ones retry."""
    try:
        yield
    except ReportValidationError as error:
        fields = "; ".join(f"{e.field}: {e.message}" for e in error.errors)
        raise ApplicationError(f"{what} is invalid: {fields}", type="ReportInvalid", non_retryable=True) from error
    except CyberTiplineError as error:
        if error.transient:
            raise
        if error.code in (REPORT_GONE, ALREADY_RETRACTED):
            # The workflow files afresh when NCMEC no longer has the report (it expired, or was retracted).
            raise ApplicationError(f"NCMEC no longer has the report (code {error.code})", type=REPORT_GONE_ERROR,
                                   non_retryable=True) from error
        raise ApplicationError(f"NCMEC refused {what} (code {error.code}: {error.description or 'no reason given'})",
                               type="NcmecRejected", non_retryable=True) from error
