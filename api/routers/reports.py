"""Records of filed CyberTips: what was sent to NCMEC, and what NCMEC answered."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from api.deps import AuditTrail, DbSession, RecordsReader, Store, get_engine
from api.evidence_views import MEDIA_RESPONSES, evidence_response
from api.ownership import OwnedReport
from api.problems import PROBLEM_RESPONSES, ProblemError
from cybertipline.enums import FileRelevance
from models.cybertip import conversation_media_id
from models.records import FiledFile, FiledReport, ReportStatus
from tipline.safe_xml import XmlRefused, parse_xml
from tipline.settings import NcmecEnvironment

router = APIRouter(prefix="/v1/reports", tags=["records"], responses=PROBLEM_RESPONSES)
XML_RESPONSE = {200: {"content": {"application/xml": {}}}}
CSV_RESPONSE: dict[int | str, dict] = {200: {"content": {"text/csv": {}}}}
CONVERSATION_PREFIX = conversation_media_id("")
TOTAL_HEADER = "X-Total-Count"


class ReportFileOut(BaseModel):
    media_id: str
    ncmec_file_id: str
    md5: str
    evidence_sha256: str
    file_relevance: str
    uploaded_at: datetime
    file_details_sent: bool
    kind: str = Field(description="media (a Reported file), supplemental (a Supplemental Reported file) or "
                                  "conversation (a conversation thread's CSV)")
    content_url: str = Field(description="The bytes as uploaded to NCMEC; every download is recorded")


class ReportedUser(BaseModel):
    """The reported person or user, as the filed XML names them."""

    esp_identifier: str | None
    screen_name: str | None
    emails: list[str]


class ReportOut(BaseModel):
    id: int
    case_ref: str
    case_number: int
    ncmec_environment: str
    ncmec_report_id: int
    status: ReportStatus
    submitted_by: str
    escalation_reason: str | None = Field(description="What was sent in escalateToHighPriority")
    urgency_suggestion: str | None = Field(description="What Tipline had suggested")
    urgency_outcome: str | None = Field(description="confirmed, edited, cleared, added or not_urgent")
    opened_at: datetime
    finished_at: datetime | None
    failure_reason: str | None
    test: bool = Field(description="Filed to NCMEC's sandbox or test environment, not to production")
    reported_users: list[ReportedUser]
    files: list[ReportFileOut]


@router.get("", response_model=list[ReportOut], summary="The org's CyberTips, newest first",
            responses={200: {"headers": {TOTAL_HEADER: {"description": "How many reports match the filters",
                                                        "schema": {"type": "integer"}}}}})
def list_reports(
    principal: RecordsReader, session: DbSession, response: Response,
    status: Annotated[ReportStatus | None, Query()] = None,
    environment: Annotated[NcmecEnvironment | None, Query(description="sandbox, test or production")] = None,
    opened_from: Annotated[datetime | None, Query(description="Opened at or after (ISO 8601)")] = None,
    opened_to: Annotated[datetime | None, Query(description="Opened before (ISO 8601)")] = None,
    ncmec_report_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[ReportOut]:
    # Always the caller's org, whatever else is asked.
    conditions = [FiledReport.org_id == principal.org_id]
    if status is not None:
        conditions.append(FiledReport.status == status.value)
    if environment is not None:
        conditions.append(FiledReport.ncmec_environment == environment.value)
    if opened_from is not None:
        conditions.append(col(FiledReport.opened_at) >= opened_from)
    if opened_to is not None:
        conditions.append(col(FiledReport.opened_at) < opened_to)
    if ncmec_report_id is not None:
        conditions.append(FiledReport.ncmec_report_id == ncmec_report_id)
    total = session.exec(select(func.count()).select_from(FiledReport).where(*conditions)).one()
    response.headers[TOTAL_HEADER] = str(total)
    reports = session.exec(select(FiledReport).where(*conditions)
                           .order_by(col(FiledReport.opened_at).desc(), col(FiledReport.id).desc())
                           .offset(offset).limit(limit)).all()
    return [_report_out(session, report) for report in reports]


@router.get("/{report_id}", response_model=ReportOut, summary="One CyberTip with its NCMEC file ids")
def get_report(report: OwnedReport, session: DbSession) -> ReportOut:
    return _report_out(session, report)


@router.get("/{report_id}/xml", response_class=Response, responses=XML_RESPONSE,
            summary="The report XML exactly as submitted")
def get_report_xml(report: OwnedReport) -> Response:
    return Response(report.report_xml, media_type="application/xml")


@router.get("/{report_id}/receipt", response_class=Response, responses=XML_RESPONSE,
            summary="NCMEC's /finish answer, the provider's notification of receipt")
def get_report_receipt(report: OwnedReport) -> Response:
    if report.finish_receipt_xml is None:
        raise ProblemError(404, "This report has no receipt", "it is not finished, or NCMEC's answer was lost")
    return Response(report.finish_receipt_xml, media_type="application/xml")


@router.get("/{report_id}/files/{ncmec_file_id}/details", response_class=Response, responses=XML_RESPONSE,
            summary="A file's fileDetails XML exactly as sent")
def get_file_details_xml(report: OwnedReport, ncmec_file_id: str, session: DbSession) -> Response:
    # A file is owned through its report: it is looked up only among the files of a report the caller owns.
    row = session.exec(select(FiledFile).where(FiledFile.report_pk == report.id,
                                               FiledFile.ncmec_file_id == ncmec_file_id)).first()
    if row is None or row.file_details_xml is None:
        raise ProblemError(404, "No file details for that file in this report")
    return Response(row.file_details_xml, media_type="application/xml")


@router.get("/{report_id}/files/{ncmec_file_id}/content", response_class=StreamingResponse,
            responses={**MEDIA_RESPONSES, **CSV_RESPONSE},
            summary="A filed file's bytes, media or conversation CSV, as uploaded (the download is recorded)")
async def get_file_content(report: OwnedReport, ncmec_file_id: str, principal: RecordsReader, session: DbSession,
                           store: Store, engine: Annotated[Engine, Depends(get_engine)], audit: AuditTrail
                           ) -> StreamingResponse:
    row = session.exec(select(FiledFile).where(FiledFile.report_pk == report.id,
                                               FiledFile.ncmec_file_id == ncmec_file_id)).first()
    if row is None:
        raise ProblemError(404, "No such file in this report")
    served = await evidence_response(store, engine, audit, principal, sha256=row.evidence_sha256,
                                     ref=report.workflow_id, media_id=row.media_id)
    if _kind(row) == "conversation":
        # Sniffing knows images and videos; a conversation is the CSV Tipline wrote.
        served.headers["Content-Type"] = "text/csv; charset=utf-8"
        served.headers["Content-Disposition"] = f'attachment; filename="conversation-{row.ncmec_file_id}.csv"'
    return served


def _kind(row: FiledFile) -> str:
    if row.media_id.startswith(CONVERSATION_PREFIX):
        return "conversation"
    return "media" if row.file_relevance == FileRelevance.REPORTED.value else "supplemental"


def reported_users(report_xml: str) -> list[ReportedUser]:
    """Who the report names: read back from the XML that was filed, so it is exactly what NCMEC got."""
    try:
        root = parse_xml(report_xml)
    except XmlRefused:
        return []

    def texts(node: object, path: str) -> list[str]:
        return [t.strip() for t in node.xpath(path) if isinstance(t, str) and t.strip()]  # type: ignore[attr-defined]

    users = []
    for person in root.xpath("//*[local-name()='personOrUserReported']"):
        esp, screen = (texts(person, f"./*[local-name()='{name}']/text()") for name in ("espIdentifier", "screenName"))
        users.append(ReportedUser(esp_identifier=esp[0] if esp else None, screen_name=screen[0] if screen else None,
                                  emails=texts(person, ".//*[local-name()='email']/text()")))
    return users


def _report_out(session: Session, report: FiledReport) -> ReportOut:
    files = session.exec(select(FiledFile).where(FiledFile.report_pk == report.id).order_by(col(FiledFile.id))).all()
    assert report.id is not None
    return ReportOut(
        id=report.id, case_ref=report.workflow_id, case_number=report.case_number,
        ncmec_environment=report.ncmec_environment, ncmec_report_id=report.ncmec_report_id,
        status=ReportStatus(report.status), submitted_by=report.submitted_by, opened_at=report.opened_at,
        escalation_reason=report.escalation_reason, urgency_suggestion=report.urgency_suggestion,
        urgency_outcome=report.urgency_outcome,
        finished_at=report.finished_at, failure_reason=report.failure_reason,
        test=report.ncmec_environment != NcmecEnvironment.PRODUCTION.value,
        reported_users=reported_users(report.report_xml),
        files=[ReportFileOut(media_id=f.media_id, ncmec_file_id=f.ncmec_file_id, md5=f.md5,
                             evidence_sha256=f.evidence_sha256, file_relevance=f.file_relevance,
                             uploaded_at=f.uploaded_at, file_details_sent=f.file_details_xml is not None,
                             kind=_kind(f), content_url=f"/v1/reports/{report.id}/files/{f.ncmec_file_id}/content")
               for f in files],
    )
