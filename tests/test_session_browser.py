"""Signing in and the CSRF guard in a real browser (Debian's Chromium, driven by Playwright): single sign-on
through the real OpenID provider the SSO tests start, ending on the queue signed in by name; and a state-changing
request from the page without its CSRF token, or with a wrong one, refused with a 403 problem and changing nothing.

Skipped only on a developer's machine without Chromium; never in CI (see tests/test_review_page_browser.py)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from playwright import async_api as playwright_api
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from models.records import Role
from tests.accounts_helpers import new_user
from tests.helpers import ORG, REVIEW_PAGE_ORG, eventually, headers
from tests.sso_helpers import openid_provider, sso_settings
from tests.test_review_ui_browser import CHROMIUM, sign_in
from tipline.http_server import serve_app
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="Chromium is not installed (apt-get install chromium)")
expect = playwright_api.expect
INCIDENT = "Child Pornography (possession, manufacture, and distribution)"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with openid_provider() as issuer:
        yield issuer


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    async with serve_app(app) as url:
        yield url


@asynccontextmanager
async def chromium() -> AsyncIterator[playwright_api.Browser]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            await browser.close()


async def test_single_sign_on_through_the_provider_ends_on_the_queue_signed_in_by_name(
    settings: Settings, temporal_client: Client, engine: Engine, provider: str
) -> None:
    # Plain http on loopback, as the local stack is: the session cookie without Secure. The callback is this
    # server's own, known once it listens.
    app = create_app(settings.model_copy(update={"session_cookie_secure": False}), temporal=temporal_client,
                     engine=engine)
    async with served(app) as url, chromium() as browser:
        app.state.settings = sso_settings(app.state.settings, provider, f"{url}/v1/session/oidc/callback")
        context = await browser.new_context()
        # The provider's own page asks a CDN for its style sheet; nothing leaves this machine in a test.
        await context.route("https://**/*", lambda route: route.abort())
        page = await context.new_page()
        await page.goto(f"{url}/review")
        await expect(page.locator("#signin")).to_be_visible()
        await page.click("#sso")

        # At the provider (another site: localhost, not 127.0.0.1), the person picks who they are.
        await page.wait_for_url(f"{provider}/**")
        await page.get_by_role("button", name="reviewer-one", exact=True).click()

        # Back through Tipline's callback onto the review page's queue, signed in as that person.
        await page.wait_for_url(f"{url}/review")
        await expect(page.locator("#signed-in")).to_be_visible()
        # (The account's name is the provider's subject; "~" and a hash only if another account had it first.)
        await expect(page.locator("#who")).to_have_text(
            re.compile(rf"^sso:reviewer-one(~[0-9a-f]{{8}})? · child_safety_moderator · {ORG}$"))
        await expect(page.locator("#signin")).to_be_hidden()
        # The session is the browser's (an HttpOnly cookie the page cannot read), on every page.
        assert "tipline_session" not in await page.evaluate("() => document.cookie")
        await page.goto(f"{url}/queue")
        await expect(page.locator("#who")).to_contain_text("sso:reviewer-one")
        await expect(page.locator("h1")).to_have_text("NCMEC queue")
        await expect(page.locator("#cases")).to_be_attached()


async def waiting_case(api: httpx.AsyncClient, api_keys: dict) -> str:
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM, REVIEW_PAGE_ORG),
                              data={"content_id": "m1", "creator_id": f"user-{uuid.uuid4().hex[:8]}"},
                              files={"file": ("a.png", synthetic_image(uuid.uuid4().int % 10_000), "image/png")})
    assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]

    async def ready() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}",
                              headers=headers(api_keys, Role.ADMIN, REVIEW_PAGE_ORG))).json()
        return case.get("status") == "awaiting_review" and bool(case["media"]) and case["media"][0]["analysis"]

    await eventually(ready, what="the case awaiting review")
    return case_ref


POST_DECISION = """async ([ref, body, token]) => {
  const headers = {"Content-Type": "application/json"};
  if (token !== null) headers["X-CSRF-Token"] = token;
  const response = await fetch(`/v1/cases/${ref}/decision`, {method: "POST", headers, body: JSON.stringify(body),
                                                             credentials: "same-origin"});
  return {status: response.status, type: response.headers.get("content-type"), problem: await response.json()};
}"""


async def test_a_request_from_the_page_without_its_csrf_token_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client, engine: Engine,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    case_ref = await waiting_case(api, api_keys)
    admin = headers(api_keys, Role.ADMIN, REVIEW_PAGE_ORG)
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    app = create_app(settings.model_copy(update={"session_cookie_secure": False}), temporal=temporal_client,
                     engine=engine)
    async with served(app) as url, chromium() as browser:
        page = await browser.new_page()
        await sign_in(page, url, username, password)
        await page.click(f'.case[data-case-ref="{case_ref}"]')
        await expect(page.locator('.media[data-media-id="m1"]')).to_be_visible()
        await page.keyboard.press("v")  # seen, so the decision below is refused for its token alone
        await expect(page.locator('.media[data-media-id="m1"] img')).to_be_visible()

        # The page's own claim (key `c`), its token swapped on the way: refused, shown, and nobody holds the case.
        async def wrong_token(route: playwright_api.Route) -> None:
            await route.continue_(headers={**route.request.headers, "x-csrf-token": "forged-" + uuid.uuid4().hex})

        await page.route("**/v1/cases/*/claim", wrong_token)
        async with page.expect_response("**/v1/cases/*/claim") as claimed:
            await page.keyboard.press("c")
        assert (await claimed.value).status == 403
        await expect(page.locator("#error")).to_contain_text("The CSRF token is missing or wrong")
        assert (await api.get(f"/v1/cases/{case_ref}", headers=admin)).json()["claim"] is None

        # A decision posted from the page with no token, or a made-up one: 403 problems, the case undecided.
        decision = {"case_number": 1, "incident_type": INCIDENT,
                    "media": [{"media_id": "m1", "reported": True, "classification": "B1"}]}
        for token in (None, "", "wrong-" + uuid.uuid4().hex):
            refused = await page.evaluate(POST_DECISION, [case_ref, decision, token])
            assert refused["status"] == 403, refused
            assert refused["type"].startswith("application/problem+json")
            assert refused["problem"]["title"] == "The CSRF token is missing or wrong"
        case = (await api.get(f"/v1/cases/{case_ref}", headers=admin)).json()
        assert case["status"] == "awaiting_review" and case["decision"] is None

        # The same requests with the session's own token go through: the token was all that was wrong.
        await page.unroute("**/v1/cases/*/claim")
        await page.keyboard.press("c")
        await expect(page.locator("#claim")).to_contain_text(f"claimed by {username} at")  # the person, not user:<id>
        token = (await page.evaluate("() => fetch('/v1/session').then((r) => r.json())"))["csrf_token"]
        accepted = await page.evaluate(POST_DECISION, [case_ref, decision, token])
        assert accepted["status"] == 200, json.dumps(accepted)
        decided = (await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1}, headers=admin)).json()
        assert decided["decision"]["reviewer_id"].startswith("user:")
