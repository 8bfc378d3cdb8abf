"""FastAPI app that answers like NCMEC's ``/ispws`` service, plus ``/_sandbox`` inspection and control."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cybertipline import responses as codes
from cybertipline.sandbox import rules
from cybertipline.sandbox.faults import DropMode, FaultInjector, FaultMiddleware
from cybertipline.sandbox.state import Report, ReportStore, SandboxClock, SandboxError, report_to_json
from cybertipline.xsd import load_schema, validate_root
from tipline.safe_xml import XmlRefused, parse_xml

REALM = "ESP Web Services"
XML_MEDIA_TYPE = "application/xml"
_HASH_CHUNK = 1 << 20
FINISH_PATH = "/ispws/finish"
logger = logging.getLogger(__name__)


@dataclass
class SandboxConfig:
    username: str
    password: str
    xsd_path: Path | None = None
    strict_reporting_person_email: bool = True
    error_http_status: int = 200
    state_file: Path | None = None
    # More accounts (username -> password), e.g. to show that one ESP cannot touch another's reports.
    extra_users: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.error_http_status == 200 or 400 <= self.error_http_status <= 599):
            raise ValueError(f"error_http_status must be 200 or 400-599, not {self.error_http_status}")

    def describe(self) -> list[str]:
        """How strict this sandbox is, one line per setting: printed when it starts, so nobody has to guess."""
        schema = (f"on, against {self.xsd_path}" if self.xsd_path is not None else
                  "OFF: no XSD, so only well-formedness and the business rules are checked "
                  "(run `tipline ncmec fetch-xsd` or set TIPLINE_NCMEC_XSD_PATH)")
        email = ("on: reporter/reportingPerson must contain an email" if self.strict_reporting_person_email else
                 "off: a reportingPerson without an email is accepted")
        status = ("HTTP 200 with the code in the body, as NCMEC answers" if self.error_http_status == 200 else
                  f"HTTP {self.error_http_status} with the code in the body")
        return [
            f"  schema validation    {schema}",
            f"  reporter email rule  {email}",
            f"  application errors   {status} (bad credentials: HTTP 401)",
            "  DOCTYPE, DTD, entity always refused with 4110, never resolved",
        ]


class SandboxState:
    def __init__(self, config: SandboxConfig, clock: SandboxClock | None = None) -> None:
        self.config = config
        self.clock = clock or SandboxClock()
        # An injected clock is the caller's to control; only the default one resumes the saved offset.
        self.store = ReportStore(self.clock, config.state_file, restore_clock=clock is None)
        self.faults = FaultInjector()
        self.schema: etree.XMLSchema | None = load_schema(str(config.xsd_path)) if config.xsd_path is not None else None

    @property
    def reports(self) -> dict[int, Report]:
        return self.store.reports

    def users(self) -> dict[str, str]:
        return {**self.config.extra_users, self.config.username: self.config.password}


class _Unauthorized(Exception):
    pass


class RequestIdMiddleware:
    """Every answer, errors, injected faults and crashes included, carries a ``Request-ID`` like NCMEC's.

    It is the outermost layer the app controls, so a handler that raises still answers code 1000 in NCMEC's
    shape (with the id) instead of a bare 500 or a dropped connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex.encode()
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), (b"request-id", request_id)]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if started:
                raise  # half an answer is out; only closing the connection is left
            logger.exception("sandbox: unhandled error, answered as code 1000 (Request-ID %s)", request_id.decode())
            body = error_document(str(scope.get("path", "")), codes.SERVER_ERROR, None)
            await send_with_id({
                "type": "http.response.start", "status": 500,
                "headers": [(b"content-type", XML_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())],
            })
            await send_with_id({"type": "http.response.body", "body": body})


def error_document(path: str, code: int, description: str | None, report_id: int | None = None) -> bytes:
    """An error in the shape the endpoint answers: ``/finish`` clients decode only ``reportDoneResponse``."""
    if path.rstrip("/") == FINISH_PATH:
        return codes.render_finish_error(code, report_id)
    return codes.render_report_response(code, description, report_id=report_id)


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(content=body, status_code=status, media_type=XML_MEDIA_TYPE)


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def authenticate(request: Request) -> str:
    """The authenticated username, or 401 for anything else."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _Unauthorized
    try:
        username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _Unauthorized from exc
    expected = _state(request).users().get(username)
    if not sep or expected is None or not secrets.compare_digest(password.encode(), expected.encode()):
        raise _Unauthorized
    return username


def _parse_xml(body: bytes, expected_root: str, schema: etree.XMLSchema | None) -> etree._Element:
    try:
        # A DOCTYPE is refused here like broken XML, so no validator ever sees an unresolved entity.
        root = parse_xml(body)
    except XmlRefused as exc:
        raise SandboxError(codes.MALFORMED_XML, f"Malformed XML submittal - {exc}") from None
    if root.tag != expected_root:
        raise SandboxError(
            codes.VALIDATION_FAILED,
            f"Validation failed - root element must be <{expected_root}>, not <{root.tag}>",
        )
    if schema is not None:
        errors = validate_root(root, schema)
        if errors:
            raise SandboxError(codes.VALIDATION_FAILED, "Validation failed - " + "; ".join(errors))
    return root


def _document_text(root: etree._Element, body: bytes) -> str:
    # Decode with the document's own declared encoding so a Latin-1 report is stored as the ESP meant it.
    encoding = root.getroottree().docinfo.encoding or "utf-8"
    try:
        return body.decode(encoding, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _rule_failure(problems: list[str]) -> SandboxError:
    return SandboxError(codes.VALIDATION_FAILED, "Validation failed - " + "; ".join(problems))


def _form_report_id(form: FormData) -> int:
    value = form.get("id")
    if not isinstance(value, str) or not value.strip():
        raise SandboxError(codes.INVALID_REQUEST, "Invalid request - missing id")
    try:
        return int(value.strip())
    except ValueError as exc:
        raise SandboxError(codes.INVALID_REQUEST, f"Invalid request - id {value!r} is not a number") from exc


async def _read_form(request: Request, bad_form_code: int) -> FormData:
    try:
        # Uploads have no size limit: Starlette spools file parts to disk beyond 1 MB.
        return await request.form(max_files=16, max_fields=64)
    except (MultiPartException, StarletteHTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", "") or str(exc)
        raise SandboxError(bad_form_code, f"{codes.describe(bad_form_code)} - {detail}") from exc


async def _md5_and_size(upload: UploadFile) -> tuple[str, int]:
    digest, size = hashlib.md5(usedforsecurity=False), 0
    while chunk := await upload.read(_HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class ClockUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    advance_seconds: float | None = None
    set_to: datetime | None = Field(default=None, alias="set")


class FaultUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_ms: int | None = Field(default=None, ge=0)
    answer_delay_ms: int | None = Field(default=None, ge=0)
    error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    # NCMEC codes an injected error answers with (one drawn per error); empty means a bare 503.
    error_codes: list[int] | None = Field(default=None, max_length=32)
    error_count: int | None = Field(default=None, ge=0)
    drop_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    outage: bool | None = None
    seed: int | None = None
    drop_mode: DropMode | None = None

    @field_validator("error_codes")
    @classmethod
    def _known_error_codes(cls, values: list[int] | None) -> list[int] | None:
        unknown = [code for code in values or [] if code == codes.SUCCESS or code not in codes.RESPONSE_CODES]
        if unknown:
            raise ValueError(f"not an NCMEC error code: {unknown}; known: {sorted(codes.RESPONSE_CODES)[1:]}")
        return values


def _ispws_routes(app: FastAPI) -> None:
    auth = Depends(authenticate)

    @app.get("/ispws/status")
    async def status(request: Request, user: str = auth) -> Response:
        ip = request.client.host if request.client else "unknown"
        return _xml(codes.render_report_response(0, f"Remote User : {user}, Remote Ip : {ip}"))

    @app.get("/ispws/xsd")
    async def xsd(request: Request, user: str = auth) -> Response:
        path = _state(request).config.xsd_path
        if path is None:
            raise SandboxError(codes.RESOURCE_NOT_FOUND, "Resource not found - no schema configured")
        return _xml(path.read_bytes())

    @app.post("/ispws/submit")
    async def submit(request: Request, user: str = auth) -> Response:
        state = _state(request)
        body = await request.body()
        root = _parse_xml(body, "report", state.schema)
        problems = rules.report_violations(
            root,
            now=state.clock.now(),
            strict_reporting_person_email=state.config.strict_reporting_person_email,
        )
        if problems:
            raise _rule_failure(problems)
        report = state.store.open_report(user, _document_text(root, body))
        return _xml(codes.render_report_response(0, "Success", report_id=report.report_id))

    @app.post("/ispws/upload")
    async def upload(request: Request, user: str = auth) -> Response:
        state = _state(request)
        form = await _read_form(request, codes.MALFORMED_FILE)
        try:
            report_id = _form_report_id(form)
            part = form.get("file")
            if not isinstance(part, UploadFile):
                raise SandboxError(codes.MALFORMED_FILE, "Malformed file submittal - no file part", report_id=report_id)
            state.store.writable(user, report_id)  # fail before hashing a large file for nothing
            md5, size = await _md5_and_size(part)
            stored = state.store.add_file(user, report_id, part.filename or "", md5, size, part.content_type)
        finally:
            await form.close()
        return _xml(
            codes.render_report_response(0, "Success", report_id=report_id, file_id=stored.file_id, hash=stored.md5)
        )

    @app.post("/ispws/fileinfo")
    async def fileinfo(request: Request, user: str = auth) -> Response:
        state = _state(request)
        body = await request.body()
        root = _parse_xml(body, "fileDetails", state.schema)
        try:
            report_id = int((root.findtext("reportId") or "").strip())
        except ValueError as exc:
            raise SandboxError(codes.VALIDATION_FAILED, "Validation failed - reportId must be a number") from exc
        file_id = (root.findtext("fileId") or "").strip()
        problems = rules.file_details_violations(root)
        if problems:
            raise _rule_failure(problems)
        state.store.set_file_details(user, report_id, file_id, _document_text(root, body))
        return _xml(codes.render_report_response(0, "Success", report_id=report_id))

    @app.post(FINISH_PATH)
    async def finish(request: Request, user: str = auth) -> Response:
        state = _state(request)
        form = await _read_form(request, codes.INVALID_REQUEST)
        report_id = _form_report_id(form)
        try:
            report = state.store.finish(user, report_id)
        except SandboxError as exc:
            exc.report_id = report_id  # reportDoneResponse requires the id the call was about
            raise
        return _xml(codes.render_finish_response(report.report_id, list(report.files)))

    @app.post("/ispws/retract")
    async def retract(request: Request, user: str = auth) -> Response:
        state = _state(request)
        form = await _read_form(request, codes.INVALID_REQUEST)
        report = state.store.retract(user, _form_report_id(form))
        return _xml(codes.render_report_response(0, "Success", report_id=report.report_id))


def _control_routes(app: FastAPI) -> None:
    auth = Depends(authenticate)

    @app.get("/_sandbox/reports", dependencies=[auth])
    async def list_reports(request: Request) -> list[dict[str, Any]]:
        return _state(request).store.snapshot()

    @app.get("/_sandbox/reports/{report_id}", dependencies=[auth])
    async def get_report(request: Request, report_id: int) -> JSONResponse:
        store = _state(request).store
        store.expire_due()
        report = store.reports.get(report_id)
        if report is None:
            return JSONResponse({"detail": f"no report {report_id}"}, status_code=404)
        return JSONResponse(report_to_json(report))

    @app.get("/_sandbox/clock", dependencies=[auth])
    async def get_clock(request: Request) -> dict[str, str]:
        return {"now": _state(request).clock.now().isoformat()}

    @app.post("/_sandbox/clock", dependencies=[auth])
    async def move_clock(request: Request, update: ClockUpdate) -> dict[str, str]:
        clock = _state(request).clock
        if update.set_to is not None:
            clock.set(update.set_to)
        if update.advance_seconds is not None:
            clock.advance(timedelta(seconds=update.advance_seconds))
        _state(request).store.save()
        return {"now": clock.now().isoformat()}

    @app.get("/_sandbox/faults", dependencies=[auth])
    async def get_faults(request: Request) -> dict[str, Any]:
        return _state(request).faults.settings.as_json()

    @app.post("/_sandbox/faults", dependencies=[auth])
    async def set_faults(request: Request, update: FaultUpdate) -> dict[str, Any]:
        return _state(request).faults.configure(**update.model_dump(exclude_unset=True)).as_json()

    @app.post("/_sandbox/reset", dependencies=[auth])
    async def reset(request: Request) -> dict[str, bool]:
        state = _state(request)
        state.faults.reset()
        state.clock.reset()
        state.store.reset()
        return {"ok": True}


def create_sandbox_app(config: SandboxConfig, clock: SandboxClock | None = None) -> FastAPI:
    state = SandboxState(config, clock)
    app = FastAPI(title="CyberTipline sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized) -> Response:
        # Current NCMEC answers bad credentials with an empty 401 (the 2016 XML body is gone).
        return Response(status_code=401, headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client went away mid-request (a crashed worker): nothing was committed and nobody reads an answer.
        return Response(status_code=499)

    @app.exception_handler(SandboxError)
    async def application_error(request: Request, exc: SandboxError) -> Response:
        body = error_document(request.url.path, exc.code, exc.description, exc.report_id)
        return _xml(body, status=config.error_http_status)

    _ispws_routes(app)
    _control_routes(app)
    # Added last so it runs first: faults wrap the handlers, Request-ID wraps everything.
    app.add_middleware(FaultMiddleware, injector=state.faults, error_http_status=config.error_http_status,
                       render_error=error_document)
    app.add_middleware(RequestIdMiddleware)
    return app
