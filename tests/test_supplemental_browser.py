"""A supplemental file chosen in the review UI (Debian's Chromium, driven by Playwright): an item sent with the
report as context, unclassified ("Supplemental Reported"), by key or by its button, shown in the confirmation and
recorded in the decision.

Skipped only on a developer's machine without Chromium; never in CI (see tests/test_review_page_browser.py)."""

from __future__ import annotations

import os
import re

import httpx
import pytest
from playwright import async_api as playwright_api
from sqlalchemy import Engine
from temporalio.client import Client

from models.records import Role
from tests.accounts_helpers import new_user
from tests.helpers import REVIEW_PAGE_ORG, eventually, headers
from tests.test_review_ui_browser import CHROMIUM, a_case, served, sign_in
from tipline.settings import Settings

pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="Chromium is not installed (apt-get install chromium)")
expect = playwright_api.expect


async def test_an_item_is_sent_as_supplemental_by_key_or_button_and_shown_before_filing(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client, engine: Engine,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    case_ref = await a_case(api, api_keys)
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    async with served(settings, temporal_client, engine) as url, playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await sign_in(page, url, username, password)
            await page.click(f'.case[data-case-ref="{case_ref}"]')
            first, second = (page.locator(f'.media[data-media-id="{m}"]') for m in ("photo-1", "photo-2"))
            await expect(first.locator(".decision")).to_have_text("not reported")
            await page.keyboard.press("v")  # photo-1 seen, then A1; photo-2 supplemental
            await expect(first.locator("img")).to_have_attribute("src", re.compile("^blob:"))
            for key in ["1", "i", "1", "j", "s"]:
                await page.keyboard.press(key)
            await expect(first.locator(".decision")).to_have_text("A1")
            await expect(page.locator("#incident")).to_have_value(re.compile("^Child Pornography"))
            await expect(second.locator(".decision")).to_have_text("supplemental")
            await expect(second.locator("button.supplemental")).to_have_attribute("aria-pressed", "true")
            await page.keyboard.press("3")  # reporting it ends "supplemental": a file is one or the other
            await expect(second.locator(".decision")).to_have_text("B1")
            await expect(second.locator("button.supplemental")).to_have_attribute("aria-pressed", "false")
            await second.locator("button.supplemental").click()
            await expect(second.locator(".decision")).to_have_text("supplemental")
            # The broken item cannot be sent as anything: its button is off.
            await expect(page.locator('.media[data-media-id="cut"] button.supplemental')).to_be_disabled()
            await page.keyboard.press("?")
            await expect(page.locator("#help-table")).to_contain_text("supplemental")
            await page.keyboard.press("Escape")

            await page.keyboard.press("Enter")
            await expect(page.locator("#confirm-files li")).to_have_count(1)
            await expect(page.locator("#confirm-supplemental li")).to_have_text(["photo-2.png"])
            await expect(page.locator("#confirm-refusal")).to_have_text("")  # on failure: why it is refused
            await expect(page.locator("#confirm-file")).to_be_enabled()
            await page.keyboard.press("Enter")
            await expect(page.locator("#confirm")).to_be_hidden()
        finally:
            await browser.close()

    reviewer = headers(api_keys, Role.MODERATOR_MANAGER, REVIEW_PAGE_ORG)

    async def decided() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1}, headers=reviewer)).json()
        return case["decision"]

    decision = await eventually(decided, what="the decision recorded")
    media = {m["media_id"]: m for m in decision["media"]}
    assert (media["photo-1"]["reported"], media["photo-1"]["classification"]) == (True, "A1")
    assert (media["photo-2"]["reported"], media["photo-2"]["supplemental"]) == (False, True)
    assert media["photo-2"]["classification"] is None and media["photo-2"]["annotations"] == []
