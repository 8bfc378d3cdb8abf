"""From a platform's content to a finished CyberTip at the sandbox, through the API, Temporal and PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
from lxml import etree

from cybertipline.xsd import load_schema, schema_errors
from models.records import Role
from tests.helpers import Sandbox, eventually, fake_platform, headers

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"


async def test_three_items_become_one_case_and_one_finished_cybertip(
    api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox, xsd_path
) -> None:
    platform_key = headers(api_keys, Role.PLATFORM)
    reviewer_key = headers(api_keys, Role.CHILD_SAFETY_MODERATOR)
    creator = f"user-{uuid.uuid4().hex[:8]}"
    async with fake_platform() as platform:
        items = [
            {"content_id": f"{creator}-post-{n}", "creator_id": creator, "media_url": platform.add(f"{creator}-{n}", n),
             "file_name": f"upload-{n}.png", "content_type": "image/png", "upload_ip": f"192.0.2.{n}",
             "uploaded_at": f"2026-01-0{n}T10:00:00+00:00"}
            for n in (1, 2, 3)
        ]
        first = await api.post("/v1/content/batch", json={"items": items[:2]}, headers=platform_key)
        second = await api.post("/v1/content/batch", json={"items": items[1:]}, headers=platform_key)
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        case_ref = first.json()["accepted"][0]["case_ref"]
        assert {a["case_ref"] for a in first.json()["accepted"] + second.json()["accepted"]} == {case_ref}
        assert creator not in case_ref

        async def preserved_case() -> dict | None:
            case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer_key)).json()
            media = case.get("media", [])
            return case if len(media) == 3 and all(m["evidence"] for m in media) else None

        case = await eventually(preserved_case, what="three preserved media in one case")

    assert [m["media_id"] for m in case["media"]] == [i["content_id"] for i in items]

    async def queued() -> list[dict]:
        # The queue row is published after the media are hashed, a moment after the query shows them preserved.
        queue = (await api.get("/v1/cases", headers=reviewer_key)).json()
        return [entry for entry in queue if entry["case_ref"] == case_ref and entry["media_count"] == 3]

    await eventually(queued, what="the case in the reviewer queue")
    queue = (await api.get("/v1/cases", headers=reviewer_key)).json()
    assert [entry["case_ref"] for entry in queue].count(case_ref) == 1
    assert next(e for e in queue if e["case_ref"] == case_ref)["media_count"] == 3

    viewed = await api.get(case["media"][0]["content_url"], headers=reviewer_key)
    assert viewed.status_code == 200 and viewed.content.startswith(b"\x89PNG")

    one, two, three = (m["media_id"] for m in case["media"])
    decision = {
        "case_number": 1,
        "incident_type": INCIDENT,
        "media": [
            {"media_id": one, "reported": True, "classification": "A1", "annotations": ["infant", "generativeAi"]},
            {"media_id": two, "reported": True, "classification": "B2", "annotations": []},
            {"media_id": three, "reported": False},
        ],
        "report_annotations": ["sextortion"],
        "additional_info": "Synthetic test case.",
    }
    accepted = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer_key)
    assert accepted.status_code == 200, accepted.text
    # The answer comes once the case shows the decision (it applies it a task later): a reload sees it decided.
    reloaded = (await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1}, headers=reviewer_key)).json()
    assert reloaded["status"] != "awaiting_review" and reloaded["decision"] is not None, reloaded["status"]

    async def filed_case() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer_key)).json()
        return case if case["status"] in ("filed", "needs_attention") else None

    case = await eventually(filed_case, what="the case to be filed")
    assert case["status"] == "filed", case["attention_reason"]
    report_id = case["filing"]["report_id"]

    at_sandbox = [r for r in await sandbox.reports() if r["report_id"] == report_id]
    assert len(at_sandbox) == 1 and at_sandbox[0]["status"] == "finished"
    report = at_sandbox[0]
    schema = load_schema(xsd_path)
    assert schema_errors(report["report_xml"].encode(), schema) == []
    assert len(report["files"]) == 2
    details = {f["file_id"]: etree.fromstring(f["file_details_xml"].encode()) for f in report["files"]}
    for document in details.values():
        assert schema_errors(etree.tostring(document), schema) == []
    by_name = {d.findtext("originalFileName"): d for d in details.values()}
    assert set(by_name) == {"upload-1.png", "upload-2.png"}
    assert by_name["upload-1.png"].findtext("industryClassification") == "A1"
    assert sorted(c.tag for c in by_name["upload-1.png"].find("fileAnnotations")) == ["generativeAi", "infant"]
    assert by_name["upload-2.png"].findtext("industryClassification") == "B2"
    assert by_name["upload-2.png"].find("fileAnnotations") is None
    assert by_name["upload-1.png"].findtext("ipCaptureEvent/ipAddress") == "192.0.2.1"

    records = (await api.get("/v1/reports", headers=reviewer_key)).json()
    record = next(r for r in records if r["case_ref"] == case_ref)
    assert record["ncmec_report_id"] == report_id and record["status"] == "finished"
    assert record["ncmec_environment"] == "sandbox"
    assert sorted(f["ncmec_file_id"] for f in record["files"]) == sorted(details)
    assert sorted(f["media_id"] for f in record["files"]) == [one, two]
    xml = await api.get(f"/v1/reports/{record['id']}/xml", headers=reviewer_key)
    assert xml.text == report["report_xml"]
    receipt = await api.get(f"/v1/reports/{record['id']}/receipt", headers=reviewer_key)
    assert etree.fromstring(receipt.content).tag == "reportDoneResponse"
    auditor = await api.get(f"/v1/reports/{record['id']}", headers=headers(api_keys, Role.AUDITOR))
    assert auditor.status_code == 200


async def test_uploaded_media_is_preserved_before_the_case_sees_it(api: httpx.AsyncClient, api_keys: dict) -> None:
    from tipline.synthetic import synthetic_image

    creator = f"user-{uuid.uuid4().hex[:8]}"
    image = synthetic_image(42)
    response = await api.post(
        "/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
        data={"content_id": "upload-1", "creator_id": creator},
        files={"file": ("holiday.png", image, "image/png")},
    )
    assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]
    reviewer = headers(api_keys, Role.ADMIN)

    async def case_with_media() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return case if case.get("media") else None

    case = await eventually(case_with_media, what="the uploaded item in its case")
    assert case["media"][0]["evidence"]["size"] == len(image)
    content = await api.get(case["media"][0]["content_url"], headers=reviewer)
    assert content.content == image
