"""The Tipline web API: platforms send, reviewers decide, auditors read records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel
from sqlalchemy import Engine
from temporalio.client import Client

from api import problems
from api.routers import cases, content, intake, reports, triage, urgency_preview
from tipline.db import make_engine
from tipline.evidence import EvidenceStore
from tipline.registry import RefRegistry
from tipline.settings import Settings
from tipline.temporal import connect

STATIC = Path(__file__).with_name("static")


class Health(BaseModel):
    status: str


def create_app(settings: Settings, *, temporal: Client | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the app. Tests pass their own Temporal client and engine; a server connects on start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "temporal", None) is None:
            app.state.temporal = await connect(settings)
        yield

    app = FastAPI(title="Tipline", version="0.1.0", lifespan=lifespan,
                  description="From a suspected CSAM upload to a filed, audited NCMEC CyberTip.")
    app.state.settings = settings
    app.state.temporal = temporal
    app.state.engine = engine or make_engine(settings.resolved_database_url)
    app.state.evidence_store = EvidenceStore.from_settings(settings)
    app.state.registry = RefRegistry.from_settings(settings, app.state.engine)
    problems.install(app)
    app.include_router(content.router)
    app.include_router(cases.router)
    app.include_router(urgency_preview.router)
    app.include_router(reports.router)
    app.include_router(intake.router)
    app.include_router(triage.router)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def health() -> Health:
        return Health(status="ok")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/review")

    @app.get("/review", include_in_schema=False)
    def review_page() -> FileResponse:
        return FileResponse(STATIC / "review.html", headers={"Cache-Control": "no-store"})

    return app
