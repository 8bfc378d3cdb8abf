"""Signed enrichment before filing, and conversation threads filed as supplemental CSV files."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
import pytest
from lxml import etree
from sqlalchemy import Engine
from sqlmodel import Session, select

from cybertipline.xsd import load_schema, schema_errors
from models.records import FiledFile, FiledReport, Role
from tests.helpers import OTHER_ORG, PlatformCallbacks, Sandbox, eventually, headers
from tipline.evidence import EvidenceStore
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

INCIDENT = "Online Enticement of Children for Sexual Acts"


async def case_with_one_item(api: httpx.AsyncClient, api_keys: dict, org: str) -> tuple[str, str]:
    creator = f"user-{uuid.uuid4().hex[:10]}"
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM, org=org),
                              data={"content_id": "item-1", "creator_id": creator},
                              files={"file": ("a.png", synthetic_image(21), "image/png")})
    assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]

    async def ready() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN, org=org))).json()
        return bool(case.get("media"))

    await eventually(ready, what="the case")
    return case_ref, creator


async def decide(api: httpx.AsyncClient, api_keys: dict, case_ref: str, org: str, **extra: object) -> None:
    decision = {"case_number": 1, "incident_type": INCIDENT, "media": [{"media_id": "item-1", "reported": True}],
                **extra}
    response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision,
                              headers=headers(api_keys, Role.ADMIN, org=org))
    assert response.status_code == 200, response.text


async def case_state(api: httpx.AsyncClient, api_keys: dict, case_ref: str, org: str) -> dict:
    return (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN, org=org))).json()


@pytest.mark.parametrize(("failure", "visible"), [("down", "HTTP 503"), ("forged", "signature mismatch"),
                                                 ("replayed", "the answer is for another request")])
async def test_filing_waits_visibly_until_the_platform_answers_with_a_good_signature(
    api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox, platform_callbacks: PlatformCallbacks,
    failure: str, visible: str,
) -> None:
    platform_callbacks.mode = failure
    try:
        case_ref, creator = await case_with_one_item(api, api_keys, OTHER_ORG)
        await decide(api, api_keys, case_ref, OTHER_ORG)

        async def waiting() -> dict | None:
            case = await case_state(api, api_keys, case_ref, OTHER_ORG)
            return case if case["waiting_reason"] else None

        case = await eventually(waiting, what="the visible waiting reason")
        assert visible in case["waiting_reason"] and case["status"] == "filing"
        assert case["filing"]["report_id"] is None  # nothing goes to NCMEC without the platform's answer
    finally:
        platform_callbacks.mode = "up"

    async def filed() -> dict | None:
        case = await case_state(api, api_keys, case_ref, OTHER_ORG)
        return case if case["status"] == "filed" else None

    case = await eventually(filed, what="filing once the platform answers")
    assert case["waiting_reason"] is None
    [report] = [r for r in await sandbox.reports() if r["report_id"] == case["filing"]["report_id"]]
    root = etree.fromstring(report["report_xml"].encode())
    assert root.findtext("personOrUserReported/screenName") == f"enriched-{creator}"
    assert root.findtext("personOrUserReported/personOrUserReportedPerson/email") == "enriched.user@example.com"
    assert platform_callbacks.verified_requests > 0


async def test_an_attached_conversation_is_filed_as_a_supplemental_csv(
    api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox, engine: Engine, settings: Settings, xsd_path
) -> None:
    case_ref, creator = await case_with_one_item(api, api_keys, "acme")
    messages = [
        {"message_id": "m2", "sent_at": "2026-01-02T10:05:00+00:00", "sender": creator, "recipient": "friend-1",
         "content": 'second, with "quotes", commas\nand a newline', "ip_address": "192.0.2.7"},
        {"message_id": "m1", "sent_at": "2026-01-02T10:00:00+00:00", "sender": "friend-1", "recipient": creator,
         "content": "=HYPERLINK(\"http://example.com\")"},
    ]
    sent = await api.post("/v1/content/conversations", headers=headers(api_keys, Role.PLATFORM),
                          json={"creator_id": creator, "thread_id": "thread-9", "messages": messages})
    assert sent.status_code == 202 and sent.json()["case_ref"] == case_ref

    async def has_thread() -> bool:
        return bool((await case_state(api, api_keys, case_ref, "acme"))["conversations"])

    await eventually(has_thread, what="the conversation in the case")
    bad = await api.post(f"/v1/cases/{case_ref}/decision", headers=headers(api_keys, Role.ADMIN), json={
        "case_number": 1,
        "incident_type": INCIDENT, "media": [], "attach_conversations": ["no-such-thread"]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "attach_conversations[0]"
    await decide(api, api_keys, case_ref, "acme", attach_conversations=["thread-9"])

    async def filed() -> dict | None:
        case = await case_state(api, api_keys, case_ref, "acme")
        return case if case["status"] == "filed" else None

    case = await eventually(filed, what="the filed case")
    [report] = [r for r in await sandbox.reports() if r["report_id"] == case["filing"]["report_id"]]
    conversation = [f for f in report["files"] if f["filename"] == "conversation-thread-9.csv"]
    assert len(conversation) == 1 and len(report["files"]) == 2
    details = conversation[0]["file_details_xml"].encode()
    assert schema_errors(details, load_schema(xsd_path)) == []
    assert etree.fromstring(details).findtext("fileRelevance") == "Supplemental Reported"

    with Session(engine) as session:
        row = session.exec(select(FiledFile).join(FiledReport, FiledFile.report_pk == FiledReport.id).where(
            FiledReport.workflow_id == case_ref, FiledFile.media_id == "conversation:thread-9")).one()
    assert row.md5 == conversation[0]["md5"]
    rows = list(csv.reader(io.StringIO(EvidenceStore.from_settings(settings)
                                       .read_bytes(row.evidence_sha256).decode("utf-8"))))
    assert rows[0] == ["time", "sender", "recipient", "content", "type", "ip"]
    assert [r[3] for r in rows[1:]] == ["'=HYPERLINK(\"http://example.com\")", messages[0]["content"]]


async def test_a_new_case_gathers_every_media_item_the_platform_has_for_the_user(
    api: httpx.AsyncClient, api_keys: dict, platform_callbacks: PlatformCallbacks
) -> None:
    creator = f"user-{uuid.uuid4().hex[:10]}"
    for name, seed in (("old-1", 31), ("old-2", 32)):
        platform_callbacks.files[f"{creator}-{name}"] = synthetic_image(seed)

    def listed(name: str) -> dict:
        return {"content_id": name, "media_url": f"{platform_callbacks.files_url}/{creator}-{name}",
                "file_name": f"{name}.png", "content_type": "image/png"}

    # Two pages; the platform has already deleted old-3, and item-1 (the item being sent) is listed too.
    platform_callbacks.user_media[creator] = [[listed("old-1"), listed("item-1")], [listed("old-2"), listed("old-3")]]
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM, org=OTHER_ORG),
                              # Not an image reported earlier (it would match the org's own bank as soon as hashed).
                              data={"content_id": "item-1", "creator_id": creator},
                              files={"file": ("a.png", synthetic_image(24), "image/png")})
    case_ref = response.json()["case_ref"]

    async def gathered() -> dict | None:
        case = await case_state(api, api_keys, case_ref, OTHER_ORG)
        media = {m["media_id"]: m for m in case.get("media", [])}
        settled = len(media) == 4 and all(m["evidence"] or m["preservation_error"] for m in media.values())
        return media if settled and case["media_listed"] else None

    media = await eventually(gathered, what="the user's media from the platform")
    assert media["old-1"]["evidence"] and media["old-2"]["evidence"]
    assert media["old-3"]["evidence"] is None and "no longer has this media" in media["old-3"]["preservation_error"]
    assert [r["kind"] for r in media["item-1"]["reasons"]] == ["platform_signal", "associated_media"]
    assert [r["kind"] for r in media["old-1"]["reasons"]] == ["associated_media"]
