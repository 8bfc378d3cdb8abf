"""Cases to claim, and signed-in reviewers to claim them, for the claim tests and the page tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from models.records import Role
from tests.accounts_helpers import browser, new_user, sign_in
from tests.helpers import eventually, headers
from tipline.settings import Settings
from tipline.synthetic import synthetic_image


@dataclass
class Reviewer:
    client: httpx.AsyncClient
    user_id: int
    csrf: str
    username: str
    password: str

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}"

    async def send(self, method: str, path: str, json: object = None) -> httpx.Response:
        return await self.client.request(method, path, json=json, headers={"X-CSRF-Token": self.csrf})


@asynccontextmanager
async def signed_in(app: FastAPI, monkeypatch: pytest.MonkeyPatch, settings: Settings, org: str,
                    role: str) -> AsyncIterator[Reviewer]:
    username, password = new_user(monkeypatch, settings, org, role)
    async with browser(app) as client:
        session = await sign_in(client, username, password)
        yield Reviewer(client, session["user_id"], session["csrf_token"], username, password)


async def new_case(api: httpx.AsyncClient, api_keys: dict, org: str, seed: int) -> str:
    """A case of a new user, awaiting review with its one item preserved."""
    name = uuid.uuid4().hex[:10]
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM, org),
                              data={"content_id": f"m-{name}", "creator_id": f"user-{name}"},
                              files={"file": ("a.png", synthetic_image(seed), "image/png")})
    assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]
    admin = headers(api_keys, Role.ADMIN, org)

    async def ready() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=admin)).json()
        listed = (await api.get("/v1/cases", params={"limit": 500}, headers=admin)).json()
        return (case.get("status") == "awaiting_review" and bool(case["media"]) and bool(case["media"][0]["evidence"])
                and case_ref in [c["case_ref"] for c in listed])

    await eventually(ready, what="the case awaiting review, in the queue")
    return case_ref
