"""Real parts for every test: a Temporal dev server, a fresh PostgreSQL database, the CyberTipline sandbox
on loopback HTTP, a worker, and the API. One of each per test session."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI, Request, Response
from playwright.async_api import expect
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.deps import create_api_key
from cybertipline.sandbox import SandboxConfig, create_sandbox_app
from models.records import Role
from tests.helpers import (
    MEDIA_HOST,
    ORG,
    OTHER_ORG,
    PREFIX_ORGS,
    REVIEW_PAGE_ORG,
    SCREENING_ORG,
    MediaHost,
    PlatformCallbacks,
    Sandbox,
    WebhookReceiver,
    new_callback_secret,
)
from tests.s3_server import S3Server, credentials_in_environment, moto_server
from tipline.codec import converter_with
from tipline.db import make_engine, upgrade
from tipline.http_server import serve_app
from tipline.payload_keys import LOCAL_KEY_FILE_NAME, StaticKeySource
from tipline.settings import NcmecCredentials, OrgSettings, ReporterSettings, Settings, orgs_toml
from tipline.temporal import temporal_binary
from worker import case_worker
from workflows import search_attributes as sa

# Playwright's 5 s default fails browser flows on a loaded CI machine (decrypting and fetching media, filing); a
# condition that never comes still fails, only later.
expect.set_options(timeout=20_000)

REPO = Path(__file__).resolve().parents[1]
# NCMEC's schema is data the project never copies; it sits beside the checkout.
XSD_PATH = (REPO.parent / "shared" / "ncmec" / "cyber_tipline.xsd").resolve()
# Uploads are analysed by the case's detection workers in tests, as every URL item is: a test of what hashing and
# matching do to a case controls those workers. tests/test_upload_analysis.py turns the API's analysis on.
os.environ.setdefault("TIPLINE_API_ANALYZES_UPLOADS", "false")
POSTGRES_URL = os.environ.get("TIPLINE_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
SANDBOX_USER = "acme-esp"
SANDBOX_PASSWORD = "sandbox-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def xsd_path() -> Path:
    assert XSD_PATH.exists(), f"NCMEC's schema is expected at {XSD_PATH}"
    return XSD_PATH


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL, created and migrated for this session."""
    name = f"tipline_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.exit(f"PostgreSQL is needed at {POSTGRES_URL} (set TIPLINE_TEST_POSTGRES_URL): {error}", 2)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 protocol server (moto's standalone server), started only by the tests that ask for it."""
    with credentials_in_environment(), moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tipline-data")


@pytest.fixture(scope="session")
def payload_keys(data_dir: Path) -> StaticKeySource:
    """The session's payload key, in the data folder as the local stack keeps it: worker processes started
    with ``TIPLINE_DATA_DIR`` find the same key."""
    return StaticKeySource.load_or_create(data_dir / LOCAL_KEY_FILE_NAME)


@pytest.fixture(scope="session")
async def temporal_env(payload_keys: StaticKeySource) -> AsyncIterator[WorkflowEnvironment]:
    temporal = temporal_binary()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal,
        search_attributes=[key for key, _ in sa.ALL],
        data_converter=converter_with(payload_keys),
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
async def sandbox(xsd_path: Path) -> AsyncIterator[Sandbox]:
    app = create_sandbox_app(SandboxConfig(username=SANDBOX_USER, password=SANDBOX_PASSWORD, xsd_path=xsd_path))
    async with serve_app(app) as url, httpx.AsyncClient(auth=(SANDBOX_USER, SANDBOX_PASSWORD)) as http:
        yield Sandbox(url=url, state=app.state.sandbox, http=http)


@pytest.fixture(scope="session")
async def media_host() -> AsyncIterator[MediaHost]:
    """The one loopback server behind every ``fake_platform()``; the worker exempts exactly its address."""
    async with serve_app(MEDIA_HOST.app) as url:
        MEDIA_HOST.url = url
        yield MEDIA_HOST
        MEDIA_HOST.url = ""


@pytest.fixture(scope="session")
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    """The org's escalation endpoint, verifying Tipline's calls with the off-the-shelf Standard Webhooks library."""
    secret = new_callback_secret()
    verifier = Webhook(secret)
    seen: set[str] = set()
    received: list[dict] = []
    app = FastAPI()

    @app.post("/escalations")
    async def escalation(request: Request) -> Response:
        body = await request.body()
        try:
            verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            return Response(status_code=401)
        if request.headers["webhook-id"] in seen:
            return Response(status_code=409)
        seen.add(request.headers["webhook-id"])
        received.append(json.loads(body))
        return Response(b"{}", media_type="application/json")

    async with serve_app(app) as url:
        yield WebhookReceiver(url=f"{url}/escalations", secret=secret, received=received)


@pytest.fixture(scope="session")
async def platform_callbacks(webhook_receiver: WebhookReceiver) -> AsyncIterator[PlatformCallbacks]:
    """Answers Tipline's signed calls for the second org as a platform would with a Standard Webhooks library:
    verify the call, then sign the answer under the call's ``Tipline-Answer-Id``."""
    secret = webhook_receiver.secret
    webhook = Webhook(secret)
    forger = Webhook(new_callback_secret())
    app = FastAPI()
    state = PlatformCallbacks(url="")

    def signed_answer(request: Request, answer: bytes, signer: Webhook = webhook) -> Response:
        answer_id = request.headers["tipline-answer-id"]
        now = datetime.now(UTC)
        headers = {"webhook-id": answer_id, "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": signer.sign(answer_id, now, answer.decode())}
        return Response(answer, media_type="application/json", headers=headers)

    async def verified(request: Request) -> bytes | None:
        body = await request.body()
        try:
            webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            return None
        return body

    @app.post("/enrich")
    async def enrich(request: Request) -> Response:
        body = await verified(request)
        if body is None:
            return Response(status_code=401)
        state.verified_requests += 1
        if state.mode == "down":
            return Response(status_code=503)
        if state.mode == "replayed":
            if state.last_answer is None:  # nothing captured yet: an answer made for another call is the same
                other = Request({"type": "http", "headers": [(b"tipline-answer-id", b"ans_" + b"0" * 32)]})
                replayed = signed_answer(other, b'{"screen_name": "someone-else"}')
                return Response(replayed.body, headers=dict(replayed.headers))
            answer, headers = state.last_answer
            return Response(answer, media_type="application/json", headers=headers)
        asked = json.loads(body)
        answer = json.dumps({"screen_name": f"enriched-{asked['user_id']}",
                             "emails": [{"value": "enriched.user@example.com"}]}).encode()
        response = signed_answer(request, answer, forger if state.mode == "forged" else webhook)
        if state.mode == "up":
            state.last_answer = (answer, {k: v for k, v in response.headers.items() if k.startswith("webhook-")})
        return response

    @app.post("/media-list")
    async def media_list(request: Request) -> Response:
        body = await verified(request)
        if body is None:
            return Response(status_code=401)
        asked = json.loads(body)
        pages = state.user_media.get(asked["user_id"], [[]])
        index = int(asked.get("cursor") or 0)
        answer = json.dumps({"items": pages[index],
                             "next_cursor": str(index + 1) if index + 1 < len(pages) else None}).encode()
        return signed_answer(request, answer)

    @app.get("/files/{name}")
    async def files(name: str) -> Response:
        return Response(state.files[name]) if name in state.files else Response(status_code=404)

    async with serve_app(app) as url:
        state.url, state.media_list_url, state.files_url = f"{url}/enrich", f"{url}/media-list", f"{url}/files"
        yield state


def make_org(org_id: str, webhook: WebhookReceiver | None = None, callbacks: PlatformCallbacks | None = None
             ) -> OrgSettings:
    return OrgSettings(
        id=org_id, name=f"{org_id.title()} Test Platform", platform_name=f"{org_id.title()} Photos",
        ncmec=NcmecCredentials(username=SANDBOX_USER, password=SANDBOX_PASSWORD),
        reporter=ReporterSettings(first_name="Test", last_name="Reporter", email=f"safety@{org_id}.example.com"),
        company_template="Synthetic test platform", legal_url="https://example.com/legal",
        escalation_webhook_url=webhook.url if webhook else None,
        callback_secret=webhook.secret if webhook else None,
        enrichment_url=callbacks.url if callbacks else None,
        media_list_url=callbacks.media_list_url if callbacks else None,
    )


@pytest.fixture(scope="session")
def settings(data_dir: Path, database_url: str, sandbox: Sandbox, xsd_path: Path,
             temporal_client: Client, webhook_receiver: WebhookReceiver,
             platform_callbacks: PlatformCallbacks, media_host: MediaHost) -> Settings:
    orgs_file = data_dir / "orgs.toml"
    prefixed = [make_org(org) for org in PREFIX_ORGS if org != ORG]
    orgs_file.write_text(orgs_toml([make_org(ORG), make_org(OTHER_ORG, webhook_receiver, platform_callbacks),
                                    make_org(REVIEW_PAGE_ORG), make_org(SCREENING_ORG), *prefixed]))
    return Settings(
        data_dir=data_dir, database_url=database_url, orgs_file=orgs_file,
        sandbox_url=f"{sandbox.url}/ispws", ncmec_xsd_path=xsd_path,
        task_queue=f"tipline-test-{uuid.uuid4().hex[:8]}", enrichment_retry_seconds=0.5,
        temporal_address=temporal_client.service_client.config.target_host,
        # Exactly the test's own platform servers; any other loopback port stays refused.
        egress_private_exemptions=[httpx.URL(url).netloc.decode() for url in (
            media_host.url, webhook_receiver.url, platform_callbacks.url)],
    )


@pytest.fixture(scope="session")
async def worker(temporal_client: Client, settings: Settings, engine: Engine) -> AsyncIterator[None]:
    async with case_worker(temporal_client, settings, engine):
        yield


@pytest.fixture(scope="session")
async def api(settings: Settings, temporal_client: Client, engine: Engine, worker: None
              ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal=temporal_client, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as client:
        yield client


@pytest.fixture(scope="session")
def api_keys(engine: Engine) -> dict[str, dict[Role, str]]:
    """One key per role for each org: ``api_keys[org][role]``."""
    return {org: {role: create_api_key(engine, org, role, f"test {role}") for role in Role}
            for org in {ORG, OTHER_ORG, REVIEW_PAGE_ORG, SCREENING_ORG, *PREFIX_ORGS}}
