"""Single sign-on against a real OpenID provider the test starts (oidc-provider-mock, over loopback HTTP):
the authorization code flow with PKCE, the ID token checked, org and role from the groups claim, the account
made on first login."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import Client

from api.app import create_app
from models.accounts import ReviewerAccount
from models.records import Role
from tests.accounts_helpers import browser
from tests.sso_helpers import CLIENT_ID, openid_provider, sso_settings
from tipline.accounts import single_sign_on_account
from tipline.settings import Settings

CALLBACK = "https://tipline.test/v1/session/oidc/callback"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with openid_provider() as issuer:
        yield issuer


@pytest.fixture(scope="module")
async def app(settings: Settings, temporal_client: Client, engine: Engine, provider: str) -> AsyncIterator[FastAPI]:
    yield create_app(sso_settings(settings, provider, CALLBACK), temporal=temporal_client, engine=engine)


async def through_provider(client: httpx.AsyncClient, provider: str, sub: str) -> httpx.Response:
    """The person clicks "sign in", picks themself at the provider, and comes back to Tipline's callback."""
    start = await client.get("/v1/session/oidc/login")
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"{provider}/")
    query = parse_qs(urlsplit(authorize).query)
    assert query["client_id"] == [CLIENT_ID] and query["redirect_uri"] == [CALLBACK]
    assert query["code_challenge_method"] == ["S256"] and "openid" in query["scope"][0].split()
    # PKCE: the challenge is the S256 of the verifier kept in the HttpOnly flow cookie, never in the URL.
    _state, _nonce, verifier = client.cookies["tipline_oidc"].split(".")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] == [challenge] and verifier not in authorize
    async with httpx.AsyncClient() as idp:
        chosen = await idp.post(authorize, data={"sub": sub})
    assert chosen.status_code == 302, chosen.text
    back = chosen.headers["location"]
    assert back.startswith(CALLBACK + "?")
    return await client.get(back.removeprefix("https://tipline.test"))


async def test_single_sign_on_creates_the_account_with_the_role_its_groups_map_to(
    app: FastAPI, provider: str, engine: Engine
) -> None:
    async with browser(app) as client:
        done = await through_provider(client, provider, "reviewer-one")
        assert done.status_code == 302 and done.headers["location"] == "/review", done.text
        assert "httponly" in done.headers["set-cookie"].lower()
        me = (await client.get("/v1/session")).json()
        assert (me["org_id"], me["role"]) == ("acme", "child_safety_moderator")
        assert (await client.get("/v1/cases")).status_code == 200
        with Session(engine) as session:
            account = session.exec(select(ReviewerAccount).where(
                ReviewerAccount.oidc_subject == f"{provider} reviewer-one")).one()
        assert account.id == me["user_id"] and account.password_hash is None

        # The second login finds the same account, not a new one.
        await client.delete("/v1/session", headers={"X-CSRF-Token": me["csrf_token"]})
        await through_provider(client, provider, "reviewer-one")
        assert (await client.get("/v1/session")).json()["user_id"] == account.id


async def test_the_most_powerful_mapped_group_decides_the_role(app: FastAPI, provider: str) -> None:
    async with browser(app) as client:
        await through_provider(client, provider, "lead-two")
        me = (await client.get("/v1/session")).json()
        assert (me["org_id"], me["role"]) == ("acme", "moderator_manager")


@pytest.mark.parametrize("sub", ["outsider", "two-orgs"])
async def test_people_whose_groups_map_to_no_single_org_are_refused(app: FastAPI, provider: str, sub: str) -> None:
    async with browser(app) as client:
        refused = await through_provider(client, provider, sub)
        assert refused.status_code == 403, refused.text
        assert (await client.get("/v1/session")).status_code == 401


async def test_a_callback_not_started_in_this_browser_is_refused(app: FastAPI, provider: str) -> None:
    async with browser(app) as victim, browser(app) as attacker:
        start = await attacker.get("/v1/session/oidc/login")
        async with httpx.AsyncClient() as idp:
            chosen = await idp.post(start.headers["location"], data={"sub": "reviewer-one"})
        # The attacker's code and state, delivered to someone else's browser (login CSRF), sign no one in.
        forced = await victim.get(chosen.headers["location"].removeprefix("https://tipline.test"))
        assert forced.status_code == 400
        assert (await victim.get("/v1/session")).status_code == 401


async def test_without_settings_single_sign_on_is_off(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/session/oidc/login")).status_code == 404


def test_a_subject_whose_name_is_taken_gets_its_own_instead_of_a_failed_sign_in(engine: Engine) -> None:
    # The same sub at another issuer (a provider moved, a second one added), or a password account of that name.
    name, now = f"sso:{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    first = single_sign_on_account(engine, "https://idp-a.test x", name, "acme", Role.MODERATOR, now)
    second = single_sign_on_account(engine, "https://idp-b.test x", name, "acme", Role.MODERATOR, now)
    assert first.username == name and second.username.startswith(name + "~") and second.id != first.id
    again = single_sign_on_account(engine, "https://idp-b.test x", name, "acme", Role.MODERATOR, now)
    assert (again.id, again.username) == (second.id, second.username)
