"""The review page in a real browser (Debian's Chromium, driven by Playwright): a reviewer opens the queue,
classifies with the keyboard, writes an urgency reason, submits, and the case files what they chose.

Skipped on a developer's machine where Chromium is not installed (``apt-get install chromium``); never in CI
(``CI`` set), where ``.ci/run`` installs it and a missing browser fails the test instead."""

from __future__ import annotations

import os
import re
import shutil
import uuid

import httpx
import pytest
from playwright import async_api as playwright_api
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from models.records import Role
from tests.accounts_helpers import new_user
from tests.helpers import REVIEW_PAGE_ORG, eventually, headers
from tipline.http_server import serve_app
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="Chromium is not installed (apt-get install chromium)")

URGENCY_REASON = "Live stream 2 announced\nfor tonight"  # digits and Enter: text, not shortcuts


async def test_a_reviewer_classifies_and_submits_from_the_page(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client, engine: Engine,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = headers(api_keys, Role.PLATFORM, REVIEW_PAGE_ORG)
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG, "moderator_manager")
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER, REVIEW_PAGE_ORG)
    response = await api.post("/v1/content/upload", headers=platform,
                              data={"content_id": "m1", "creator_id": f"user-{uuid.uuid4().hex[:8]}"},
                              files={"file": ("a.png", synthetic_image(31), "image/png")})
    case_ref = response.json()["case_ref"]

    async def preserved() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return case.get("status") == "awaiting_review" and bool(case["media"]) and case["media"][0]["evidence"]

    await eventually(preserved, what="the case awaiting review with its media preserved")

    # Served over plain http on loopback, as the local stack is: the session cookie without Secure.
    app = create_app(settings.model_copy(update={"session_cookie_secure": False}), temporal=temporal_client,
                     engine=engine)
    async with serve_app(app) as url, playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page()
            await page.goto(f"{url}/review")
            await page.fill("#username", username)
            await page.fill("#password", password)
            await page.click("#signin-button")
            await playwright_api.expect(page.locator("#who")).to_have_text(
                f"{username} · moderator_manager · {REVIEW_PAGE_ORG}")
            await page.click(f'.case[data-case-ref="{case_ref}"]')
            await playwright_api.expect(page.locator(".media .placeholder").first).to_be_visible()
            assert await page.locator(".media img").count() == 0  # nothing fetched until the reviewer asks

            await page.keyboard.press("v")
            image = page.locator(".media img").first
            await playwright_api.expect(image).to_have_attribute("src", re.compile("^blob:"))
            await playwright_api.expect(image).to_have_css("filter", "none")
            await page.keyboard.press("i")
            await page.keyboard.press("1")  # the first incident type
            await page.keyboard.press("2")  # A2
            await page.keyboard.press("a")
            await page.keyboard.press("i")  # annotation: infant
            # The suggestion follows the reviewer's choices: infant is urgent, and its reason is pre-filled.
            await playwright_api.expect(page.locator("#urgency")).to_have_value(re.compile("infant"))
            await page.fill("#urgency", "")
            await page.click("#urgency")
            await page.keyboard.type(URGENCY_REASON.split("\n")[0])
            await page.keyboard.press("Enter")  # a new line in the reason, not a submission
            await page.keyboard.type(URGENCY_REASON.split("\n")[1])
            await playwright_api.expect(page.locator(".media .decision").first).to_have_text("A2")
            await page.click("#submit")
            await page.click("#confirm-file")
            await playwright_api.expect(page.locator("#filing-status")).to_contain_text("NCMEC")
            assert await page.locator("#error").text_content() == ""

            # Signing out ends the session: reloading the page finds no session and asks to sign in again.
            await page.click("#signout")
            await page.reload()
            await playwright_api.expect(page.locator("#signin")).to_be_visible()
        finally:
            await browser.close()

    async def decided() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return case if case.get("decision") else None

    case = await eventually(decided, what="the decision in the case")
    assert case["decision"]["reviewer_id"].startswith("user:")  # the person signed in, not a key
    [media] = case["decision"]["media"]
    assert (media["media_id"], media["reported"], media["classification"]) == ("m1", True, "A2")
    assert media["annotations"] == ["infant"]
    assert case["decision"]["escalate_to_high_priority"] == URGENCY_REASON
    assert "infant" in case["decision"]["urgency_suggestion_shown"]  # what the box held before the reviewer typed
