"""The case timeline in the review page, in a real browser: a Moderator Manager opens a case, asks for its
timeline and reads the user's history in order; a moderator is not offered it (the API refuses them too).

Skipped on a developer's machine where Chromium is not installed; never in CI (``CI`` set)."""

from __future__ import annotations

import os

import httpx
import pytest
from playwright import async_api as playwright_api

from tests.accounts_helpers import new_user
from tests.claims_helpers import new_case
from tests.helpers import REVIEW_PAGE_ORG
from tests.test_pages_browser import CHROMIUM, expect, signed_in_page, site  # noqa: F401 (site: a fixture)
from tipline.settings import Settings

pytestmark = [pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                 reason="Chromium is not installed (apt-get install chromium)"),
              pytest.mark.usefixtures("worker")]


async def test_a_manager_reads_the_case_timeline_and_a_moderator_is_not_offered_it(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    site: tuple[str, playwright_api.Browser]  # noqa: F811
) -> None:
    url, browser = site
    case_ref = await new_case(api, api_keys, REVIEW_PAGE_ORG, 83_001)
    manager = new_user(monkeypatch, settings, REVIEW_PAGE_ORG, "moderator_manager")
    moderator = new_user(monkeypatch, settings, REVIEW_PAGE_ORG, "child_safety_moderator")

    page = await signed_in_page(browser, url, f"/review#{case_ref}", *manager)
    await expect(page.locator("#timeline-button")).to_be_visible()
    await page.click("#timeline-button")
    entries = page.locator("#timeline-entries li")
    await expect(page.locator('#timeline-entries li[data-kind="content.arrived"]')).to_have_count(1)
    await expect(page.locator('#timeline-entries li[data-kind="media.hashed"]').first).to_be_visible()
    await expect(page.locator("#timeline-runs")).to_contain_text("runs")
    kinds = await entries.evaluate_all("items => items.map(i => i.dataset.kind)")
    # In time order: the content arrives before anything is done with it.
    assert kinds.index("content.arrived") < kinds.index("media.hashed"), kinds

    other = await signed_in_page(browser, url, f"/review#{case_ref}", *moderator)
    await expect(other.locator("#case")).to_contain_text("Case")
    await expect(other.locator("#timeline")).to_have_count(0)
