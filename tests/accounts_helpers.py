"""Signing people in for tests: accounts made with the real ``tipline user`` command, a browser-like client."""

from __future__ import annotations

import io
import itertools
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from tests.test_cli import use_settings
from tipline.cli import main
from tipline.settings import Settings

_addresses = itertools.count(1)


def cli_with_password(monkeypatch: pytest.MonkeyPatch, settings: Settings, argv: list[str], password: str) -> None:
    """``tipline <argv>`` with the password piped in, as a script would give it."""
    use_settings(monkeypatch, settings)
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    main(argv)


def new_user(monkeypatch: pytest.MonkeyPatch, settings: Settings, org: str, role: str = "child_safety_moderator"
             ) -> tuple[str, str]:
    username, password = f"reviewer-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    cli_with_password(monkeypatch, settings, ["user", "create", username, "--org", org, "--role", role], password)
    return username, password


@asynccontextmanager
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar and its own client address (throttling counts per address), over
    https, since the session cookie is Secure."""
    address = f"10.77.{next(_addresses) // 250}.{next(_addresses) % 250 + 1}"
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://tipline.test") as client:
        yield client


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> dict:
    response = await client.post("/v1/session", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()
