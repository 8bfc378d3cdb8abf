"""The four ways into the NCMEC queue, end to end from the platform API, each with the reasons recorded."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine

from detection.banks import BankRepository, NewEntry
from detection.classifier import Priority, make_sandbox_image
from detection.media_hashes import hash_media
from models.records import Role
from tests.helpers import SCREENING_ORG as ORG
from tests.helpers import FakePlatform, eventually, fake_platform
from tests.helpers import headers as org_headers
from tipline.settings import Settings
from tipline.synthetic import synthetic_image


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[FakePlatform]:
    async with fake_platform() as served:
        yield served


def headers(api_keys: dict, role: Role) -> dict[str, str]:
    return org_headers(api_keys, role, ORG)


def item(platform: FakePlatform, data: bytes, **extra: object) -> dict:
    name = uuid.uuid4().hex[:12]
    return {"content_id": f"c-{name}", "creator_id": f"user-{name}", "media_url": platform.add_bytes(name, data),
            **extra}


async def outcome_of(api: httpx.AsyncClient, api_keys: dict, screening_ref: str) -> dict:
    async def done() -> dict | None:
        response = await api.get(f"/v1/screenings/{screening_ref}", headers=headers(api_keys, Role.ADMIN))
        return response.json() if response.status_code == 200 and response.json() else None

    return await eventually(done, timeout=30, what="the screening outcome")


async def case_item(api: httpx.AsyncClient, api_keys: dict, case_ref: str, content_id: str,
                    reasons: int = 1) -> dict:
    async def present() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()
        found = next((m for m in case.get("media", []) if m["media_id"] == content_id), None)
        return found if found and len(found["reasons"]) >= reasons else None

    return await eventually(present, what="the item in its case")


async def screen(api: httpx.AsyncClient, api_keys: dict, body: dict) -> str:
    response = await api.post("/v1/screenings", json=body, headers=headers(api_keys, Role.PLATFORM))
    assert response.status_code == 202, response.text
    return response.json()["screening_ref"]


async def test_a_near_duplicate_of_a_banked_image_goes_to_the_ncmec_queue(
    api: httpx.AsyncClient, api_keys: dict, engine: Engine, platform: FakePlatform
) -> None:
    original = synthetic_image(9001, size=(512, 384))
    bank = BankRepository(engine).create_bank(ORG, f"known-{uuid.uuid4().hex[:6]}")
    pdq = hash_media(original).image.pdq
    BankRepository(engine).add_entries(bank, [NewEntry("pdq", pdq, external_id="known-1", classification="A1")])
    smaller = io.BytesIO()
    Image.open(io.BytesIO(original)).convert("RGB").resize((256, 192)).save(smaller, format="JPEG", quality=80)

    body = item(platform, smaller.getvalue())
    outcome = await outcome_of(api, api_keys, await screen(api, api_keys, body))

    assert outcome["route"] == "ncmec" and outcome["analysis"]["matches"][0]["bank_name"] == bank.name
    media = await case_item(api, api_keys, outcome["case_ref"], body["content_id"])
    [reason] = media["reasons"]
    assert reason["kind"] == "hash_match" and bank.name in reason["detail"] and "distance" in reason["detail"]
    assert media["analysis"]["pdq"]


async def test_a_very_high_classifier_priority_goes_to_the_ncmec_queue(
    api: httpx.AsyncClient, api_keys: dict, platform: FakePlatform
) -> None:
    body = item(platform, make_sandbox_image(Priority.VERY_HIGH, seed=1))
    outcome = await outcome_of(api, api_keys, await screen(api, api_keys, body))
    assert outcome["route"] == "ncmec" and outcome["analysis"]["classifier_priority"] == "VERY_HIGH"
    media = await case_item(api, api_keys, outcome["case_ref"], body["content_id"])
    assert [(r["kind"], r["detail"]) for r in media["reasons"]] == [("classifier", "VERY_HIGH")]


async def test_the_triage_band_waits_for_a_reviewer_who_escalates_or_dismisses(
    api: httpx.AsyncClient, api_keys: dict, platform: FakePlatform
) -> None:
    reviewer = headers(api_keys, Role.CHILD_SAFETY_MODERATOR)
    escalated, dismissed = item(platform, make_sandbox_image(Priority.HIGH, seed=2)), item(
        platform, make_sandbox_image(Priority.HIGH, seed=3))
    refs = [await screen(api, api_keys, escalated), await screen(api, api_keys, dismissed)]
    for ref in refs:
        assert (await outcome_of(api, api_keys, ref))["route"] == "triage"

    async def both_in_triage() -> list | None:
        queue = {e["screening_ref"]: e for e in (await api.get("/v1/triage", headers=reviewer)).json()}
        return [queue[r] for r in refs] if all(r in queue for r in refs) else None

    entries = await eventually(both_in_triage, what="both items in the triage queue")
    assert all(e["classifier_priority"] == "HIGH" for e in entries)
    seen = await api.get(entries[0]["content_url"], headers=reviewer)
    assert seen.content == platform.media[escalated["media_url"].rsplit("/", 1)[1]]
    assert (await api.get("/v1/triage", headers=headers(api_keys, Role.MODERATOR))).status_code == 403

    up = await api.post(f"/v1/triage/{refs[0]}/escalation", json={"reason": "looks like a minor"}, headers=reviewer)
    down = await api.post(f"/v1/triage/{refs[1]}/dismissal", json={"reason": "benign pattern"}, headers=reviewer)
    assert up.status_code == down.status_code == 200, (up.text, down.text)
    again = await api.post(f"/v1/triage/{refs[1]}/escalation", json={}, headers=reviewer)
    assert again.status_code == 409

    async def escalated_done() -> dict | None:
        result = (await api.get(f"/v1/screenings/{refs[0]}", headers=reviewer)).json()
        return result if result.get("case_ref") else None

    outcome = await eventually(escalated_done, what="the escalation's case")
    media = await case_item(api, api_keys, outcome["case_ref"], escalated["content_id"], reasons=2)
    kinds = {(r["kind"], r["detail"], r["by"]) for r in media["reasons"]}
    assert ("classifier", "HIGH", None) in kinds
    assert any(k == "manual_escalation" and d == "looks like a minor" and by.startswith("child_safety_moderator:")
               for k, d, by in kinds)

    async def dismissed_listed() -> bool:
        listed = (await api.get("/v1/triage?status=dismissed", headers=reviewer)).json()
        return refs[1] in [e["screening_ref"] for e in listed]

    await eventually(dismissed_listed, what="the dismissal recorded")


async def test_a_low_priority_item_goes_nowhere(api: httpx.AsyncClient, api_keys: dict, platform: FakePlatform) -> None:
    outcome = await outcome_of(api, api_keys, await screen(api, api_keys, item(platform, make_sandbox_image(
        Priority.LOW, seed=4))))
    assert outcome["route"] == "clear" and outcome["case_ref"] is None


async def test_a_user_report_with_a_csam_reason_goes_straight_to_the_queue(
    api: httpx.AsyncClient, api_keys: dict, platform: FakePlatform
) -> None:
    body = item(platform, make_sandbox_image(Priority.VERY_LOW, seed=5), reporter_id="reporter-77",
                reason="Child sexual exploitation", csam=True, report_text="This is a child.")
    response = await api.post("/v1/user-reports", json=body, headers=headers(api_keys, Role.PLATFORM))
    assert response.status_code == 202 and response.json()["route"] == "ncmec"
    media = await case_item(api, api_keys, response.json()["case_ref"], body["content_id"])
    assert [(r["kind"], r["detail"], r["by"]) for r in media["reasons"]] == [
        ("user_report", "Child sexual exploitation", "reporter-77")]

    other = item(platform, make_sandbox_image(Priority.VERY_LOW, seed=6), reporter_id="r-2", reason="Spam",
                 csam=False)
    routed = await api.post("/v1/user-reports", json=other, headers=headers(api_keys, Role.PLATFORM))
    assert routed.json()["route"] == "screening"
    assert (await outcome_of(api, api_keys, routed.json()["screening_ref"]))["route"] == "clear"


async def test_a_reviewer_escalates_any_item_by_hand(api: httpx.AsyncClient, api_keys: dict,
                                                     platform: FakePlatform) -> None:
    body = item(platform, synthetic_image(77), reason="Seen during a routine review")
    response = await api.post("/v1/escalations", json=body, headers=headers(api_keys, Role.MODERATOR_MANAGER))
    assert response.status_code == 202, response.text
    media = await case_item(api, api_keys, response.json()["case_ref"], body["content_id"])
    [reason] = media["reasons"]
    assert reason["kind"] == "manual_escalation" and reason["by"].startswith("moderator_manager:")
    refused = await api.post("/v1/escalations", json=body, headers=headers(api_keys, Role.MODERATOR))
    assert refused.status_code == 403


async def test_an_item_without_a_user_is_refused_with_the_field_named(api: httpx.AsyncClient, api_keys: dict) -> None:
    response = await api.post("/v1/screenings", json={"content_id": "c-1", "media_url": "http://127.0.0.1:9/x"},
                              headers=headers(api_keys, Role.PLATFORM))
    assert response.status_code == 422
    assert "body.creator_id" in [e["field"] for e in response.json()["errors"]]


async def test_an_item_sent_with_its_bytes_is_screened_like_one_sent_by_url(
    api: httpx.AsyncClient, api_keys: dict
) -> None:
    name = uuid.uuid4().hex[:12]
    image = make_sandbox_image(Priority.VERY_HIGH, seed=4)
    response = await api.post("/v1/screenings/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": f"c-{name}", "creator_id": f"user-{name}"},
                              files={"file": ("photo.png", image, "image/png")})
    assert response.status_code == 202, response.text
    outcome = await outcome_of(api, api_keys, response.json()["screening_ref"])
    assert outcome["route"] == "ncmec" and outcome["analysis"]["classifier_priority"] == "VERY_HIGH"
    media = await case_item(api, api_keys, outcome["case_ref"], f"c-{name}")
    assert [r["kind"] for r in media["reasons"]] == ["classifier"]
    preserved = await api.get(media["content_url"], headers=headers(api_keys, Role.ADMIN))
    assert preserved.content == image


async def test_an_unauthenticated_upload_is_refused_before_anything_is_stored(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    def stored() -> int:
        return sum(1 for path in settings.resolved_evidence_dir.rglob("*") if path.is_file())

    before = stored()
    for path in ("/v1/screenings/upload", "/v1/content/upload"):
        response = await api.post(path, data={"content_id": "c", "creator_id": "u"},
                                  files={"file": ("x.png", synthetic_image(5), "image/png")})
        assert response.status_code == 401, response.text
    assert stored() == before
