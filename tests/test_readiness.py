"""/healthz says the process lives; /readyz says whether Temporal, the database and the evidence store answer."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from tipline.codec import throwaway_converter
from tipline.settings import Settings

COMPONENTS = {"temporal", "database", "evidence_store"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def api_with(settings: Settings, temporal: Client, engine: Engine | None = None
                   ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal=temporal, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as client:
        yield client


async def test_ready_when_every_part_answers(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "components": dict.fromkeys(COMPONENTS, "ok")}
    assert (await api.get("/healthz")).json() == {"status": "ok"}


async def test_not_ready_names_the_database_when_it_is_unreachable(settings: Settings, temporal_client: Client
                                                                   ) -> None:
    down = settings.model_copy(update={"database_url": f"postgresql://127.0.0.1:{closed_port()}/tipline",
                                       "readiness_timeout_seconds": 2.0})
    async with api_with(down, temporal_client) as api:
        started = time.monotonic()
        response = await api.get("/readyz")
        elapsed = time.monotonic() - started
        # Liveness does not depend on the parts: the process itself is fine.
        assert (await api.get("/healthz")).status_code == 200
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == ["database"]
    assert "database" in problem["detail"] and "127.0.0.1" not in response.text
    assert elapsed < 2.0 + 1.0


async def test_not_ready_names_temporal_when_it_is_unreachable(settings: Settings, engine: Engine) -> None:
    # A lazy client connects on first use, as the API's would after Temporal went away.
    unreachable = await Client.connect(f"127.0.0.1:{closed_port()}", data_converter=throwaway_converter(), lazy=True)
    async with api_with(settings.model_copy(update={"readiness_timeout_seconds": 1.0}), unreachable,
                        engine) as api:
        started = time.monotonic()
        response = await api.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == ["temporal"]
    assert problem["detail"] == "unavailable: temporal"
    # The per-probe timeout bounds the whole check, however the client's own retries go.
    assert elapsed < 1.0 + 1.0


async def test_not_ready_names_the_evidence_store_when_it_cannot_write(settings: Settings, temporal_client: Client,
                                                                      engine: Engine, tmp_path: Path) -> None:
    own_store = settings.model_copy(update={"evidence_dir": tmp_path / "evidence"})
    app = create_app(own_store, temporal=temporal_client, engine=engine)
    # Replace the folder where objects are written by a plain file: writes there fail, even for root.
    incoming = tmp_path / "evidence" / "incoming"
    incoming.rmdir()
    incoming.write_bytes(b"")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as api:
        response = await api.get("/readyz")
    assert response.status_code == 503, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["evidence_store"]


async def test_a_temporal_outage_is_a_503_that_says_when_to_try_again(settings: Settings, temporal_client: Client,
                                                                       engine: Engine) -> None:
    """Any request that meets Temporal unavailable answers 503 with Retry-After: a client resends it (with the same
    Idempotency-Key, so a decision takes effect once) instead of giving up on a 500."""
    from temporalio.service import RPCError, RPCStatusCode

    app = create_app(settings, temporal=temporal_client, engine=engine)

    @app.get("/outage")
    async def outage() -> None:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as api:
        response = await api.get("/outage")
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert "try again" in response.json()["title"]


async def test_a_database_outage_is_a_503_that_says_when_to_try_again(settings: Settings, temporal_client: Client,
                                                                       engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    app = create_app(settings, temporal=temporal_client, engine=engine)

    @app.get("/restarting")
    async def restarting() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("the database is restarting"))

    @app.get("/conflict")
    async def conflict() -> None:
        raise IntegrityError("INSERT", {}, ValueError("duplicate key"))

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tipline.test") as api:
        outage, bug = await api.get("/restarting"), await api.get("/conflict")
    assert outage.status_code == 503 and outage.headers["retry-after"] == "1", outage.text
    assert "database" in outage.json()["title"] and "restarting" not in outage.text  # nothing internal leaks
    assert bug.status_code == 500  # a database that answered with an error is a fault, not an outage
