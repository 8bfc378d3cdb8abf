"""The codec server, driven the way the Temporal Web UI drives it: a CORS preflight from the UI's origin, then
``POST /codec/decode`` with the UI's headers. An Admin key decodes; a platform key, a reviewer's key and no key
do not; every call is logged without the payloads' contents."""

from __future__ import annotations

import base64
import uuid

import httpx
from google.protobuf import json_format
from sqlalchemy import Engine
from structlog.testing import capture_logs
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client

from api.app import create_app
from models.case import EnqueueReason
from models.records import Role
from tests.helpers import ORG, headers
from tipline.codec import ENCRYPTED_ENCODING, converter_with
from tipline.payload_keys import StaticKeySource
from tipline.settings import Settings

OTHER_ORIGIN = "http://evil.example.com"


async def encoded_body(client: Client, detail: str) -> dict:
    """What the UI posts: the history's payloads as proto3 JSON, exactly as the server stores them."""
    payloads = await client.data_converter.encode([EnqueueReason(kind="user_report", detail=detail)])
    assert payloads[0].metadata["encoding"] == ENCRYPTED_ENCODING
    return json_format.MessageToDict(Payloads(payloads=payloads))


def ui_headers(settings: Settings, credential: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Namespace": settings.temporal_namespace,
            "Origin": settings.resolved_codec_cors_origin, **(credential or {})}


def bearer(api_keys: dict, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_keys[ORG][role]}"}


async def test_the_ui_preflight_is_answered_for_its_origin_only(api: httpx.AsyncClient, settings: Settings) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-namespace,authorization"}
    ours = await api.options("/codec/decode", headers={"Origin": settings.resolved_codec_cors_origin, **preflight})
    assert ours.status_code == 200, ours.text
    assert ours.headers["access-control-allow-origin"] == settings.resolved_codec_cors_origin
    assert ours.headers["access-control-allow-credentials"] == "true"
    assert {"authorization", "x-namespace", "content-type"} <= {
        h.strip().lower() for h in ours.headers["access-control-allow-headers"].split(",")}
    theirs = await api.options("/codec/decode", headers={"Origin": OTHER_ORIGIN, **preflight})
    assert "access-control-allow-origin" not in theirs.headers
    # Only the codec server answers another origin: the rest of the API never does.
    cases = await api.options("/v1/cases", headers={"Origin": settings.resolved_codec_cors_origin, **preflight})
    assert "access-control-allow-origin" not in cases.headers


async def test_an_admin_key_decodes_what_the_ui_sends_and_the_log_holds_no_content(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client
) -> None:
    detail = f"secret-detail-{uuid.uuid4().hex}"
    body = await encoded_body(temporal_client, detail)
    with capture_logs() as logs:
        response = await api.post("/codec/decode", json=body,
                                  headers=ui_headers(settings, bearer(api_keys, Role.ADMIN)))
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == settings.resolved_codec_cors_origin
    [payload] = response.json()["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    assert detail in base64.b64decode(payload["data"]).decode()
    [entry] = [e for e in logs if e["event"] == "codec.decode"]
    assert entry["payloads"] == 1 and entry["org_id"] == ORG and entry["namespace"] == settings.temporal_namespace
    assert entry["actor"].startswith("admin:")
    assert not any(detail in str(e) or body["payloads"][0]["data"] in str(e) for e in logs)
    # The CLI and scripts send the key as the rest of the API takes it.
    again = await api.post("/codec/decode", json=body, headers=headers(api_keys, Role.ADMIN))
    assert again.json() == response.json()


async def test_no_key_a_platform_key_and_a_reviewer_key_are_refused(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client
) -> None:
    body = await encoded_body(temporal_client, "never-shown")
    refused_roles = (Role.PLATFORM, Role.CHILD_SAFETY_MODERATOR, Role.MODERATOR, Role.AUDITOR)
    with capture_logs() as logs:
        anonymous = await api.post("/codec/decode", json=body, headers=ui_headers(settings))
        assert anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
        # The UI can read the refusal (and so show it) because it still carries the CORS header.
        assert anonymous.headers["access-control-allow-origin"] == settings.resolved_codec_cors_origin
        for role in refused_roles:
            refused = await api.post("/codec/decode", json=body, headers=ui_headers(settings, bearer(api_keys, role)))
            assert refused.status_code == 403, (role, refused.text)
            assert "never-shown" not in refused.text
        wrong = await api.post("/codec/decode", json=body,
                               headers=ui_headers(settings, {"Authorization": "Bearer tpl_x"}))
        assert wrong.status_code == 401
        encode = await api.post("/codec/encode", json=body, headers=headers(api_keys, Role.PLATFORM))
        assert encode.status_code == 403
    # Every refusal is logged, as every decode is: status, the caller's role when its key is known, no contents.
    refusals = [e for e in logs if e["event"] == "codec.refused"]
    assert [(e["operation"], e["status"], e["role"]) for e in refusals] == [
        ("decode", 401, None), *(("decode", 403, role.value) for role in refused_roles), ("decode", 401, None),
        ("encode", 403, Role.PLATFORM.value)]
    assert refusals[0]["credential"] is None and refusals[-2]["credential"] == "bearer"
    assert refusals[-1]["credential"] == "x-api-key"
    for entry, role in zip(refusals[1:-2], refused_roles, strict=True):
        assert entry["org_id"] == ORG and entry["actor"].startswith(f"{role.value}:")
        assert entry["namespace"] == settings.temporal_namespace
    assert not any(e["event"] == "codec.decode" for e in logs)  # nothing was decoded
    keys = {key for org_keys in api_keys.values() for key in org_keys.values()} | {"tpl_x"}
    assert not any(secret in str(e) for e in logs for secret in [*keys, "never-shown", body["payloads"][0]["data"]])


async def test_the_ui_cookie_carries_an_admin_key_and_only_an_admin_key(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client
) -> None:
    page = await api.get("/codec/login")
    assert page.status_code == 200 and 'action="/codec/session"' in page.text
    refused = await api.post("/codec/session", data={"api_key": api_keys[ORG][Role.CHILD_SAFETY_MODERATOR]})
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    saved = await api.post("/codec/session", data={"api_key": api_keys[ORG][Role.ADMIN]})
    assert saved.status_code == 200, saved.text
    cookie = saved.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/codec" in cookie
    body = await encoded_body(temporal_client, "via-cookie")
    # httpx keeps the cookie, as the browser does when the UI sets "include cross-origin credentials".
    decoded = await api.post("/codec/decode", json=body, headers=ui_headers(settings))
    assert decoded.status_code == 200, decoded.text
    api.cookies.clear()


async def test_bad_payloads_and_foreign_keys_are_named_errors(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings
) -> None:
    admin = ui_headers(settings, bearer(api_keys, Role.ADMIN))
    malformed = await api.post("/codec/decode", json={"payloads": [{"data": "not base64!"}]}, headers=admin)
    assert malformed.status_code == 422 and malformed.json()["errors"][0]["field"] == "payloads"
    missing = await api.post("/codec/decode", json={}, headers=admin)
    assert missing.status_code == 422
    foreign = await converter_with(StaticKeySource.generate("k-foreign")).encode([EnqueueReason(kind="user_report")])
    unknown = await api.post("/codec/decode", json=json_format.MessageToDict(Payloads(payloads=foreign)),
                             headers=admin)
    assert unknown.status_code == 422 and "'k-foreign' is not configured" in unknown.json()["detail"]


async def test_encode_round_trips_through_decode_for_an_admin(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings
) -> None:
    """The UI encodes what an operator types (a signal, a workflow start) before sending it to Temporal."""
    path = "/codec/encode"
    admin = ui_headers(settings, bearer(api_keys, Role.ADMIN))
    sent = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                          "data": base64.b64encode(b'{"kind":"user_report","detail":"from the ui"}').decode()}]}
    encoded = await api.post(path, json=sent, headers=admin)
    assert encoded.status_code == 200, encoded.text
    [payload] = encoded.json()["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == ENCRYPTED_ENCODING
    decoded = await api.post("/codec/decode", json=encoded.json(), headers=admin)
    assert decoded.json() == sent
    refused = await api.post(path, json=sent, headers=ui_headers(settings, bearer(api_keys, Role.PLATFORM)))
    assert refused.status_code == 403


async def test_temporal_clouds_ui_origin_is_answered_but_its_own_access_token_is_not_a_key(
    settings: Settings, temporal_client: Client, engine: Engine
) -> None:
    """README, "The Web UI and Tipline's codec server": with TIPLINE_TEMPORAL_UI_URL set to the Cloud UI, its
    origin is the one CORS origin; the token its "Pass access token" option sends is refused, and logged."""
    cloud = settings.model_copy(update={"temporal_ui_url": "https://cloud.temporal.io", "codec_cors_origin": None})
    assert cloud.resolved_codec_cors_origin == "https://cloud.temporal.io"
    app = create_app(cloud, temporal=temporal_client, engine=engine)
    token = "eyJhbGciOiJSUzI1NiJ9.eyJlbWFpbCI6Im9wZXJhdG9yQGV4YW1wbGUub3JnIn0.c2lnbmF0dXJl"  # JWT-shaped
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://tipline.test") as api:
        preflight = await api.options("/codec/decode", headers={
            "Origin": "https://cloud.temporal.io", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization"})
        body = await encoded_body(temporal_client, "cloud-never-shown")
        with capture_logs() as logs:
            refused = await api.post("/codec/decode", json=body, headers={
                "Content-Type": "application/json", "X-Namespace": "tipline.a1b2c", "Origin": "https://cloud.temporal.io",
                "Authorization": f"Bearer {token}"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://cloud.temporal.io"
    assert refused.status_code == 401 and "cloud-never-shown" not in refused.text
    assert refused.headers["access-control-allow-origin"] == "https://cloud.temporal.io"
    [entry] = [e for e in logs if e["event"] == "codec.refused"]
    assert (entry["status"], entry["credential"], entry["role"], entry["namespace"]) == (401, "bearer", None,
                                                                                          "tipline.a1b2c")
    assert not any(token in str(e) for e in logs)
