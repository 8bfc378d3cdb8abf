"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from fastapi import FastAPI
from fastapi.responses import Response

from cybertipline.sandbox import SandboxState
from models.records import Role
from tipline.http_server import serve_app
from tipline.synthetic import synthetic_image

T = TypeVar("T")
ORG = "acme"
OTHER_ORG = "globex"
# Only the browser test files here, so its reviewer queue holds just its own case.
REVIEW_PAGE_ORG = "initech"
# Org ids that prefix one another ("a" of "acme", "acme" of "acme-kids"): ownership must never follow the spelling.
PREFIX_ORGS = ("a", ORG, "acme-kids")
# Only the entry-path tests screen for this org: no other test's reported media join its banks.
SCREENING_ORG = "umbrella"


@dataclass
class Sandbox:
    url: str
    state: SandboxState
    http: httpx.AsyncClient

    async def reports(self) -> list[dict]:
        response = await self.http.get(f"{self.url}/_sandbox/reports")
        response.raise_for_status()
        return response.json()


@dataclass
class WebhookReceiver:
    """The org's own endpoint for escalations: keeps what arrived with its signature checked."""

    url: str
    secret: str  # "whsec_…", as the org configures it
    received: list[dict]


@dataclass
class PlatformCallbacks:
    """The org's enrichment endpoint. ``mode``: "up" answers, "down" answers 503, "forged" signs wrongly,
    "replayed" sends again the last answer it gave (as an attacker who captured it would)."""

    url: str
    mode: str = "up"
    verified_requests: int = 0
    media_list_url: str = ""
    files_url: str = ""
    # user id -> pages of media items the platform lists for that user, and the bytes it serves
    user_media: dict[str, list[list[dict]]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    # the last genuine enrichment answer, body and headers, for "replayed"
    last_answer: tuple[bytes, dict[str, str]] | None = None


def new_callback_secret() -> str:
    """An org's callback secret in the Standard Webhooks format."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def headers(api_keys: dict[str, dict[Role, str]], role: Role, org: str = ORG) -> dict[str, str]:
    return {"X-API-Key": api_keys[org][role]}


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0,
                     interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {result!r}")
        await asyncio.sleep(interval)


class FakePlatform:
    """A platform's media server: serves synthetic images, and can forget one (to test preservation)."""

    def __init__(self, url: str) -> None:
        self.media: dict[str, bytes] = {}
        self.url = url

    def add(self, name: str, seed: int) -> str:
        return self.add_bytes(name, synthetic_image(seed))

    def add_bytes(self, name: str, data: bytes) -> str:
        self.media[name] = data
        return f"{self.url}/media/{name}"


class MediaHost:
    """One loopback server for every fake platform of the session, each under a path of its own: the worker
    exempts exactly this address:port from the private-address check, and no other loopback port."""

    def __init__(self) -> None:
        self.url = ""
        self.platforms: dict[str, FakePlatform] = {}
        self.app = FastAPI()

        @self.app.get("/p/{platform}/media/{name}")
        def media(platform: str, name: str) -> Response:
            served = self.platforms.get(platform)
            if served is None or name not in served.media:
                return Response(status_code=404)
            return Response(served.media[name], media_type="application/octet-stream")

        @self.app.get("/p/{platform}/redirect")
        def redirect(platform: str, to: str) -> Response:
            return Response(status_code=302, headers={"Location": to})

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")


MEDIA_HOST = MediaHost()  # served by the session fixture ``media_host`` in conftest


@asynccontextmanager
async def fake_platform() -> AsyncIterator[FakePlatform]:
    assert MEDIA_HOST.url, "the media_host fixture serves fake platforms (it comes with the settings fixture)"
    name = uuid.uuid4().hex[:12]
    platform = MEDIA_HOST.platforms[name] = FakePlatform(f"{MEDIA_HOST.url}/p/{name}")
    try:
        yield platform
    finally:
        del MEDIA_HOST.platforms[name]


@asynccontextmanager
async def loopback_server(what: str = "an internal service") -> AsyncIterator[tuple[str, list[str]]]:
    """A server on another loopback port, standing in for what must stay unreachable (the Temporal UI's API):
    yields its URL and the paths it was asked for, which must stay empty."""
    hits: list[str] = []
    app = FastAPI(title=what)

    @app.get("/{path:path}")
    def anything(path: str) -> Response:
        hits.append(path)
        return Response(b'{"history": "another org\'s case"}', media_type="application/json")

    async with serve_app(app) as url:
        yield url, hits
