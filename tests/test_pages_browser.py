"""The queue, triage and NCMEC reports pages in a real browser (Debian's Chromium, driven by Playwright): a
reviewer claims a case and another sees who holds it, a manager reassigns it, a triage item is escalated, another
is dismissed (shown as the reviewer's viewing settings say), and the dashboard shows a report's XML and files. The
queue and the dashboard are photographed for the README.

Skipped on a developer's machine where Chromium is not installed (``apt-get install chromium``); never in CI
(``CI`` set), where ``.ci/run`` installs it and a missing browser fails the test instead."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright import async_api as playwright_api
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.app import create_app
from detection.classifier import Priority, make_sandbox_image
from models.records import Role, TriageItem
from tests.accounts_helpers import new_user
from tests.claims_helpers import new_case
from tests.helpers import REVIEW_PAGE_ORG, eventually, headers
from tests.test_reports_dashboard import file_report
from tests.test_review_ui_browser import keep_viewing, views
from tipline.evidence import EvidenceStore
from tipline.http_server import serve_app
from tipline.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                 reason="Chromium is not installed (apt-get install chromium)"),
              pytest.mark.usefixtures("worker")]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
expect = playwright_api.expect


@pytest.fixture
async def site(settings: Settings, temporal_client: Client, engine: Engine
               ) -> AsyncIterator[tuple[str, playwright_api.Browser]]:
    # Served over plain http on loopback, as the local stack is: the session cookie without Secure.
    app = create_app(settings.model_copy(update={"session_cookie_secure": False}), temporal=temporal_client,
                     engine=engine)
    async with serve_app(app) as url, playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield url, browser
        finally:
            await browser.close()


async def signed_in_page(browser: playwright_api.Browser, url: str, path: str, username: str,
                         password: str) -> playwright_api.Page:
    """A page in a browser context of its own (its own cookies), signed in."""
    page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    await page.goto(f"{url}{path}")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#signin-button")
    await expect(page.locator("#who")).to_contain_text(f"{username} · ")
    await expect(page.locator("#who")).to_contain_text(REVIEW_PAGE_ORG)
    return page


async def test_a_claim_is_seen_by_others_and_a_manager_reassigns_it(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    site: tuple[str, playwright_api.Browser]
) -> None:
    url, browser = site
    case_ref = await new_case(api, api_keys, REVIEW_PAGE_ORG, 82_001)
    first = new_user(monkeypatch, settings, REVIEW_PAGE_ORG, "child_safety_moderator")
    second = new_user(monkeypatch, settings, REVIEW_PAGE_ORG, "child_safety_moderator")
    manager = new_user(monkeypatch, settings, REVIEW_PAGE_ORG, "moderator_manager")
    row = f'tr[data-case-ref="{case_ref}"]'

    mine = await signed_in_page(browser, url, "/queue", *first)
    await mine.click(f"{row} button.claim")
    await expect(mine.locator(f"{row} .holder")).to_have_text(first[0])
    await expect(mine.locator("#notice")).to_have_text("Claimed.")

    theirs = await signed_in_page(browser, url, "/queue", *second)
    await expect(theirs.locator(f"{row} .holder")).to_have_text(first[0])
    assert await theirs.locator(f"{row} button.claim").count() == 0  # held: nothing to claim
    assert await theirs.locator(f"{row} button.release").count() == 0  # and not theirs to release

    managing = await signed_in_page(browser, url, "/queue", *manager)
    await expect(managing.locator(f"{row} .holder")).to_have_text(first[0])
    await managing.locator(f"{row} select.reassign-to").select_option(label=f"{second[0]} (child_safety_moderator)")
    await managing.click(f"{row} button.reassign")
    await expect(managing.locator(f"{row} .holder")).to_have_text(second[0])
    if os.environ.get("TIPLINE_SCREENSHOTS"):  # the README's screenshot, retaken on request only
        await managing.screenshot(path=str(SCREENSHOTS / "queue.png"), full_page=True)

    await theirs.click("#refresh")
    await expect(theirs.locator(f"{row} .holder")).to_have_text(second[0])
    await expect(theirs.locator(f"{row} button.release")).to_be_visible()  # now theirs
    case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN, REVIEW_PAGE_ORG))).json()
    assert case["claim"]["claimed_by"].startswith("user:") and case["claimed_at"] is not None


async def in_triage(api: httpx.AsyncClient, api_keys: dict, seed: int) -> tuple[str, str]:
    """A classifier item between the org's thresholds, waiting in triage: its screening ref and content id."""
    name = uuid.uuid4().hex[:10]
    screened = await api.post("/v1/screenings/upload", headers=headers(api_keys, Role.PLATFORM, REVIEW_PAGE_ORG),
                              data={"content_id": f"t-{name}", "creator_id": f"user-{name}"},
                              files={"file": ("t.png", make_sandbox_image(Priority.HIGH, seed=seed), "image/png")})
    assert screened.status_code == 202, screened.text
    ref = screened.json()["screening_ref"]
    reviewer = headers(api_keys, Role.CHILD_SAFETY_MODERATOR, REVIEW_PAGE_ORG)

    async def waiting() -> bool:
        return ref in [e["screening_ref"] for e in (await api.get("/v1/triage", headers=reviewer)).json()]

    await eventually(waiting, what="the item in triage")
    return ref, f"t-{name}"


async def test_a_triage_item_is_revealed_and_escalated(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    site: tuple[str, playwright_api.Browser]
) -> None:
    url, browser = site
    ref, _ = await in_triage(api, api_keys, 82_002)
    reviewer = headers(api_keys, Role.CHILD_SAFETY_MODERATOR, REVIEW_PAGE_ORG)
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    page = await signed_in_page(browser, url, "/triage", username, password)
    card = page.locator(f'.card[data-screening-ref="{ref}"]')
    assert await card.locator("img").count() == 0  # nothing fetched until revealed
    await card.locator("button.reveal").click()
    image = card.locator("img")
    await expect(image).to_have_attribute("src", re.compile("^blob:"))
    await expect(image).to_have_css("filter", "none")
    await card.locator("button.reveal").click()  # hidden again: blurred and grey, not fetched again
    assert "blur" in await image.evaluate("img => getComputedStyle(img).filter")
    await card.locator(".reason").fill("looks like a minor")
    await card.locator("button.escalate").click()
    await expect(page.locator("#notice")).to_contain_text("Escalated")
    await expect(card).to_have_count(0)

    async def escalated() -> dict | None:
        result = (await api.get(f"/v1/screenings/{ref}", headers=reviewer)).json()
        return result if result.get("case_ref") else None

    outcome = await eventually(escalated, what="the escalation's case")
    case = (await api.get(f"/v1/cases/{outcome['case_ref']}", headers=reviewer)).json()
    [reason] = [r for m in case["media"] for r in m["reasons"] if r["kind"] == "manual_escalation"]
    assert reason["detail"] == "looks like a minor" and reason["by"].startswith("user:")
    # The case's page names who escalated it by their name, not their account id.
    await page.goto(f"{url}/review#{outcome['case_ref']}")
    await expect(page.locator("#media .reasons")).to_contain_text(
        f"Escalated by a reviewer: looks like a minor · by {username}")


async def test_triage_shows_media_as_the_reviewer_chose_and_a_dismissal_is_recorded_against_them(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch,
    site: tuple[str, playwright_api.Browser]
) -> None:
    url, browser = site
    ref, content_id = await in_triage(api, api_keys, 82_003)
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    # Not the defaults (24px, greyscale, click to reveal): a page that ignored them would show these wrong.
    keep_viewing(engine, username, blur_px=40, greyscale=False, reveal_on_hover=True, reblur_on_leave=True)
    page = await signed_in_page(browser, url, "/triage", username, password)
    media_requests: list[str] = []
    page.on("request", lambda r: media_requests.append(r.url) if r.url.endswith("/content") else None)
    card = page.locator(f'.card[data-screening-ref="{ref}"]')
    await card.locator(".media-box").hover()  # pointing at it reveals it
    image = card.locator("img")
    await expect(image).to_have_attribute("src", re.compile("^blob:"))
    await expect(image).to_have_css("filter", "none")
    await page.mouse.move(2, 400)  # off the card: hidden again, as strongly blurred as chosen and not grey
    await expect(image).to_have_css("filter", "blur(40px) grayscale(0)")
    await card.locator(".media-box").hover()
    await expect(image).to_have_css("filter", "none")
    assert len(media_requests) == 1, media_requests  # shown twice, fetched once
    assert views(engine, ref) == [content_id]  # and one recorded view

    await card.locator(".reason").fill("benign pattern")
    await card.locator("button.dismiss").click()
    await expect(page.locator("#notice")).to_have_text("Dismissed.")
    await expect(card).to_have_count(0)
    reviewer = headers(api_keys, Role.CHILD_SAFETY_MODERATOR, REVIEW_PAGE_ORG)

    async def dismissed() -> dict | None:
        listed = (await api.get("/v1/triage", params={"status": "dismissed"}, headers=reviewer)).json()
        return next((e for e in listed if e["screening_ref"] == ref), None)

    entry = await eventually(dismissed, what="the item listed as dismissed")
    assert entry["decided_by"].startswith("user:") and entry["case_ref"] is None  # the person, not a key
    with Session(engine) as session:
        assert session.get(TriageItem, ref).reason == "benign pattern"
    assert ref not in [e["screening_ref"] for e in (await api.get("/v1/triage", headers=reviewer)).json()]


async def test_the_dashboard_shows_a_reports_xml_and_files(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch,
    site: tuple[str, playwright_api.Browser]
) -> None:
    url, browser = site
    report_id, ncmec_id, _ = file_report(engine, EvidenceStore.from_settings(settings), REVIEW_PAGE_ORG, day=6,
                                         environment="sandbox", status="finished", receipt=True)
    file_report(engine, EvidenceStore.from_settings(settings), REVIEW_PAGE_ORG, day=7, environment="production",
                status="failed")
    page = await signed_in_page(browser, url, "/dashboard", *new_user(monkeypatch, settings, REVIEW_PAGE_ORG,
                                                                      "moderator_manager"))
    await page.fill("#f-report", str(ncmec_id))
    await page.click("#apply")
    await expect(page.locator("#page")).to_have_text("1–1 of 1")
    await page.click(f'#reports tr[data-report-id="{report_id}"]')
    await expect(page.locator("#report-xml")).to_contain_text("<screenName>user")
    await expect(page.locator("#receipt")).to_have_text("<reportDoneResponse/>")
    files = page.locator(".files li")
    await expect(files).to_have_count(3)
    await expect(files.filter(has_text="supplemental")).to_have_count(1)  # filed beside the reported file
    conversation = files.filter(has_text="conversation")
    await conversation.locator("button.show-csv").click()
    await expect(conversation.locator("pre.csv")).to_be_visible()
    media = files.filter(has_text="media")
    await expect(media.locator("a.download")).to_have_attribute("href", re.compile(r"/files/.+/content$"))
    await media.locator("button.reveal").click()
    await expect(media.locator("img")).to_have_attribute("src", re.compile("^blob:"))
    await media.locator("button.reveal").click()  # blurred again before the photograph
    await expect(page.locator("#attention")).to_contain_text("Failed report")
    await expect(page.locator("#attention button.retry").first).to_be_visible()
    if os.environ.get("TIPLINE_SCREENSHOTS"):
        await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)


async def test_open_on_the_queue_page_opens_that_case_on_the_review_page(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    site: tuple[str, playwright_api.Browser]
) -> None:
    url, browser = site
    first, second = [await new_case(api, api_keys, REVIEW_PAGE_ORG, seed) for seed in (82_101, 82_102)]
    admin = headers(api_keys, Role.ADMIN, REVIEW_PAGE_ORG)
    user_of = {ref: (await api.get(f"/v1/cases/{ref}", headers=admin)).json()["user_id"] for ref in (first, second)}
    page = await signed_in_page(browser, url, "/queue", *new_user(monkeypatch, settings, REVIEW_PAGE_ORG))
    shown_user = page.locator("#case h1 code")

    # The queue page's link goes to /review#<case_ref>; the review page opens that case, marked in its queue.
    await page.locator(f'tr[data-case-ref="{first}"] a', has_text="Open").click()
    await page.wait_for_url(re.compile(r"/review#"))
    await expect(shown_user).to_have_text(user_of[first])
    await expect(page.locator("#queue .case.active")).to_have_attribute("data-case-ref", first)

    # Another case named in the address (a link followed on the page, back and forward) opens that one.
    await page.evaluate("(ref) => { location.hash = ref; }", second)
    await expect(shown_user).to_have_text(user_of[second])
    await expect(page.locator("#queue .case.active")).to_have_attribute("data-case-ref", second)
    await page.go_back()
    await expect(shown_user).to_have_text(user_of[first])
