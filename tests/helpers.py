"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import time
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
    secret: bytes
    received: list[dict]



@dataclass
class PlatformCallbacks:
    """The org's enrichment endpoint. ``mode``: "up" answers, "down" answers 503, "forged" signs wrongly."""

    url: str
    mode: str = "up"
    verified_requests: int = 0
    media_list_url: str = ""
    files_url: str = ""
    # user id -> pages of media items the platform lists for that user, and the bytes it serves
    user_media: dict[str, list[list[dict]]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


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

    def __init__(self) -> None:
        self.media: dict[str, bytes] = {}
        self.url = ""
        self.app = FastAPI()

        @self.app.get("/media/{name}")
        def media(name: str) -> Response:
            if name not in self.media:
                return Response(status_code=404)
            return Response(self.media[name], media_type="application/octet-stream")

    def add(self, name: str, seed: int) -> str:
        return self.add_bytes(name, synthetic_image(seed))

    def add_bytes(self, name: str, data: bytes) -> str:
        self.media[name] = data
        return f"{self.url}/media/{name}"


@asynccontextmanager
async def fake_platform() -> AsyncIterator[FakePlatform]:
    platform = FakePlatform()
    async with serve_app(platform.app) as url:
        platform.url = url
        yield platform
