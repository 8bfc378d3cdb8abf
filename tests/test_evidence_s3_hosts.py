"""Evidence across machines, end to end: an API on one 'host' preserves an upload into the bucket, a worker on
another hashes it, an API on a third serves it to a reviewer. Each has its own local data folder (nothing shared
on disk); they share the bucket, the evidence keys, PostgreSQL and a real Temporal server."""

from __future__ import annotations

import hashlib
import secrets
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
from detection.classifier import Priority, make_sandbox_image
from models.records import Role
from tests.helpers import eventually, headers
from tests.s3_server import REGION, S3Server
from tipline.evidence import KeyRing
from tipline.evidence_keys import KEYS_ENV
from tipline.settings import Settings
from worker import case_worker


@pytest.fixture(scope="module")
def shared_keys() -> Iterator[None]:
    """The evidence keys every host is given, as a deployment gives them: in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEYS_ENV, KeyRing.generate("hosts").to_spec())
        yield


@pytest.fixture(scope="module")
def hosts(settings: Settings, s3_server: S3Server, shared_keys: None, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Settings]:
    common = {"evidence_backend": "s3", "evidence_s3_bucket": s3_server.new_bucket(),
              "evidence_s3_prefix": "tipline/evidence/", "evidence_s3_endpoint_url": s3_server.endpoint_url,
              "evidence_s3_region": REGION,
              # Its own queue, so the session's local-disk worker never takes these tasks.
              "task_queue": f"tipline-s3-{uuid.uuid4().hex[:8]}",
              "id_key": SecretStr(secrets.token_urlsafe(32))}
    return {name: settings.model_copy(update={**common, "data_dir": tmp_path_factory.mktemp(f"host-{name}"),
                                              "evidence_dir": None})
            for name in ("api", "worker", "viewer")}


@pytest.fixture(scope="module")
async def s3_worker(temporal_client: Client, hosts: dict[str, Settings], engine: Engine) -> AsyncIterator[None]:
    async with case_worker(temporal_client, hosts["worker"], engine):
        yield


@asynccontextmanager
async def api_on(host: Settings, temporal_client: Client, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(host, temporal=temporal_client, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as client:
        yield client


def local_objects(host: Settings) -> list[Path]:
    """Evidence-looking files on a host's own disk: key and id files aside, there must be none."""
    return [path for path in host.data_dir.rglob("*") if path.is_file() and len(path.name) == 64]


async def test_media_preserved_by_one_host_is_hashed_by_another_and_viewed_from_a_third(
    hosts: dict[str, Settings], s3_worker: None, temporal_client: Client, engine: Engine, api_keys: dict,
    s3_server: S3Server
) -> None:
    name = uuid.uuid4().hex[:12]
    image = make_sandbox_image(Priority.VERY_HIGH, seed=13)
    async with api_on(hosts["api"], temporal_client, engine) as api:
        response = await api.post("/v1/screenings/upload", headers=headers(api_keys, Role.PLATFORM),
                                  data={"content_id": f"c-{name}", "creator_id": f"user-{name}"},
                                  files={"file": ("photo.png", image, "image/png")})
        assert response.status_code == 202, response.text
        screening_ref = response.json()["screening_ref"]

        async def outcome() -> dict | None:
            answer = await api.get(f"/v1/screenings/{screening_ref}", headers=headers(api_keys, Role.ADMIN))
            return answer.json() if answer.status_code == 200 and answer.json() else None

        # The worker could only classify the image by reading it from the bucket: it never saw the upload.
        screened = await eventually(outcome, timeout=60, what="the screening outcome")
    assert screened["route"] == "ncmec" and screened["analysis"]["classifier_priority"] == "VERY_HIGH"

    async with api_on(hosts["viewer"], temporal_client, engine) as viewer:
        async def hashed() -> dict | None:
            case = (await viewer.get(f"/v1/cases/{screened['case_ref']}", headers=headers(api_keys, Role.ADMIN)))
            media = next((m for m in case.json().get("media", []) if m["media_id"] == f"c-{name}"), None)
            return media if media and media["analysis"] and media["analysis"].get("pdq") else None

        media = await eventually(hashed, timeout=60, what="the item hashed in its case")
        assert media["evidence"]["sha256"] == hashlib.sha256(image).hexdigest()
        viewed = await viewer.get(media["content_url"], headers=headers(api_keys, Role.ADMIN))
        assert viewed.status_code == 200 and viewed.content == image

    sha256 = hashlib.sha256(image).hexdigest()
    keys = [entry["Key"] for entry in s3_server.client().list_objects_v2(
        Bucket=hosts["api"].evidence_s3_bucket, Prefix="tipline/evidence/").get("Contents", [])]
    assert f"tipline/evidence/{sha256[:2]}/{sha256[2:4]}/{sha256}" in keys
    assert all(local_objects(host) == [] for host in hosts.values())
