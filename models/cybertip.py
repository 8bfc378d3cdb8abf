"""What Tipline puts in a CyberTip: a case, its decision and the org's settings, mapped onto NCMEC's
report model (``cybertipline.report_model``). Pure functions; the filing activities call them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cybertipline.enums import FileRelevance, IpEventName
from cybertipline.file_details_model import FileDetails
from cybertipline.report_model import Report
from cybertipline.report_xml import parse_file_details, parse_report
from models.filing import FileDetailsInput, OpenReportInput
from tipline.settings import OrgSettings


def compose_report(org: OrgSettings, request: OpenReportInput, *, now: datetime) -> Report:
    decision = request.decision
    # NCMEC refuses an incident time that is not in the past; clocks of platforms drift.
    incident_at = min(request.incident_at, now - timedelta(seconds=1))
    reporter = org.reporter
    return parse_report({
        "incident_summary": _without_none({
            "incident_type": decision.incident_type,
            "platform": org.platform_name,
            "escalate_to_high_priority": decision.escalate_to_high_priority,
            "report_annotations": {str(a): True for a in decision.report_annotations} or None,
            "incident_date_time": incident_at,
        }),
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
        "person_or_user_reported": [{
            "esp_identifier": request.user_id,
            "esp_service": org.platform_name,
            "prior_ct_reports": request.prior_report_ids,
        }],
        "additional_info": decision.additional_info,
    }, now=now)


def compose_file_details(request: FileDetailsInput) -> FileDetails:
    content = request.media.content
    evidence = request.media.evidence
    decision = request.decision
    hashes = [] if evidence is None else [
        {"hash_type": "MD5", "value": evidence.md5},
        {"hash_type": "SHA1", "value": evidence.sha1},
        {"hash_type": "SHA256", "value": evidence.sha256},
    ]
    upload_event = None
    if content.upload_ip:
        upload_event = _without_none({"ip_address": content.upload_ip, "event_name": IpEventName.UPLOAD,
                                      "date_time": content.uploaded_at})
    return parse_file_details(_without_none({
        "report_id": request.report_id,
        "file_id": request.file_id,
        "original_file_name": content.file_name,
        "uploaded_to_esp_timestamp": content.uploaded_at,
        "location_of_file": content.location_url,
        # A human reviewer classified it, so the provider has viewed it.
        "file_viewed_by_esp": True,
        "file_relevance": FileRelevance.REPORTED,
        "file_annotations": {str(a): True for a in decision.annotations} or None,
        "industry_classification": decision.classification,
        "original_file_hash": hashes,
        "ip_capture_event": upload_event,
    }))


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
