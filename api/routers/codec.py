"""The codec server for the Temporal Web UI and CLI (Temporal's codec server protocol).

``POST /codec/decode`` and ``POST /codec/encode`` take and return ``{"payloads": [...]}`` in proto3 JSON (bytes
fields base64). Only operators decode: histories hold every detail of a case. Every call is logged with who
called and how many payloads, never what they hold; every refused call too (``codec.refused``: status, and the
role, key and org when the key is a known one). CORS (api/app.py) admits the configured UI origin only.

The UI sends a credential only when told to: ``Authorization: Bearer`` with "pass access token", cookies with
"include cross-origin credentials". So an operator's API key is accepted in ``X-API-Key`` (CLI, scripts),
as a bearer token, or in the ``tipline_codec`` cookie that ``POST /codec/session`` sets from a key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, Request
from fastapi.responses import FileResponse, HTMLResponse
from google.protobuf import json_format
from pydantic import Field
from sqlalchemy import Engine
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from api.deps import AppSettings, Principal, api_key_principal, get_engine
from api.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from api.requests import RequestBody
from models.records import Role
from tipline.codec import PayloadDecryptionError
from tipline.logging import get_logger
from tipline.payload_keys import UnknownPayloadKey
from tipline.settings import Settings

router = APIRouter(prefix="/codec", tags=["codec"], responses=PROBLEM_RESPONSES)
log = get_logger(__name__)
COOKIE = "tipline_codec"
# Admins run their org's deployment; reviewers see cases through the API, where each view is recorded per case.
OPERATOR_ROLES = frozenset({Role.ADMIN})
SESSION_SECONDS = 12 * 3600
STATIC = Path(__file__).resolve().parents[1] / "static"
LOGIN_CSP = ("default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class CodecPayload(RequestBody):
    """One ``temporal.api.common.v1.Payload`` in proto3 JSON: metadata values and data are base64."""

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecPayloads(RequestBody):
    payloads: list[CodecPayload]


class CodecSession(RequestBody):
    api_key: str = Field(min_length=1, max_length=200)


def codec_operator(
    request: Request,
    settings: AppSettings,
    engine: Annotated[Engine, Depends(get_engine)],
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    bearer = _bearer(authorization)
    cookie = request.cookies.get(COOKIE)
    via = "x-api-key" if x_api_key else "bearer" if bearer else "cookie" if cookie else None
    return check_operator(request, settings, engine, x_api_key or bearer or cookie, via)


def check_operator(request: Request, settings: Settings, engine: Engine, key: str | None,
                   via: str | None) -> Principal:
    """The caller if an operator's key, else a refusal (401/403), logged. ``via``: where the key came from."""
    principal: Principal | None = None
    try:
        if not key:
            raise ProblemError(401, "Send an Admin API key",
                               "as X-API-Key, as Authorization: Bearer, or through the /codec/login cookie")
        principal = api_key_principal(engine, key)
        if principal.role not in OPERATOR_ROLES:
            raise ProblemError(403, "This role may not decode payloads",
                               f"role {principal.role.value} is not an operator role ({', '.join(OPERATOR_ROLES)})")
        if settings.codec_operator_orgs and principal.org_id not in settings.codec_operator_orgs:
            raise ProblemError(403, "This org's keys may not decode payloads",
                               "only keys of the orgs in TIPLINE_CODEC_OPERATOR_ORGS decode")
    except ProblemError as refusal:
        # Refusals are logged as decodes are: who tried (when the key is known), never the key or the payloads.
        log.warning("codec.refused", operation=request.url.path.rsplit("/", 1)[-1], status=refusal.problem.status,
                    credential=via, role=principal.role.value if principal else None,
                    actor=principal.actor if principal else None, org_id=principal.org_id if principal else None,
                    namespace=request.headers.get("x-namespace"))
        raise
    return principal


Operator = Annotated[Principal, Depends(codec_operator)]


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _codec(request: Request) -> PayloadCodec:
    return request.app.state.payload_codec


def _parse(body: CodecPayloads) -> Payloads:
    try:
        return json_format.ParseDict(body.model_dump(), Payloads())
    except json_format.ParseError as error:
        raise ProblemError(422, "The request is invalid", errors=[FieldProblem(
            field="payloads", message=f"not Temporal payloads in proto3 JSON (bytes as base64): {error}")]) from None


def _answer(payloads: list[Any]) -> dict[str, Any]:
    encoded = json_format.MessageToDict(Payloads(payloads=payloads))
    return {"payloads": encoded.get("payloads", [])}


@router.post("/decode", summary="Decode payloads for the Temporal UI or CLI (operators only)")
async def decode(body: CodecPayloads, request: Request, principal: Operator,
                 x_namespace: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    payloads = _parse(body)
    log.info("codec.decode", actor=principal.actor, org_id=principal.org_id, namespace=x_namespace,
             payloads=len(payloads.payloads))
    try:
        decoded = await _codec(request).decode(payloads.payloads)
    except (UnknownPayloadKey, PayloadDecryptionError) as error:
        raise ProblemError(422, "A payload could not be decrypted", str(error),
                           errors=[FieldProblem(field="payloads", message=str(error))]) from None
    return _answer(decoded)


@router.post("/encode", summary="Encode payloads the Temporal UI sends (operators only)")
async def encode(body: CodecPayloads, request: Request, principal: Operator,
                 x_namespace: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    payloads = _parse(body)
    log.info("codec.encode", actor=principal.actor, org_id=principal.org_id, namespace=x_namespace,
             payloads=len(payloads.payloads))
    return _answer(await _codec(request).encode(payloads.payloads))


@router.get("/login", include_in_schema=False)
def login_page() -> FileResponse:
    return FileResponse(STATIC / "codec-login.html", headers={"Cache-Control": "no-store",
                                                               "Content-Security-Policy": LOGIN_CSP})


@router.post("/session", summary="Keep an operator's key in a cookie for the Temporal UI")
def session(request: Request, settings: AppSettings, engine: Annotated[Engine, Depends(get_engine)],
            form: Annotated[CodecSession, Form()]) -> HTMLResponse:
    """The UI can send cookies but not our header: an operator posts their key once, then ticks the UI's
    "include cross-origin credentials". The cookie is HttpOnly, for /codec only, and SameSite=Strict (the UI
    and the API are the same site: same host, or one registrable domain). It is checked on every call, so a
    revoked key stops decoding at once."""
    api_key = form.api_key
    principal = check_operator(request, settings, engine, api_key, "form")
    log.info("codec.session", actor=principal.actor, org_id=principal.org_id)
    response = HTMLResponse("<!doctype html><title>Saved</title><p>Your key is kept for the Temporal Web UI's "
                            "codec requests for 12 hours. You can close this page.</p>",
                            headers={"Content-Security-Policy": LOGIN_CSP})
    response.set_cookie(COOKIE, api_key, httponly=True, samesite="strict", path="/codec",
                        secure=request.url.scheme == "https", max_age=SESSION_SECONDS)
    return response
