"""Tipline on more than one machine: two worker processes with separate data folders (nothing shared on disk),
two API processes' apps with folders of their own, one S3 server, PostgreSQL and one Temporal server.

One worker serves only the platform queue, so it fetches and preserves the media; the other serves cases,
detection and NCMEC, so it hashes, matches and files. The history says which process ran which activity, and
either API shows the preserved bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from models.records import Role
from tests.helpers import FakePlatform, eventually, fake_platform, headers
from tests.s3_server import REGION, S3Server
from tipline.evidence import KeyRing
from tipline.evidence_keys import KEYS_ENV
from tipline.payload_keys import StaticKeySource
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

REPO = Path(__file__).resolve().parents[1]
INCIDENT = "Child Pornography (possession, manufacture, and distribution)"


@pytest.fixture(scope="module")
def shared(settings: Settings, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory,
           payload_keys: StaticKeySource) -> Iterator[dict[str, Settings]]:
    """Per host, its settings: the same bucket, keys, database and Temporal; a data folder of its own."""
    common = {"evidence_backend": "s3", "evidence_s3_bucket": s3_server.new_bucket(),
              "evidence_s3_prefix": "evidence/", "evidence_s3_endpoint_url": s3_server.endpoint_url,
              "evidence_s3_region": REGION, "task_queue": f"tipline-hosts-{uuid.uuid4().hex[:8]}",
              "id_key": SecretStr(secrets.token_urlsafe(32)), "detection_processes": 0}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEYS_ENV, KeyRing.generate("hosts").to_spec())
        yield {name: settings.model_copy(update={**common, "data_dir": tmp_path_factory.mktemp(f"host-{name}"),
                                                 "evidence_dir": None})
               for name in ("fetcher", "filer", "api-1", "api-2")}


def worker_environment(host: Settings, queues: str, payload_keys: StaticKeySource) -> dict[str, str]:
    assert host.id_key is not None
    values = {
        "TIPLINE_DATA_DIR": host.data_dir, "TIPLINE_DATABASE_URL": host.database_url,
        "TIPLINE_ORGS_FILE": host.orgs_file, "TIPLINE_SANDBOX_URL": host.sandbox_url,
        "TIPLINE_NCMEC_XSD_PATH": host.ncmec_xsd_path, "TIPLINE_TASK_QUEUE": host.task_queue,
        "TIPLINE_TEMPORAL_ADDRESS": host.temporal_address, "TIPLINE_WORKER_QUEUES": queues,
        "TIPLINE_DETECTION_PROCESSES": host.detection_processes, "TIPLINE_EVIDENCE_BACKEND": "s3",
        "TIPLINE_EVIDENCE_S3_BUCKET": host.evidence_s3_bucket, "TIPLINE_EVIDENCE_S3_PREFIX": host.evidence_s3_prefix,
        "TIPLINE_EVIDENCE_S3_ENDPOINT_URL": host.evidence_s3_endpoint_url,
        "TIPLINE_EVIDENCE_S3_REGION": host.evidence_s3_region,
        "TIPLINE_EGRESS_PRIVATE_EXEMPTIONS": json.dumps(host.egress_private_exemptions),
        "TIPLINE_ID_KEY": host.id_key.get_secret_value(), "TIPLINE_PAYLOAD_KEYS": payload_keys.to_spec(),
    }
    return {**os.environ, **{key: str(value) for key, value in values.items()}}


@pytest.fixture(scope="module")
def workers(shared: dict[str, Settings], payload_keys: StaticKeySource,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    logs = tmp_path_factory.mktemp("worker-logs")
    started: dict[str, subprocess.Popen[bytes]] = {}
    for name, queues in (("fetcher", "platform"), ("filer", "cases,detection,ncmec")):
        with (logs / f"{name}.log").open("ab") as log:
            started[name] = subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, stdout=log,
                                             stderr=subprocess.STDOUT,
                                             env=worker_environment(shared[name], queues, payload_keys))
    yield started
    for process in started.values():
        process.send_signal(signal.SIGTERM)
    for name, process in started.items():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.returncode == 0, (logs / f"{name}.log").read_text()[-3000:]


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[FakePlatform]:
    async with fake_platform() as served:
        yield served


@asynccontextmanager
async def api_on(host: Settings, temporal_client: Client, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(host, temporal=temporal_client, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as client:
        yield client


def evidence_on_disk(host: Settings) -> list[Path]:
    """Files named like evidence (a SHA-256) on a host's own disk: there must be none."""
    return [path for path in host.data_dir.rglob("*") if path.is_file() and len(path.name) == 64]


async def test_one_process_preserves_another_files_and_either_api_shows_the_media(
    shared: dict[str, Settings], workers: dict[str, subprocess.Popen[bytes]], platform: FakePlatform,
    temporal_client: Client, engine: Engine, api_keys: dict, s3_server: S3Server,
) -> None:
    name = uuid.uuid4().hex[:10]
    image = synthetic_image(uuid.uuid4().int % 100_000, size=(64, 48))
    url = platform.add_bytes(name, image)
    admin = headers(api_keys, Role.ADMIN)
    async with api_on(shared["api-1"], temporal_client, engine) as first, \
            api_on(shared["api-2"], temporal_client, engine) as second:
        sent = await first.post("/v1/content", headers=headers(api_keys, Role.PLATFORM),
                                json={"content_id": f"c-{name}", "creator_id": f"user-{name}", "media_url": url})
        assert sent.status_code == 202, sent.text
        case_ref = sent.json()["case_ref"]

        async def hashed() -> dict | None:
            case = (await second.get(f"/v1/cases/{case_ref}", headers=admin)).json()
            media = case.get("media") or []
            return media[0] if media and media[0]["analysis"] and media[0]["analysis"].get("pdq") else None

        media = await eventually(hashed, timeout=90, what="the item preserved and hashed")
        assert media["evidence"]["sha256"] == hashlib.sha256(image).hexdigest()
        for api in (first, second):
            viewed = await api.get(media["content_url"], headers=admin)
            assert viewed.status_code == 200 and viewed.content == image

        decided = await first.post(f"/v1/cases/{case_ref}/decision", headers=admin, json={
            "case_number": 1, "incident_type": INCIDENT,
            "media": [{"media_id": f"c-{name}", "reported": True, "classification": "B1"}]})
        assert decided.status_code == 200, decided.text

        async def filed() -> dict | None:
            case = (await second.get(f"/v1/cases/{case_ref}", headers=admin)).json()
            return case if case["status"] == "filed" else None

        case = await eventually(filed, timeout=120, what="the case filed")
    assert case["filing"]["report_id"]

    ran_by: dict[str, set[str]] = {}
    runs = [w async for w in temporal_client.list_workflows(f'WorkflowId STARTS_WITH "{case_ref}"')]
    for run in runs:
        history = await temporal_client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
        scheduled = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
                     for e in history.events if e.HasField("activity_task_scheduled_event_attributes")}
        for event in history.events:
            if event.HasField("activity_task_started_event_attributes"):
                started = event.activity_task_started_event_attributes
                ran_by.setdefault(scheduled[started.scheduled_event_id], set()).add(started.identity.split("@")[0])
    fetcher, filer = str(workers["fetcher"].pid), str(workers["filer"].pid)
    assert ran_by["preserve_media_batch"] == {fetcher}
    assert ran_by["analyze_media_batch"] == {filer}
    assert ran_by["open_report"] == {filer} and ran_by["finish_report"] == {filer}
    assert all(evidence_on_disk(host) == [] for host in shared.values()), "evidence lives in the bucket only"
