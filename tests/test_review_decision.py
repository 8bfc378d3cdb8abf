"""The decision update's validator refuses what NCMEC would refuse, and the case keeps waiting unchanged."""

from __future__ import annotations

import uuid

import httpx
import pytest

from models.records import Role
from tests.helpers import eventually, headers
from tipline.synthetic import synthetic_image

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"


@pytest.fixture
async def waiting_case(api: httpx.AsyncClient, api_keys: dict) -> tuple[str, str]:
    creator = f"user-{uuid.uuid4().hex[:8]}"
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": "m1", "creator_id": creator},
                              files={"file": ("a.png", synthetic_image(7), "image/png")})
    case_ref = response.json()["case_ref"]
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER)

    async def ready() -> bool:
        # Settled: preserved, hashed and matched, so any later change would come from the decision.
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return bool(case.get("media")) and case["media"][0]["analysis"] is not None

    await eventually(ready, what="the case")
    return case_ref, "m1"


@pytest.mark.parametrize(("decision", "field"), [
    ({"case_number": 1, "media": [{"media_id": "m1", "reported": True}]}, "incident_type"),
    ({"case_number": 1, "incident_type": INCIDENT, "media": [{"media_id": "nope", "reported": True}]},
     "media[0].media_id"),
    ({"case_number": 1, "incident_type": INCIDENT,
      "media": [{"media_id": "m1", "reported": False, "classification": "A1"}]}, "media[0].classification"),
    ({"case_number": 1, "incident_type": INCIDENT, "media": [{"media_id": "m1", "reported": True}],
      "escalate_to_high_priority": "x" * 3001}, "escalate_to_high_priority"),
    ({"case_number": 1, "incident_type": INCIDENT, "media": [{"media_id": "m1", "reported": True}],
      "additional_info": "   "}, "additional_info"),
])
async def test_a_bad_decision_is_refused_and_the_case_keeps_waiting(
    api: httpx.AsyncClient, api_keys: dict, waiting_case: tuple[str, str], decision: dict, field: str
) -> None:
    case_ref, _ = waiting_case
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER)
    before = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()

    response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)

    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    after = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
    assert after == before
    assert after["status"] == "awaiting_review" and after["decision"] is None


async def test_an_unknown_incident_type_is_refused_by_the_api(api: httpx.AsyncClient, api_keys: dict,
                                                              waiting_case: tuple[str, str]) -> None:
    case_ref, _ = waiting_case
    response = await api.post(f"/v1/cases/{case_ref}/decision",
                              json={"case_number": 1, "incident_type": "Something else"},
                              headers=headers(api_keys, Role.ADMIN))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.incident_type"


async def test_a_retried_decision_request_is_answered_once(api: httpx.AsyncClient, api_keys: dict,
                                                           waiting_case: tuple[str, str]) -> None:
    case_ref, media_id = waiting_case
    reviewer = {**headers(api_keys, Role.ADMIN), "Idempotency-Key": uuid.uuid4().hex}
    decision = {"case_number": 1, "incident_type": INCIDENT, "media": [{"media_id": media_id, "reported": True}]}
    first = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)
    again = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json() == again.json()


async def test_dismissal_closes_the_case_with_its_reason(api: httpx.AsyncClient, api_keys: dict,
                                                         waiting_case: tuple[str, str]) -> None:
    case_ref, _ = waiting_case
    reviewer = headers(api_keys, Role.CHILD_SAFETY_MODERATOR)
    response = await api.post(f"/v1/cases/{case_ref}/dismissal",
                              json={"case_number": 1, "reason": "Benign synthetic pattern"}, headers=reviewer)
    assert response.status_code == 200, response.text

    async def dismissed() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return case if case["status"] == "dismissed" else None

    case = await eventually(dismissed, what="dismissal")
    assert case["dismissal"]["reason"] == "Benign synthetic pattern"
    queue = (await api.get("/v1/cases", headers=reviewer)).json()
    assert case_ref not in [entry["case_ref"] for entry in queue]


async def test_a_report_of_nothing_is_refused_unless_the_reviewer_chooses_text_only(
    api: httpx.AsyncClient, api_keys: dict, waiting_case: tuple[str, str]
) -> None:
    case_ref, media_id = waiting_case
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER)
    nothing = {"case_number": 1, "incident_type": INCIDENT, "media": [{"media_id": media_id, "reported": False}]}
    refused = await api.post(f"/v1/cases/{case_ref}/decision", json=nothing, headers=reviewer)
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert any(e["field"] == "media" and "text-only" in e["message"] for e in errors), errors

    accepted = await api.post(f"/v1/cases/{case_ref}/decision", json={**nothing, "text_only": True}, headers=reviewer)
    assert accepted.status_code == 200, accepted.text
    decided = (await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1}, headers=reviewer)).json()
    assert decided["decision"]["text_only"] is True


async def test_a_broken_item_is_marked_and_cannot_be_reported(api: httpx.AsyncClient, api_keys: dict) -> None:
    creator = f"user-{uuid.uuid4().hex[:8]}"
    truncated = synthetic_image(8)[:200]  # a PNG cut short: preserved as sent, but it cannot be decoded and hashed
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": "cut", "creator_id": creator},
                              files={"file": ("cut.png", truncated, "image/png")})
    assert response.status_code in (200, 201, 202), response.text
    case_ref = response.json()["case_ref"]
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER)

    async def hashed() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return case if case.get("media") and case["media"][0]["analysis"] is not None else None

    [item] = (await eventually(hashed, what="the truncated item hashed"))["media"]
    assert item["broken"] is not None and item["broken"].startswith("unhashable:")

    response = await api.post(f"/v1/cases/{case_ref}/decision", headers=reviewer, json={
        "case_number": 1, "incident_type": INCIDENT, "media": [{"media_id": "cut", "reported": True,
                                                                 "classification": "B1"}]})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "media[0].reported" and "broken" in error["message"]
