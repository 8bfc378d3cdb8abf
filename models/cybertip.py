"""What Tipline puts in a CyberTip: a case, its decision, what the platform said and the org's settings,
mapped onto NCMEC's report model (``cybertipline.report_model``). Pure functions; the filing activities
call them. Who-is-who blocks come from ``models.reported_user``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cybertipline.enums import FileRelevance
from cybertipline.file_details_model import FileDetails
from cybertipline.report_model import Report
from cybertipline.report_xml import parse_file_details, parse_report
from models.case import ContentItem
from models.conversation_csv import supplemental_file_details_fields
from models.filing import ConversationDetailsInput, FileDetailsInput, OpenReportInput
from models.platform_metadata import FileMetadata
from models.reported_user import file_metadata_fields, intended_recipient_block, reported_user_block, victim_block
from tipline.settings import InternetDetailKind, OrgSettings


def compose_report(org: OrgSettings, request: OpenReportInput, *, now: datetime) -> Report:
    decision = request.decision
    # NCMEC refuses an incident time that is not in the past; clocks of platforms drift.
    incident_at = min(request.incident_at, now - timedelta(seconds=1))
    reporter = org.reporter
    return parse_report(_without_none({
        "incident_summary": _without_none({
            "incident_type": decision.incident_type,
            "platform": org.platform_name,
            "escalate_to_high_priority": decision.escalate_to_high_priority,
            "report_annotations": {str(a): True for a in decision.report_annotations} or None,
            "incident_date_time": incident_at,
        }),
        "internet_details": _internet_details(org, request.location_urls),
        "reporter": _without_none({
            "reporting_person": _without_none({
                "first_name": reporter.first_name,
                "last_name": reporter.last_name,
                "phone": [{"value": reporter.phone}] if reporter.phone else [],
                "email": [{"value": reporter.email}],
            }),
            "company_template": org.company_template,
            "terms_of_service": org.terms_of_service,
            "legal_url": org.legal_url,
        }),
        "person_or_user_reported": [
            reported_user_block(request.user_id, request.user_metadata, request.prior_report_ids, org.platform_name)
        ],
        "intended_recipient": [intended_recipient_block(r) for r in decision.intended_recipients],
        "victim": [victim_block(v) for v in decision.victims],
        "additional_info": decision.additional_info,
    }), now=now)


def compose_file_details(request: FileDetailsInput) -> FileDetails:
    evidence = request.media.evidence
    decision = request.decision
    hashes = [] if evidence is None else [
        {"hash_type": "MD5", "value": evidence.md5},
        {"hash_type": "SHA1", "value": evidence.sha1},
        {"hash_type": "SHA256", "value": evidence.sha256},
    ]
    analysis = request.media.analysis
    if analysis is not None and analysis.pdq is not None:
        hashes.append({"hash_type": "PDQ", "value": analysis.pdq})
    relevance = FileRelevance.REPORTED if decision.reported else FileRelevance.SUPPLEMENTAL_REPORTED
    return parse_file_details(_without_none({
        **file_metadata_fields(effective_file_metadata(request.media.content)),
        "report_id": request.report_id,
        "file_id": request.file_id,
        # From the view log at decision time; decisions recorded before views were counted were taken as viewed.
        "file_viewed_by_esp": decision.viewed is not False,
        "file_relevance": relevance,
        "file_annotations": {str(a): True for a in decision.annotations} or None,
        "industry_classification": decision.classification,
        "original_file_hash": hashes,
    }))


def conversation_media_id(thread_id: str) -> str:
    """How a conversation CSV is named among a report's files in Tipline's records."""
    return f"conversation:{thread_id}"


def compose_conversation_details(request: ConversationDetailsInput) -> FileDetails:
    evidence = request.evidence
    return parse_file_details({
        **supplemental_file_details_fields(f"conversation-{request.thread_id}.csv"),
        "report_id": request.report_id,
        "file_id": request.file_id,
        "original_file_hash": [{"hash_type": "MD5", "value": evidence.md5},
                               {"hash_type": "SHA1", "value": evidence.sha1}],
    })


def effective_file_metadata(content: ContentItem) -> FileMetadata:
    """The platform's file metadata, with the item's own top-level fields filling what it left out."""
    own = {"original_file_name": content.file_name, "uploaded_at": content.uploaded_at,
           "location_url": content.location_url, "upload_ip": content.upload_ip}
    given = content.file.model_dump(exclude_none=True) if content.file else {}
    return FileMetadata.model_validate({**_without_none(own), **given})


def _internet_details(org: OrgSettings, location_urls: list[str]) -> list[dict[str, Any]]:
    if org.internet_detail is InternetDetailKind.WEB_PAGE and location_urls:
        return [{"web_page_incident": {"url": sorted(set(location_urls))}}]
    if org.internet_detail is InternetDetailKind.CHAT_IM:
        return [{"chat_im_incident": _without_none({"chat_client": org.platform_name})}]
    return []


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None and value != []}
