"""Filing a CyberTip: each activity is one NCMEC call, recorded in the database as soon as it answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from cybertipline.client import CyberTiplineClient, CyberTiplineError
from cybertipline.report_xml import ReportValidationError, file_details_to_xml, report_to_xml
from cybertipline.xsd import load_schema, schema_errors
from models.cybertip import compose_file_details, compose_report
from models.filing import (
    FileDetailsInput,
    FileDetailsSent,
    FinishedReport,
    FinishReportInput,
    OpenedReport,
    OpenReportInput,
    UploadedFile,
    UploadFileInput,
)
from models.records import FiledFile, FiledReport, ReportStatus
from tipline.evidence import EvidenceStore
from tipline.logging import fingerprint, get_logger
from tipline.settings import OrgSettings, Settings

ALREADY_FINISHED = 5102
log = get_logger(__name__)


class FilingActivities:
    def __init__(self, settings: Settings, engine: Engine, store: EvidenceStore) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store

    @activity.defn
    async def open_report(self, request: OpenReportInput) -> OpenedReport:
        org = self.settings.orgs.get(request.org_id)
        existing = self._open_report_of(request.workflow_id, request.case_number)
        if existing is not None:
            # The previous attempt's /submit answered but its completion was lost: never submit twice.
            return OpenedReport(environment=existing.ncmec_environment, report_id=existing.ncmec_report_id,
                                opened_at=existing.opened_at)
        now = datetime.now(UTC)
        with _refusal_of("the report"):
            report_xml = report_to_xml(compose_report(org, request, now=now), now=now)
        self._check_schema(report_xml, "the report")
        with _refusal_of("the report"):
            async with self._client(org) as client:
                response = await client.submit(report_xml)
        assert response.report_id is not None
        with Session(self.engine) as session:
            session.add(FiledReport(
                org_id=org.id, workflow_id=request.workflow_id, case_number=request.case_number,
                ncmec_environment=org.ncmec.environment.value, ncmec_report_id=response.report_id,
                status=ReportStatus.OPEN, report_xml=report_xml.decode(), submitted_by=request.decision.reviewer_id,
                opened_at=now,
            ))
            session.commit()
        log.info("ncmec.report_opened", org_id=org.id, workflow_id=request.workflow_id,
                 ncmec_report_id=response.report_id, environment=org.ncmec.environment.value)
        return OpenedReport(environment=org.ncmec.environment.value, report_id=response.report_id, opened_at=now)

    @activity.defn
    async def upload_file(self, request: UploadFileInput) -> UploadedFile:
        org = self.settings.orgs.get(request.org_id)
        with self.store.open(request.evidence.sha256) as content, _refusal_of("the file upload"):
            async with self._client(org) as client:
                response = await client.upload(request.report_id, request.file_name, content)
        assert response.file_id is not None
        if response.hash and response.hash.lower() != request.evidence.md5:
            raise ApplicationError("NCMEC received different bytes than the evidence store holds; uploading again")
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            report = self._report_row(session, org, request.report_id)
            session.add(FiledFile(report_pk=report.id, media_id=request.media_id,
                                  evidence_sha256=request.evidence.sha256, ncmec_file_id=response.file_id,
                                  md5=request.evidence.md5, uploaded_at=now))
            session.commit()
        log.info("ncmec.file_uploaded", org_id=org.id, ncmec_report_id=request.report_id,
                 media=fingerprint(request.media_id), ncmec_file_id=response.file_id)
        return UploadedFile(file_id=response.file_id, md5=request.evidence.md5, uploaded_at=now)

    @activity.defn
    async def send_file_details(self, request: FileDetailsInput) -> FileDetailsSent:
        org = self.settings.orgs.get(request.org_id)
        with _refusal_of("the file details"):
            details_xml = file_details_to_xml(compose_file_details(request))
        self._check_schema(details_xml, "the file details")
        with _refusal_of("the file details"):
            async with self._client(org) as client:
                await client.fileinfo(details_xml)
        with Session(self.engine) as session:
            report = self._report_row(session, org, request.report_id)
            row = session.exec(select(FiledFile).where(FiledFile.report_pk == report.id,
                                                       FiledFile.ncmec_file_id == request.file_id)).one()
            row.file_details_xml = details_xml.decode()
            session.commit()
        return FileDetailsSent(sent_at=datetime.now(UTC))

    @activity.defn
    async def finish_report(self, request: FinishReportInput) -> FinishedReport:
        org = self.settings.orgs.get(request.org_id)
        receipt: str | None
        try:
            with _refusal_of("finishing the report"):
                async with self._client(org) as client:
                    response = await client.finish(request.report_id)
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
        with Session(self.engine) as session:
            report = self._report_row(session, org, request.report_id)
            report.status = ReportStatus.FINISHED
            report.finished_at = now
            report.finish_receipt_xml = receipt
            session.commit()
        log.info("ncmec.report_finished", org_id=org.id, ncmec_report_id=request.report_id, files=len(file_ids))
        return FinishedReport(finished_at=now, file_ids=file_ids)

    def _client(self, org: OrgSettings) -> CyberTiplineClient:
        return CyberTiplineClient(self.settings.ncmec_base_url(org.ncmec.environment), org.ncmec.username,
                                  org.ncmec.password.get_secret_value())

    def _check_schema(self, document: bytes, what: str) -> None:
        if self.settings.ncmec_xsd_path is None:
            return
        errors = schema_errors(document, load_schema(self.settings.ncmec_xsd_path))
        if errors:
            raise ApplicationError(f"{what} does not match NCMEC's schema: {'; '.join(errors[:3])}",
                                   type="ReportInvalid", non_retryable=True)

    def _open_report_of(self, workflow_id: str, case_number: int) -> FiledReport | None:
        with Session(self.engine) as session:
            return session.exec(select(FiledReport).where(
                FiledReport.workflow_id == workflow_id, FiledReport.case_number == case_number,
                FiledReport.status == ReportStatus.OPEN,
            )).first()

    @staticmethod
    def _report_row(session: Session, org: OrgSettings, report_id: int) -> FiledReport:
        return session.exec(select(FiledReport).where(
            FiledReport.ncmec_environment == org.ncmec.environment.value,
            FiledReport.ncmec_report_id == report_id,
        )).one()


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
        raise ApplicationError(f"NCMEC refused {what} (code {error.code}: {error.description or 'no reason given'})",
                               type="NcmecRejected", non_retryable=True) from error
