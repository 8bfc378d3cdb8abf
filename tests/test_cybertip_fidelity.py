"""A case with every block filled is filed, and the stored XML carries every value the platform supplied."""

from __future__ import annotations

import uuid

import httpx
from lxml import etree

from cybertipline.xsd import load_schema, schema_errors
from models.records import Role
from tests.helpers import Sandbox, eventually, headers
from tests.metadata_fixtures import (
    assert_all_supplied_values_present,
    full_file,
    full_recipient,
    full_user,
    full_victim,
)
from tipline.synthetic import synthetic_image


async def test_every_block_the_platform_and_reviewer_fill_reaches_ncmec(
    api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox, xsd_path
) -> None:
    creator = f"user-{uuid.uuid4().hex[:10]}"
    platform = headers(api_keys, Role.PLATFORM)
    user, file_metadata = full_user(), full_file()
    first = await api.post("/v1/content/upload", headers=platform, data={
        "content_id": "photo-1", "creator_id": creator, "user": user.model_dump_json(),
        "file_metadata": file_metadata.model_dump_json(),
    }, files={"file": ("photo.jpg", synthetic_image(11, image_format="JPEG"), "image/jpeg")})
    assert first.status_code == 202, first.text
    second = await api.post("/v1/content/upload", headers=platform,
                            data={"content_id": "screenshot-1", "creator_id": creator},
                            files={"file": ("screenshot.png", synthetic_image(12), "image/png")})
    assert second.status_code == 202, second.text
    case_ref = first.json()["case_ref"]
    reviewer = headers(api_keys, Role.CHILD_SAFETY_MODERATOR)

    async def both_items() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return len(case.get("media", [])) == 2

    await eventually(both_items, what="both items in the case")
    victim, recipient = full_victim(), full_recipient()
    decision = {
        "case_number": 1,
        "incident_type": "Online Enticement of Children for Sexual Acts",
        "media": [
            {"media_id": "photo-1", "reported": True, "classification": "A2",
             "annotations": ["possibleSelfProduction", "viral"]},
            {"media_id": "screenshot-1", "reported": False, "supplemental": True},
        ],
        "report_annotations": ["sextortion", "minorToMinorInteraction"],
        "escalate_to_high_priority": "Synthetic test: the reviewer marks this urgent.",
        "additional_info": "Synthetic test report with every block filled.",
        "victims": [victim.model_dump(mode="json")],
        "intended_recipients": [recipient.model_dump(mode="json")],
    }
    response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)
    assert response.status_code == 200, response.text

    async def filed() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        assert case["status"] != "needs_attention", case["attention_reason"]
        return case if case["status"] == "filed" else None

    case = await eventually(filed, what="the filed case")
    [report] = [r for r in await sandbox.reports() if r["report_id"] == case["filing"]["report_id"]]
    schema = load_schema(xsd_path)
    report_xml = report["report_xml"].encode()
    assert schema_errors(report_xml, schema) == []
    for supplied in (user, victim, recipient):
        assert_all_supplied_values_present(supplied, report_xml)
    root = etree.fromstring(report_xml)
    assert root.findtext("personOrUserReported/espIdentifier") == creator
    assert root.findtext("incidentSummary/escalateToHighPriority") == decision["escalate_to_high_priority"]
    assert {e.tag for e in root.find("incidentSummary/reportAnnotations")} == {"sextortion", "minorToMinorInteraction"}

    details = {etree.fromstring(f["file_details_xml"].encode()).findtext("fileRelevance"): f["file_details_xml"]
               for f in report["files"]}
    assert set(details) == {"Reported", "Supplemental Reported"}
    reported = details["Reported"].encode()
    assert schema_errors(reported, schema) == []
    assert_all_supplied_values_present(file_metadata, reported)
    assert etree.fromstring(reported).findtext("industryClassification") == "A2"
    supplemental = etree.fromstring(details["Supplemental Reported"].encode())
    assert supplemental.find("industryClassification") is None and supplemental.find("fileAnnotations") is None


async def test_bad_platform_metadata_is_refused_with_the_field_named(api: httpx.AsyncClient, api_keys: dict) -> None:
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM), data={
        "content_id": "c-1", "creator_id": "u-1",
        "user": '{"ip_events": [{"ip_address": "not-an-ip", "event": "Login"}]}',
    }, files={"file": ("a.png", synthetic_image(1), "image/png")})
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert any("ip_events" in f and "ip_address" in f for f in fields), fields
