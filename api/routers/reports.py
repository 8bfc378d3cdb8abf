"""Records of filed CyberTips: what was sent to NCMEC, and what NCMEC answered."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from api.deps import DbSession, Principal, RecordsReader
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.requests import ReportId
from models.records import FiledFile, FiledReport, ReportStatus

router = APIRouter(prefix="/v1/reports", tags=["records"], responses=PROBLEM_RESPONSES)
XML_RESPONSE = {200: {"content": {"application/xml": {}}}}


class ReportFileOut(BaseModel):
    media_id: str
    ncmec_file_id: str
    md5: str
    evidence_sha256: str
    file_relevance: str
    uploaded_at: datetime
    file_details_sent: bool


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
    files: list[ReportFileOut]


@router.get("", response_model=list[ReportOut], summary="The org's CyberTips, newest first")
def list_reports(
    principal: RecordsReader, session: DbSession,
    status: Annotated[ReportStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ReportOut]:
    query = select(FiledReport).where(FiledReport.org_id == principal.org_id)
    if status is not None:
        query = query.where(FiledReport.status == status.value)
    reports = session.exec(query.order_by(col(FiledReport.opened_at).desc()).limit(limit)).all()
    return [_report_out(session, report) for report in reports]


@router.get("/{report_id}", response_model=ReportOut, summary="One CyberTip with its NCMEC file ids")
def get_report(report_id: ReportId, principal: RecordsReader, session: DbSession) -> ReportOut:
    return _report_out(session, _own_report(session, principal, report_id))


@router.get("/{report_id}/xml", response_class=Response, responses=XML_RESPONSE,
            summary="The report XML exactly as submitted")
def get_report_xml(report_id: ReportId, principal: RecordsReader, session: DbSession) -> Response:
    return Response(_own_report(session, principal, report_id).report_xml, media_type="application/xml")


@router.get("/{report_id}/receipt", response_class=Response, responses=XML_RESPONSE,
            summary="NCMEC's /finish answer, the provider's notification of receipt")
def get_report_receipt(report_id: ReportId, principal: RecordsReader, session: DbSession) -> Response:
    report = _own_report(session, principal, report_id)
    if report.finish_receipt_xml is None:
        raise ProblemError(404, "This report has no receipt", "it is not finished, or NCMEC's answer was lost")
    return Response(report.finish_receipt_xml, media_type="application/xml")


@router.get("/{report_id}/files/{ncmec_file_id}/details", response_class=Response, responses=XML_RESPONSE,
            summary="A file's fileDetails XML exactly as sent")
def get_file_details_xml(report_id: ReportId, ncmec_file_id: str, principal: RecordsReader,
                         session: DbSession) -> Response:
    report = _own_report(session, principal, report_id)
    row = session.exec(select(FiledFile).where(FiledFile.report_pk == report.id,
                                               FiledFile.ncmec_file_id == ncmec_file_id)).first()
    if row is None or row.file_details_xml is None:
        raise ProblemError(404, "No file details for that file in this report")
    return Response(row.file_details_xml, media_type="application/xml")


def _own_report(session: Session, principal: Principal, report_id: int) -> FiledReport:
    report = session.get(FiledReport, report_id)
    if report is None or report.org_id != principal.org_id:
        raise ProblemError(404, "No such report")
    return report


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
        files=[ReportFileOut(media_id=f.media_id, ncmec_file_id=f.ncmec_file_id, md5=f.md5,
                             evidence_sha256=f.evidence_sha256, file_relevance=f.file_relevance,
                             uploaded_at=f.uploaded_at, file_details_sent=f.file_details_xml is not None)
               for f in files],
    )
