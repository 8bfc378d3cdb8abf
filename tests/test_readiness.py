"""/healthz says the process lives; /readyz says whether Temporal, the database and the evidence store answer."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from structlog.testing import capture_logs
from temporalio.client import Client

from api.app import create_app
from tests.s3_server import REGION, S3Server
from tipline.codec import throwaway_converter
from tipline.evidence import EvidenceStore, EvidenceStoreUnavailable, KeyRing
from tipline.evidence_keys import KEYS_ENV
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


def s3_settings(settings: Settings, tmp_path: Path, endpoint_url: str, bucket: str) -> Settings:
    return settings.model_copy(update={
        "evidence_backend": "s3", "evidence_s3_bucket": bucket, "evidence_s3_endpoint_url": endpoint_url,
        "evidence_s3_region": REGION, "evidence_dir": tmp_path / "evidence", "readiness_timeout_seconds": 3.0})


async def test_the_s3_evidence_store_is_ready_only_with_its_bucket_and_its_endpoint(
        settings: Settings, temporal_client: Client, engine: Engine, s3_server: S3Server, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the suite's S3 server: a bucket that exists is ready; a bucket that does not (a typo, or not made
    yet), and an endpoint nothing answers on, are 503s naming the evidence store, never the bucket or the host."""
    monkeypatch.setenv(KEYS_ENV, KeyRing.generate("readiness").to_spec())
    bucket = s3_server.new_bucket()
    missing = f"{bucket}-never-created"
    down = f"http://127.0.0.1:{closed_port()}"

    async with api_with(s3_settings(settings, tmp_path, s3_server.endpoint_url, bucket), temporal_client,
                        engine) as api:
        ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # the probe stored nothing

    for endpoint, name, why in ((s3_server.endpoint_url, missing, "missing bucket"), (down, bucket, "no server")):
        with capture_logs() as logs:
            async with api_with(s3_settings(settings, tmp_path, endpoint, name), temporal_client, engine) as api:
                response = await api.get("/readyz")
                assert (await api.get("/healthz")).status_code == 200
        assert response.status_code == 503, (why, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert [error["field"] for error in problem["errors"]] == ["evidence_store"], why
        assert problem["detail"] == "unavailable: evidence_store"
        assert name not in response.text and "127.0.0.1" not in response.text, why
        [failed] = [entry for entry in logs
                    if entry["event"] == "readiness.probe_failed" and entry["component"] == "evidence_store"]
        if why == "missing bucket":
            # The operator's log says which bucket, where /readyz (often public) does not.
            assert failed["error"] == "EvidenceStoreUnavailable"
            assert f"bucket {missing!r} does not exist" in failed["reason"], failed
        elif failed["error"] != "timeout":  # refused at once here; a dropped connection would time out instead
            assert "cannot be reached (EndpointConnectionError)" in failed["reason"], failed

    # The store's probe itself (what /readyz runs): a clear error naming the bucket and the setting.
    store = EvidenceStore.from_settings(s3_settings(settings, tmp_path, s3_server.endpoint_url, missing))
    with pytest.raises(EvidenceStoreUnavailable, match=f"bucket '{missing}' does not exist.*S3_BUCKET"):
        store.probe()


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
