"""Bad input from careless or hostile clients gets a 4xx naming the field, never a 5xx or a silent drop; every
response carries the security headers; media is served as a typed download, never as the platform said."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from api.app import create_app
from api.middleware import API_CSP
from models.records import IssuedRef, RefKind, Role, TriageItem
from tests.helpers import ORG, eventually, headers
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
FAKE_CASE = f"case-{ORG}-{'0' * 32}"
FAKE_TRIAGE = f"screen-{ORG}-x"


@pytest.fixture(scope="module")
def owned_refs(engine: Engine) -> None:
    """A case ref and a triage item recorded for ORG, so its reviewer's requests pass the ownership check (a
    foreign or unknown id is a 404 before the body is read) and reach body validation."""
    with Session(engine) as session:
        session.merge(IssuedRef(ref=FAKE_CASE, kind=RefKind.CASE.value, org_id=ORG))
        session.merge(TriageItem(screening_id=FAKE_TRIAGE, org_id=ORG, creator_id="user-x", content_id="x",
                                 evidence_sha256="0" * 64, classifier_priority="HIGH", status="open",
                                 created_at=datetime.now(UTC)))
        session.commit()


def item(**extra: Any) -> dict[str, Any]:
    return {"content_id": f"c-{uuid.uuid4().hex[:8]}", "creator_id": f"user-{uuid.uuid4().hex[:8]}",
            "media_url": "http://127.0.0.1:9/never-fetched.png", **extra}


def fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/content", item(indicators={"live_sesion_active": True}), "body.indicators.live_sesion_active"),
    ("/v1/content", item(creater_id="x"), "body.creater_id"),
    ("/v1/content/batch", {"items": [item(user={"screen_name": "a", "emial": "x"})]}, "body.items.0.user.emial"),
    ("/v1/content/batch", {"items": [item()], "itmes": []}, "body.itmes"),
    ("/v1/user-reports", item(reporter_id="r", reason="csam", csam=True, reasno="x"), "body.reasno"),
    ("/v1/content/conversations", {"creator_id": "u", "thread_id": "t", "messages": [], "mesages": []},
     "body.mesages"),
])
async def test_unknown_fields_are_refused_naming_them(
    api: httpx.AsyncClient, api_keys: dict, path: str, body: dict, field: str
) -> None:
    response = await api.post(path, json=body, headers=headers(api_keys, Role.PLATFORM))
    assert response.status_code == 422
    assert field in fields(response)


@pytest.mark.parametrize(("path", "body", "field"), [
    (f"/v1/cases/{FAKE_CASE}/decision", {"incidnet_type": INCIDENT}, "body.incidnet_type"),
    (f"/v1/cases/{FAKE_CASE}/decision", {"incident_type": INCIDENT, "media": [{"media_id": "m", "reported": True,
                                                                              "clasification": "A1"}]},
     "body.media.0.clasification"),
    (f"/v1/cases/{FAKE_CASE}/dismissal", {"reason": "r", "reviewer": "me"}, "body.reviewer"),
    (f"/v1/triage/{FAKE_TRIAGE}/escalation", {"reson": "r"}, "body.reson"),
    ("/v1/escalations", item(reasons="x"), "body.reasons"),
])
async def test_unknown_fields_in_reviewer_requests_are_refused_naming_them(
    api: httpx.AsyncClient, api_keys: dict, owned_refs: None, path: str, body: dict, field: str
) -> None:
    response = await api.post(path, json=body, headers=headers(api_keys, Role.ADMIN))
    assert response.status_code == 422
    assert field in fields(response)


def test_every_request_body_in_the_openapi_document_refuses_unknown_fields(settings: Settings) -> None:
    document = create_app(settings).openapi()
    schemas = document["components"]["schemas"]
    seen: set[str] = set()

    def check(schema: dict, where: str) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                check(schemas[name], name)
            return
        if "properties" in schema:  # a record; maps (EXIF tags: names to values) have open keys by design
            assert schema.get("additionalProperties") is False, f"{where} accepts unknown fields"
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                check(schema[key], where)
        for key in ("anyOf", "oneOf", "allOf"):
            for option in schema.get(key, []):
                check(option, where)
        for name, prop in schema.get("properties", {}).items():
            check(prop, f"{where}.{name}")

    bodies = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for media_type in operation.get("requestBody", {}).get("content", {}).values():
                bodies += 1
                check(media_type["schema"], f"{method.upper()} {path}")
    assert bodies >= 10 and {"PlatformIndicators", "UserMetadata", "DecisionIn", "MediaDecisionIn"} <= seen


async def test_malformed_json_is_reported_with_line_and_column(api: httpx.AsyncClient, api_keys: dict) -> None:
    body = b'{\n  "content_id": "a",\n  "creator_id": "u",,\n}'
    response = await api.post("/v1/content", content=body, headers={
        **headers(api_keys, Role.PLATFORM), "Content-Type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body"
    # The second comma on line 3: one-based, as editors count.
    assert error["message"].startswith("malformed JSON at line 3, column 21:"), error


@pytest.mark.parametrize("suffix", ["", "/xml", "/receipt", "/files/F1/details"])
@pytest.mark.parametrize("report_id", [2**63, 2**31, 0, -1])
async def test_out_of_range_report_ids_are_a_422_naming_the_id(
    api: httpx.AsyncClient, api_keys: dict, suffix: str, report_id: int
) -> None:
    response = await api.get(f"/v1/reports/{report_id}{suffix}", headers=headers(api_keys, Role.AUDITOR))
    assert response.status_code == 422
    assert fields(response) == ["path.report_id"]


async def test_a_screening_ref_with_the_orgs_prefix_but_no_workflow_is_a_404(
    api: httpx.AsyncClient, api_keys: dict
) -> None:
    response = await api.get(f"/v1/screenings/screen-{ORG}-{uuid.uuid4().hex}", headers=headers(api_keys, Role.ADMIN))
    assert response.status_code == 404
    assert response.json()["title"] == "No such screening"


@pytest.mark.parametrize("key", ["k" * 10_000, "has space", "ünïcode"])
async def test_an_unreasonable_idempotency_key_is_a_422_naming_the_header(
    api: httpx.AsyncClient, api_keys: dict, owned_refs: None, key: str
) -> None:
    response = await api.post(f"/v1/cases/{FAKE_CASE}/dismissal", json={"case_number": 1, "reason": "duplicate"},
                              headers={**headers(api_keys, Role.ADMIN), "Idempotency-Key": key.encode()})
    assert response.status_code == 422
    assert fields(response) == ["header.idempotency-key"]


@pytest.mark.parametrize("content_type", ["text/html\r\nX-Injected: 1", "image/png\n", "image/png; a=\"\x07\"",
                                          "not a type"])
async def test_a_content_type_that_is_not_a_mime_type_is_refused_at_intake(
    api: httpx.AsyncClient, api_keys: dict, content_type: str
) -> None:
    response = await api.post("/v1/content", json=item(content_type=content_type),
                              headers=headers(api_keys, Role.PLATFORM))
    assert response.status_code == 422
    assert fields(response) == ["body.content_type"]


async def test_a_batch_item_over_the_single_item_limit_is_refused_before_any_is_enqueued(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings
) -> None:
    names = ["x" * 200] * (settings.max_json_body_bytes // 200 + 1)  # one item over what one item may be
    first, huge = item(), item(user={"screen_name": "s", "display_names": names})
    response = await api.post("/v1/content/batch", json={"items": [first, huge]},
                              headers=headers(api_keys, Role.PLATFORM))
    assert response.status_code == 413
    assert fields(response) == ["body.items.1"]
    # Not even the first, small item became a case.
    queue = (await api.get("/v1/cases", headers=headers(api_keys, Role.ADMIN))).json()
    assert response.json()["errors"] and all(first["content_id"] not in str(entry) for entry in queue)


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json", "/v1/cases", "/no/such/page", "/static/review.js"])
async def test_every_response_carries_the_security_headers(api: httpx.AsyncClient, path: str) -> None:
    response = await api.get(path)
    assert_security_headers(response)
    if not path.startswith("/static"):
        assert response.headers["content-security-policy"] == API_CSP


async def test_the_review_page_and_the_docs_have_strict_policies_of_their_own(api: httpx.AsyncClient) -> None:
    review = await api.get("/review")
    assert_security_headers(review)
    policy = review.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "<script>" not in review.text
    docs = await api.get("/docs")
    assert_security_headers(docs)
    assert "'sha256-" in docs.headers["content-security-policy"]


async def test_media_is_served_as_a_download_typed_by_its_bytes_not_by_the_platforms_claim(
    api: httpx.AsyncClient, api_keys: dict
) -> None:
    creator = f"user-{uuid.uuid4().hex[:8]}"
    png = synthetic_image(77, size=(32, 24))
    page = b"<html><script>alert(1)</script></html>"
    for content_id, data in (("png-as-html", png), ("html-as-png", page)):
        claimed = "text/html" if data is png else "image/png"
        response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                                  data={"content_id": content_id, "creator_id": creator},
                                  files={"file": ("x", data, claimed)})
        assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]
    reviewer = headers(api_keys, Role.ADMIN)

    async def preserved() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return case if len([m for m in case.get("media", []) if m["evidence"]]) == 2 else None

    case = await eventually(preserved, what="both items preserved")
    served = {m["media_id"]: await api.get(m["content_url"], headers=reviewer) for m in case["media"]}
    assert served["png-as-html"].headers["content-type"] == "image/png"
    assert served["html-as-png"].headers["content-type"] == "application/octet-stream"
    for response in served.values():
        assert_security_headers(response)
        assert response.headers["content-disposition"].startswith('attachment; filename="media-')
        assert "sandbox" in response.headers["content-security-policy"]
    assert served["png-as-html"].content == png


async def test_an_unexpected_error_is_a_bare_problem_with_the_security_headers(settings: Settings) -> None:
    app = create_app(settings, temporal=object())  # type: ignore[arg-type]

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("internal detail that must not leak")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tipline.test") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Internal error" and "internal detail" not in response.text
    assert_security_headers(response)
