"""Media fetching on a platform's behalf: nothing inward is reached, reviewers see one generic reason, operators
one concise log line per failed attempt, and the worker stays responsive while it seals evidence."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment

from activities.media import MEDIA_NOT_FETCHED, MediaActivities
from models.case import MediaSource
from models.filing import PreserveMediaInput
from models.records import Role
from tests.helpers import MediaHost, eventually, fake_platform, headers, loopback_server
from tipline.evidence import EvidenceStore
from tipline.http_server import serve_app
from tipline.settings import NcmecCredentials, OrgSettings, ReporterSettings, Settings, orgs_toml
from tipline.synthetic import synthetic_image
from worker import egress_client


async def test_media_urls_pointing_inward_never_reach_it_and_reveal_nothing(
    api: httpx.AsyncClient, api_keys: dict
) -> None:
    creator = f"user-{uuid.uuid4().hex[:10]}"
    async with loopback_server("the Temporal UI's API") as (inside, hits), fake_platform() as platform:
        port = inside.rsplit(":", 1)[1]
        history = "/api/v1/namespaces/default/workflows/case-demo-1/history"
        urls = {
            "direct": f"{inside}{history}",
            "localhost": f"http://localhost:{port}{history}",
            "decimal": f"http://2130706433:{port}{history}",
            "ipv6": f"http://[::ffff:127.0.0.1]:{port}{history}",
            "redirected": f"{platform.url}/redirect?to={inside}{history}",
            "genuine": platform.add("genuine", 77),
        }
        for content_id, url in urls.items():
            response = await api.post("/v1/content", headers=headers(api_keys, Role.PLATFORM),
                                      json={"content_id": content_id, "creator_id": creator, "media_url": url})
            assert response.status_code == 202, response.text
        case_ref = response.json()["case_ref"]

        async def settled() -> dict | None:
            case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()
            media = {m["media_id"]: m for m in case.get("media", [])}
            done = len(media) == len(urls) and all(m["evidence"] or m["preservation_error"] for m in media.values())
            return media if done else None

        media = await eventually(settled, what="every item settled")
    assert hits == []  # the inside service never saw a request
    assert media["genuine"]["evidence"] and media["genuine"]["preservation_error"] is None
    for content_id in urls.keys() - {"genuine"}:
        assert media[content_id]["evidence"] is None
        assert media[content_id]["preservation_error"] == MEDIA_NOT_FETCHED  # no port, host or status


# ------------------------------------------------------------------------------ the activity itself


@pytest.fixture(scope="module")
async def flaky() -> AsyncIterator[tuple[str, list[str]]]:
    """A platform media server that fails, or answers slowly; it must be exempt to be reached at all."""
    asked: list[str] = []
    app = FastAPI()

    @app.get("/unavailable")
    def unavailable() -> Response:
        asked.append("unavailable")
        return Response(b"<html>internal stack trace</html>", status_code=503, media_type="text/html")

    @app.get("/big")
    def big() -> Response:
        return Response(bytes(4096))

    async with serve_app(app) as url:
        yield url, asked


def preserving(settings: Settings, url: str) -> PreserveMediaInput:
    return PreserveMediaInput(org_id="acme", workflow_id="case-acme-test", media_id="m-1",
                              source=MediaSource(url=url))


def activity_env(heartbeats: list[float] | None = None) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.06))
    if heartbeats is not None:
        env.on_heartbeat = lambda *details: heartbeats.append(time.monotonic())
    return env


def fetch_failures(logs: list[dict]) -> list[dict]:
    return [entry for entry in logs if entry["event"] == "media.fetch_failed"]


async def test_a_failed_attempt_logs_one_concise_line_and_retries_quietly(
    settings: Settings, flaky: tuple[str, list[str]]
) -> None:
    url, asked = flaky
    exempt = settings.model_copy(update={"egress_private_exemptions": [httpx.URL(url).netloc.decode()]})
    async with egress_client(exempt) as egress:
        activities = MediaActivities(settings, EvidenceStore.from_settings(settings), egress)
        with capture_logs() as logs, pytest.raises(ApplicationError) as caught:
            await activity_env().run(activities.preserve_media, preserving(settings, f"{url}/unavailable"))
    assert asked == ["unavailable"]
    assert caught.value.message == MEDIA_NOT_FETCHED and not caught.value.non_retryable
    # BENIGN: Temporal logs the attempt at debug level, without the traceback; this one line says what happened.
    assert caught.value.category == ApplicationErrorCategory.BENIGN
    [line] = fetch_failures(logs)
    assert line["reason"] == "HTTP 503" and line["retryable"] is True and line["log_level"] == "warning"
    assert url.rsplit(":", 1)[1] not in str(line) and "internal stack trace" not in str(line)


async def test_a_refused_url_is_not_retried_and_logs_the_rule_not_the_address(
    settings: Settings, worker: None
) -> None:
    async with loopback_server() as (inside, hits), egress_client(settings) as egress:
        activities = MediaActivities(settings, EvidenceStore.from_settings(settings), egress)
        with capture_logs() as logs:
            result = await activity_env().run(activities.preserve_media, preserving(settings, f"{inside}/x"))
    assert result.evidence is None and result.error == MEDIA_NOT_FETCHED and hits == []
    [line] = fetch_failures(logs)
    assert line["reason"] == "the host resolves to a non-public address" and line["retryable"] is False
    assert inside.rsplit(":", 1)[1] not in str(line)


async def test_media_over_the_size_cap_is_refused(settings: Settings, flaky: tuple[str, list[str]]) -> None:
    url, _ = flaky
    capped = settings.model_copy(update={"egress_private_exemptions": [httpx.URL(url).netloc.decode()],
                                         "media_max_bytes": 4095})
    async with egress_client(capped) as egress:
        activities = MediaActivities(capped, EvidenceStore.from_settings(settings), egress)
        with capture_logs() as logs:
            result = await activity_env().run(activities.preserve_media, preserving(settings, f"{url}/big"))
    assert result.error == MEDIA_NOT_FETCHED
    assert fetch_failures(logs)[0]["reason"] == "larger than the size cap"


async def test_heartbeats_continue_while_the_evidence_is_sealed(
    settings: Settings, media_host: MediaHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EvidenceStore.from_settings(settings)
    heartbeats: list[float] = []
    sealing: list[tuple[float, float]] = []
    put_path = store.put_path

    def slow_put_path(path):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        time.sleep(0.4)  # a large file's final re-seal, in the worker's thread
        sealed = put_path(path)
        sealing.append((started, time.monotonic()))
        return sealed

    monkeypatch.setattr(store, "put_path", slow_put_path)
    async with fake_platform() as platform, egress_client(settings) as egress:
        url = platform.add_bytes("sealed", synthetic_image(5, size=(64, 64)))
        result = await activity_env(heartbeats).run(MediaActivities(settings, store, egress).preserve_media,
                                                    preserving(settings, url))
    assert result.evidence is not None and store.read_bytes(result.evidence.sha256) == platform.media["sealed"]
    [(started, ended)] = sealing
    # The event loop stayed free: heartbeats (every 20 ms here) kept going while the store sealed the file.
    assert len([beat for beat in heartbeats if started < beat < ended]) >= 5


async def test_an_org_with_an_allowlist_fetches_from_nowhere_else(
    settings: Settings, media_host: MediaHost, tmp_path: Path
) -> None:
    allowlisted = OrgSettings(id="acme", name="Acme", ncmec=NcmecCredentials(username="u", password="p"),
                              reporter=ReporterSettings(email="safety@acme.example.com"),
                              media_allowed_hosts=("media.acme.example",))
    (tmp_path / "orgs.toml").write_text(orgs_toml([allowlisted]))
    strict = settings.model_copy(update={"orgs_file": tmp_path / "orgs.toml"})
    strict.__dict__.pop("orgs", None)  # read the new file, not the session's cached directory
    async with fake_platform() as platform, egress_client(strict) as egress:
        url = platform.add("elsewhere", 9)  # an exempt server, but not a host the org allows
        with capture_logs() as logs:
            result = await activity_env().run(
                MediaActivities(strict, EvidenceStore.from_settings(settings), egress).preserve_media,
                preserving(strict, url))
    assert result.evidence is None and result.error == MEDIA_NOT_FETCHED
    assert fetch_failures(logs)[0]["reason"] == "the host is not on the org's allowlist"
