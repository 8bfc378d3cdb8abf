"""The Tipline web API: platforms send, reviewers decide, auditors read records."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.types import ASGIApp
from temporalio.client import Client

from api import problems
from api.key_cache import ApiKeyCache
from api.middleware import BodyLimit, BodyLimits, PathCORS, SecurityHeaders
from api.routers import (
    cases,
    claims,
    codec,
    content,
    holds,
    intake,
    pages,
    reports,
    reviewer,
    session,
    sso,
    timeline,
    triage,
    urgency_preview,
)
from api.upload_analysis import UploadAnalyzer
from api.uploads import MULTIPART_OVERHEAD_BYTES
from models.records import utcnow
from tipline.audit_log import AuditLog
from tipline.codec import TiplineCodec
from tipline.db import make_engine
from tipline.evidence import EvidenceStore
from tipline.metrics import metrics_registry, start_metrics_server
from tipline.payload_keys import key_source
from tipline.readiness import check_readiness
from tipline.registry import RefRegistry
from tipline.settings import Settings
from tipline.temporal import connect

STATIC = Path(__file__).with_name("static")
SWAGGER_CDN = "https://cdn.jsdelivr.net"


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    components: dict[str, str]


# The review page runs only its own script and style, talks only to this API, and shows media from blob: URLs.
REVIEW_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src blob:; "
              "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
UPLOAD_PATHS = ("/v1/content/upload", "/v1/screenings/upload")


class TiplineAPI(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's error middleware too, so that even a 500 carries the security headers.
        return SecurityHeaders(super().build_middleware_stack())


def body_limits(settings: Settings) -> dict[str, BodyLimit]:
    upload = BodyLimit(settings.max_upload_bytes + settings.max_json_body_bytes + MULTIPART_OVERHEAD_BYTES,
                       "TIPLINE_MAX_UPLOAD_BYTES")
    return {
        **dict.fromkeys(UPLOAD_PATHS, upload),
        "/v1/content/batch": BodyLimit(settings.max_batch_body_bytes, "TIPLINE_MAX_BATCH_BODY_BYTES"),
        "/v1/content/conversations": BodyLimit(settings.max_conversation_body_bytes,
                                               "TIPLINE_MAX_CONVERSATION_BODY_BYTES"),
    }


def create_app(settings: Settings, *, temporal: Client | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the app. Tests pass their own Temporal client and engine; a server connects on start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "temporal", None) is None:
            app.state.temporal = await connect(settings)
        metrics = None
        if settings.api_metrics_address:
            metrics = start_metrics_server(settings.api_metrics_address, metrics_registry(app.state.engine),
                                           "TIPLINE_API_METRICS_ADDRESS")
        app.state.metrics_server = metrics
        try:
            yield
        finally:
            if metrics is not None:
                metrics.stop()

    app = TiplineAPI(title="Tipline", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                     description="From a suspected CSAM upload to a filed, audited NCMEC CyberTip.")
    app.state.settings = settings
    app.state.temporal = temporal
    app.state.engine = engine or make_engine(settings.resolved_database_url)
    app.state.evidence_store = EvidenceStore.from_settings(settings)
    app.state.registry = RefRegistry.from_settings(settings, app.state.engine)
    app.state.audit_log = AuditLog.from_settings(settings, app.state.engine)
    # Session expiry and login throttling read this clock; tests may move it.
    app.state.clock = utcnow
    app.state.api_keys = ApiKeyCache(app.state.engine, settings.api_key_cache_seconds)
    app.state.upload_analyzer = UploadAnalyzer(settings, app.state.evidence_store, app.state.engine)
    app.state.payload_codec = TiplineCodec(key_source(settings))
    problems.install(app)
    # Only the codec server answers another origin, and only the Temporal UI's.
    app.add_middleware(PathCORS, prefix="/codec", origin=settings.resolved_codec_cors_origin)
    app.add_middleware(BodyLimits, default=BodyLimit(settings.max_json_body_bytes, "TIPLINE_MAX_JSON_BODY_BYTES"),
                       per_path=body_limits(settings))
    app.include_router(content.router)
    app.include_router(cases.router)
    app.include_router(claims.router)
    app.include_router(holds.router)
    app.include_router(timeline.router)
    app.include_router(urgency_preview.router)
    app.include_router(reports.router)
    app.include_router(intake.router)
    app.include_router(triage.router)
    app.include_router(session.router)
    app.include_router(reviewer.router)
    app.include_router(sso.router)
    app.include_router(codec.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", response_model=Health, tags=["health"])
    def health() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Readiness, tags=["health"],
             responses={503: {"model": problems.Problem, "content": {problems.PROBLEM_JSON: {}}}})
    async def ready() -> Readiness:
        """Whether this process can serve now: Temporal, the database and the evidence store each answered."""
        results = await check_readiness(app.state.temporal, app.state.engine, app.state.evidence_store,
                                        settings.readiness_timeout_seconds)
        failed = [result for result in results if not result.ok]
        if failed:
            raise problems.ProblemError(
                503, "Not ready", f"unavailable: {', '.join(result.component for result in failed)}",
                errors=[problems.FieldProblem(field=result.component, message=result.problem or "unavailable")
                        for result in failed])
        return Readiness(status="ok", components={result.component: "ok" for result in results})

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/review")

    @app.get("/review", include_in_schema=False)
    def review_page() -> FileResponse:
        return FileResponse(STATIC / "review.html", headers={"Cache-Control": "no-store",
                                                             "Content-Security-Policy": REVIEW_CSP})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} · API")
        return HTMLResponse(page.body, headers={"Content-Security-Policy": docs_csp(bytes(page.body).decode())})

    return app


def docs_csp(html: str) -> str:
    """Swagger UI's policy: its assets from its CDN, and only the inline scripts of this very page (by hash)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    )
    return (f"default-src 'none'; script-src {SWAGGER_CDN} {hashes}; style-src {SWAGGER_CDN} 'unsafe-inline'; "
            f"img-src {SWAGGER_CDN} https://fastapi.tiangolo.com data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
