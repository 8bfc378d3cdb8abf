"""The review UI in a real browser (Debian's Chromium, driven by Playwright), as a reviewer works: a case around
its user, classified entirely by keyboard, media fetched only when revealed, a broken item that cannot be
classified, the confirmation refusing an empty report, filing to the NCMEC sandbox up to its report id, and
viewing settings that follow the reviewer across sign-ins.

With TIPLINE_SCREENSHOTS=1 the flow also writes the README's screenshots to docs/screenshots/ (synthetic data).
Skipped only on a developer's machine without Chromium; never in CI (see tests/test_review_page_browser.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from playwright import async_api as playwright_api
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import Client

from api.app import create_app
from detection.banks import BankRepository, NewEntry
from detection.classifier import Priority, make_sandbox_image
from detection.media_hashes import hash_media
from models.accounts import ReviewerAccount, ReviewerWellness
from models.records import MediaView, Role
from tests.accounts_helpers import new_user
from tests.claims_helpers import new_case
from tests.helpers import REVIEW_PAGE_ORG, Sandbox, eventually, fake_platform, headers
from tipline.http_server import serve_app
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="Chromium is not installed (apt-get install chromium)")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
expect = playwright_api.expect

USER = {"screen_name": "sunny_fox_88", "display_names": ["Sunny Fox"],
        "emails": [{"value": "sunny.fox@example.com", "verified": True}],
        "ip_events": [{"ip_address": "203.0.113.7", "event": "Login", "at": "2026-11-30T21:04:00+00:00"}],
        "additional_info": "Account created 2026-10-01; reported twice by other users this month."}


@asynccontextmanager
async def served(settings: Settings, temporal_client: Client, engine: Engine) -> AsyncIterator[str]:
    # Served over plain http on loopback, as the local stack is: the session cookie without Secure.
    app = create_app(settings.model_copy(update={"session_cookie_secure": False}), temporal=temporal_client,
                     engine=engine)
    async with serve_app(app) as url:
        yield url


async def sign_in(page: playwright_api.Page, url: str, username: str, password: str) -> None:
    await page.goto(f"{url}/review")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#signin-button")
    await expect(page.locator("#signed-in")).to_be_visible()


async def a_case(api: httpx.AsyncClient, api_keys: dict) -> str:
    """A user with two good images (one sent by a user report), a truncated one and a conversation, all settled."""
    platform = headers(api_keys, Role.PLATFORM, REVIEW_PAGE_ORG)
    creator = f"user-{uuid.uuid4().hex[:8]}"
    items = [("photo-1", synthetic_image(41), {"report_text": "This account sent my little brother these pictures"}),
             ("photo-2", synthetic_image(42), {}), ("cut", synthetic_image(43)[:200], {})]
    case_ref = ""
    for content_id, data, extra in items:
        response = await api.post("/v1/content/upload", headers=platform, files={
            "file": (f"{content_id}.png", data, "image/png")},
            data={"content_id": content_id, "creator_id": creator, "user": json.dumps(USER),
                  "upload_ip": "203.0.113.7", **extra})
        assert response.status_code < 300, response.text
        case_ref = response.json()["case_ref"]
    sent = await api.post("/v1/content/conversations", headers=platform, json={
        "creator_id": creator, "thread_id": "dm-1", "messages": [
            {"message_id": "1", "sent_at": datetime(2026, 11, 30, 21, 0, tzinfo=UTC).isoformat(), "sender": creator,
             "recipient": "kid-account", "content": "send more or I tell everyone"}]})
    assert sent.status_code == 202, sent.text
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER, REVIEW_PAGE_ORG)

    async def settled() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return (len(case.get("media", [])) == 3 and all(m["analysis"] is not None for m in case["media"])
                and len(case["conversations"]) == 1)

    await eventually(settled, what="the case with its three items hashed and its conversation")
    return case_ref


def views(engine: Engine, case_ref: str) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(MediaView.media_id).where(MediaView.workflow_id == case_ref)).all())


async def revealed(page: playwright_api.Page, card: playwright_api.Locator) -> None:
    """The card shows its fetched image; if not, the failure says what the page said (a refused fetch, a key that
    went elsewhere) rather than only that an attribute never appeared."""
    try:
        await expect(card.locator("img")).to_have_attribute("src", re.compile("^blob:"))
    except AssertionError as missing:
        state = await page.evaluate("""() => ({error: document.getElementById("error").textContent,
            focused: document.activeElement && document.activeElement.outerHTML.slice(0, 120),
            revealed: [...document.querySelectorAll("#media .media.revealed")].map((n) => n.dataset.mediaId),
            current: [...document.querySelectorAll("#media .media.current")].map((n) => n.dataset.mediaId)})""")
        raise AssertionError(f"the item was not shown: {state}") from missing


async def open_by_keyboard(page: playwright_api.Page, case_ref: str) -> None:
    """Open the case with `o` (next case in the queue), pressed until it is the open one: other tests of the
    session may have left cases of the org ahead of it in the queue."""
    rows = page.locator("#queue .case")
    await expect(page.locator(f'#queue .case[data-case-ref="{case_ref}"]')).to_have_count(1)
    for position in range(await rows.count()):
        await page.keyboard.press("o")
        active = page.locator("#queue .case.active")
        await expect(active).to_have_attribute("data-case-ref", await rows.nth(position).get_attribute("data-case-ref"))
        if await active.get_attribute("data-case-ref") == case_ref:
            break
    await expect(page.locator("#case h1 code")).to_have_text(await _user_of(page, case_ref))
    assert unquote(urlsplit(page.url).fragment) == case_ref  # the address names the open case


async def _user_of(page: playwright_api.Page, case_ref: str) -> str:
    return await page.evaluate("(ref) => fetch(`/v1/cases/${ref}`).then((r) => r.json()).then((c) => c.user_id)",
                               case_ref)


async def move(page: playwright_api.Page, key: str, media_id: str) -> None:
    """Press a cursor key and wait until the page shows the cursor on `media_id`: the next key is pressed only once
    this one has taken effect, so a lost key fails here, at the key that was lost."""
    await page.keyboard.press(key)
    await expect(page.locator("#media .media.current")).to_have_count(1)
    await expect(page.locator("#media .media.current")).to_have_attribute("data-media-id", media_id)


async def test_a_case_is_classified_entirely_by_keyboard_confirmed_and_filed(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client, engine: Engine,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    case_ref = await a_case(api, api_keys)
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    async with served(settings, temporal_client, engine) as url, playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            media_requests: list[str] = []
            page.on("request", lambda r: media_requests.append(r.url) if "/media/" in r.url else None)
            await sign_in(page, url, username, password)
            await open_by_keyboard(page, case_ref)

            # Built around the user: who they are, every item and why it is there, the conversation.
            await expect(page.locator("#user")).to_contain_text("sunny_fox_88")
            await expect(page.locator("#user")).to_contain_text("203.0.113.7")
            await expect(page.locator("#user")).to_contain_text("Account created 2026-10-01")
            first = page.locator('.media[data-media-id="photo-1"]')
            await expect(first.locator(".report-text")).to_have_text(
                "This account sent my little brother these pictures")
            await expect(first.locator(".reasons")).to_contain_text("Platform escalated")
            await expect(first.locator(".tag")).to_have_count(10)
            await expect(page.locator("#conversations")).to_contain_text("send more or I tell everyone")
            await expect(page.locator("#report-annotations input")).to_have_count(5)
            await expect(page.locator("#incident option")).to_have_count(9)  # "choose" and NCMEC's eight

            # The truncated item is marked, and a classification key on it changes nothing.
            broken = page.locator('.media[data-media-id="cut"]')
            await expect(broken).to_have_class(re.compile(r"\bbroken\b"))
            await expect(broken.locator(".state")).to_contain_text("Broken: unhashable")
            await move(page, "j", "photo-2")
            await move(page, "j", "cut")
            await page.keyboard.press("1")
            await expect(page.locator("#error")).to_contain_text("cannot be classified")
            await expect(broken.locator(".decision")).to_have_text("not reported")

            # The confirmation refuses a report of nothing, until text-only is chosen.
            await page.keyboard.press("Enter")
            await expect(page.locator("#confirm")).to_be_visible()
            await expect(page.locator("#confirm-refusal")).to_contain_text("Nothing is reported")
            await expect(page.locator("#confirm-file")).to_be_disabled()
            await page.keyboard.press("t")
            await expect(page.locator("#confirm-refusal")).not_to_contain_text("Nothing is reported")
            await page.keyboard.press("t")
            await expect(page.locator("#confirm-file")).to_be_disabled()
            await page.keyboard.press("Escape")
            await expect(page.locator("#confirm")).to_be_hidden()
            assert media_requests == []  # nothing downloaded by opening the case or by any key so far

            # Revealing fetches an item once; hiding and revealing again fetches nothing more. The keys right after
            # Esc once went to the closed dialog's checkbox and were lost: focus must be back on the page at once.
            await move(page, "k", "photo-2")
            await move(page, "k", "photo-1")
            await page.keyboard.press("v")
            await revealed(page, first)
            await expect(first.locator("img")).to_have_css("filter", "none")
            await page.keyboard.press("v")
            assert "blur" in await first.locator("img").evaluate("img => getComputedStyle(img).filter")
            await page.keyboard.press("v")
            await expect(first.locator("img")).to_have_css("filter", "none")
            for key in ["2", "a", "i", "a", "x", "r", "s", "i", "8", "h"]:  # A2 infant violenceGore · sextortion
                await page.keyboard.press(key)
            await move(page, "j", "photo-2")  # moving on hides it again
            assert "blur" in await first.locator("img").evaluate("img => getComputedStyle(img).filter")
            await page.keyboard.press("v")
            await page.keyboard.press("3")  # B1
            await expect(page.locator('.media[data-media-id="photo-2"] .decision')).to_have_text("B1")
            await expect(first.locator(".decision")).to_have_text("A2")
            await expect(first.locator(".tag.on")).to_have_text(["violenceGore", "infant"])
            assert len(media_requests) == 2, media_requests
            await expect(page.locator('.media[data-media-id="photo-2"] img')).to_have_attribute(
                "src", re.compile("^blob:"))
            assert sorted(views(engine, case_ref)) == ["photo-1", "photo-2"]  # the view log: real reveals only
            if os.environ.get("TIPLINE_SCREENSHOTS"):
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                await page.keyboard.press("k")  # both items hidden again for the picture: the safe default
                await page.screenshot(path=SCREENSHOTS / "case.png", full_page=True)

            await page.keyboard.press("Enter")
            await expect(page.locator("#confirm-files li")).to_have_count(2)
            await expect(page.locator("#confirm-incident")).to_have_text("Unsolicited Obscene Material Sent to a Child")
            await expect(page.locator("#confirm-body")).to_contain_text("dm-1")
            await expect(page.locator("#confirm-body")).to_contain_text("sextortion")
            await expect(page.locator("#confirm-file")).to_be_enabled()
            if os.environ.get("TIPLINE_SCREENSHOTS"):
                await page.screenshot(path=SCREENSHOTS / "confirmation.png")
            await page.keyboard.press("Enter")
            report_id = page.locator("#report-id")
            await expect(report_id).to_have_text(re.compile(r"^\d+$"), timeout=60_000)
            shown_report_id = await report_id.text_content()
            assert len(media_requests) == 2
        finally:
            await browser.close()

    reviewer = headers(api_keys, Role.MODERATOR_MANAGER, REVIEW_PAGE_ORG)
    case = (await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1}, headers=reviewer)).json()
    assert case["status"] == "filed" and str(case["filing"]["report_id"]) == shown_report_id
    decided = {m["media_id"]: m for m in case["decision"]["media"]}
    assert "cut" not in decided  # the broken item is left for the next case, never filed as judged
    assert decided["photo-1"]["classification"] == "A2"
    assert decided["photo-1"]["annotations"] == ["infant", "violenceGore"]
    assert decided["photo-1"]["viewed"] and decided["photo-2"]["viewed"]
    assert case["decision"]["incident_type"] == "Unsolicited Obscene Material Sent to a Child"
    assert case["decision"]["report_annotations"] == ["sextortion"]
    assert case["decision"]["attach_conversations"] == ["dm-1"]



async def test_viewing_settings_are_kept_across_sign_ins(
    settings: Settings, temporal_client: Client, engine: Engine, monkeypatch: pytest.MonkeyPatch, api: httpx.AsyncClient
) -> None:
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    async with served(settings, temporal_client, engine) as url, playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await (await browser.new_context()).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # The settings held back on the way (as a loaded machine can): the page must not look signed in, nor
            # take `w`, before they are here. It once did, and a quick `w` opened nothing (the flaky CI failure).
            held = asyncio.Event()

            async def hold_settings(route: playwright_api.Route) -> None:
                if route.request.method == "GET":
                    await held.wait()
                await route.continue_()

            await page.route("**/v1/me/wellness", hold_settings)
            await page.goto(f"{url}/review")
            await page.fill("#username", username)
            await page.fill("#password", password)
            async with page.expect_request("**/v1/me/wellness"):
                await page.click("#signin-button")
            await expect(page.locator("#signed-in")).to_be_hidden()
            await page.keyboard.press("w")
            held.set()
            await expect(page.locator("#signed-in")).to_be_visible()
            await expect(page.locator("#who")).to_contain_text(username)
            await expect(page.locator("#wellness")).to_be_hidden()  # the early `w` did nothing, not half a dialog
            assert errors == []
            blur = "() => getComputedStyle(document.documentElement).getPropertyValue('--hidden-blur').trim()"
            assert await page.evaluate(blur) == "24px"  # the safe default until the reviewer changes it
            await page.keyboard.press("w")
            await expect(page.locator("#wellness")).to_be_visible()
            await page.locator("#w-blur_px").fill("40")
            await page.uncheck("#w-greyscale")
            await page.check("#w-reveal_on_hover")
            await page.uncheck("#w-video_muted")
            await page.click("#wellness-save")
            await expect(page.locator("#wellness")).to_be_hidden()
            await eventually(lambda: _saved(engine, username), what="the settings saved")
            await page.click("#signout")
            await expect(page.locator("#signin")).to_be_visible()

            # Another browser, a fresh sign-in: the settings come from the server, not from this browser.
            other = await (await browser.new_context()).new_page()
            await sign_in(other, url, username, password)

            async def applied() -> bool:
                return await other.evaluate(blur) == "40px"

            await eventually(applied, what="the saved blur applied on the new sign-in")
            assert await other.evaluate(
                "() => getComputedStyle(document.documentElement).getPropertyValue('--hidden-grey').trim()") == "0"
            await other.keyboard.press("w")
            await expect(other.locator("#w-reveal_on_hover")).to_be_checked()
            await expect(other.locator("#w-video_muted")).not_to_be_checked()
            await expect(other.locator("#w-video_paused")).to_be_checked()
            assert errors == []
        finally:
            await browser.close()


async def _saved(engine: Engine, username: str) -> ReviewerWellness | None:
    with Session(engine) as session:
        account = session.exec(select(ReviewerAccount).where(ReviewerAccount.username == username)).one()
        row = session.get(ReviewerWellness, account.id)
        return row if row is not None and row.blur_px == 40 else None


# Every key the page's handler (main.js onKey) acts on, as the help overlay writes it. Kept by hand on purpose:
# the overlay is built from keys.js, so only a list made apart from it catches a key the handler gained and the
# help was not told about (or a help entry for a key that does nothing).
HANDLED_KEYS = {"o", "j", "↓", "→", "k", "↑", "←", "v", "Space", "1", "2", "3", "4", "0", "n", "s", "a", "r", "i",
                "h", "u", "c", "C", "Enter", "t", "w", "?", "Esc"}


async def test_the_help_overlay_lists_every_shortcut(
    settings: Settings, temporal_client: Client, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    async with served(settings, temporal_client, engine) as url, playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page()
            await sign_in(page, url, username, password)
            await expect(page.locator("#help")).to_be_hidden()
            await page.keyboard.press("?")
            await expect(page.locator("#help")).to_be_visible()
            shown = await page.evaluate("""() => [...document.querySelectorAll("#help-table tr")].map((row) => ({
                keys: [...row.cells[0].querySelectorAll("kbd")].map((k) => k.textContent),
                does: row.cells[1].textContent}))""")
            key_map = await page.evaluate("""async () => {
                const keys = await import("/static/js/keys.js");
                return {shortcuts: keys.SHORTCUTS, file: keys.FILE_ANNOTATION_KEYS,
                        report: keys.REPORT_ANNOTATION_KEYS};
            }""")
            vocabulary = await page.evaluate("() => fetch('/v1/review/vocabulary').then((r) => r.json())")
            await page.keyboard.press("Escape")
            await expect(page.locator("#help")).to_be_hidden()
        finally:
            await browser.close()

    # The overlay shows keys.js's table, row for row.
    assert [(row["keys"], row["does"]) for row in shown] == [
        (keys.split(), does) for keys, does in key_map["shortcuts"]]
    rows = {" ".join(row["keys"]): row["does"] for row in shown}
    # Every annotation NCMEC has (the API's vocabulary) has a key after `a` or `r`, and the overlay lists each.
    assert sorted(key_map["file"].values()) == sorted(vocabulary["file_annotations"])
    assert sorted(key_map["report"].values()) == sorted(vocabulary["report_annotations"])
    for prefix, table in (("a", key_map["file"]), ("r", key_map["report"])):
        for key, name in table.items():
            assert name in rows[f"{prefix} {key}"], (prefix, key)
    assert len(vocabulary["incident_types"]) == 8 and "incident type 1 to 8" in rows["i 1…8"]
    # Every key the handler acts on is in the overlay, and the overlay names no key the handler ignores.
    listed: set[str] = set()
    for row in shown:  # "a d" is the key a then d: the handler's key is the prefix; "j ↓ →" are three keys
        two_step = len(row["keys"]) == 2 and row["keys"][0] in {"a", "r", "i"}
        listed |= {row["keys"][0]} if two_step else set(row["keys"])
    assert listed == HANDLED_KEYS, listed ^ HANDLED_KEYS


def keep_viewing(engine: Engine, username: str, **chosen: object) -> None:
    """The reviewer's viewing settings as the wellness dialog saves them (the dialog itself is tested above)."""
    with Session(engine) as session:
        account = session.exec(select(ReviewerAccount).where(ReviewerAccount.username == username)).one()
        session.merge(ReviewerWellness(account_id=account.id, **chosen))
        session.commit()


# A real WebM, encoded by the browser's own MediaRecorder from a few painted frames: no video library is installed,
# and the page decides an item is a video by the served type, which the server sniffs from these bytes.
RECORD_WEBM = """async () => {
  const canvas = Object.assign(document.createElement("canvas"), {width: 64, height: 48});
  const paint = canvas.getContext("2d");
  const recorder = new MediaRecorder(canvas.captureStream(10), {mimeType: "video/webm"});
  const chunks = [];
  recorder.ondataavailable = (event) => chunks.push(event.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  for (let frame = 0; frame < 8; frame++) {
    paint.fillStyle = `hsl(${frame * 45}, 60%, 50%)`;
    paint.fillRect(0, 0, 64, 48);
    await new Promise((resolve) => setTimeout(resolve, 40));  // frame pacing for the encoder, not a wait for state
  }
  recorder.stop();
  await stopped;
  return Array.from(new Uint8Array(await new Blob(chunks).arrayBuffer()));
}"""


async def upload(api: httpx.AsyncClient, api_keys: dict, creator: str, content_id: str, data: bytes,
                 content_type: str = "image/png", **fields: str) -> str:
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM, REVIEW_PAGE_ORG),
                              files={"file": (content_id, data, content_type)},
                              data={"content_id": content_id, "creator_id": creator, **fields})
    assert response.status_code == 202, response.text
    return response.json()["case_ref"]


async def settled(api: httpx.AsyncClient, api_keys: dict, case_ref: str, count: int) -> dict:
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER, REVIEW_PAGE_ORG)

    async def ready() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        media = case.get("media", [])
        return case if len(media) == count and all(m["analysis"] is not None for m in media) else None

    return await eventually(ready, what=f"the case with its {count} items hashed")


async def test_hover_reveals_each_item_once_leaving_hides_it_and_a_video_starts_muted_and_paused(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client, engine: Engine,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    keep_viewing(engine, username, reveal_on_hover=True, reblur_on_leave=True, video_muted=True, video_paused=True)
    creator = f"user-{uuid.uuid4().hex[:8]}"
    async with served(settings, temporal_client, engine) as url, playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            webm = bytes(await page.evaluate(RECORD_WEBM))
            case_ref = await upload(api, api_keys, creator, "photo", synthetic_image(61))
            await upload(api, api_keys, creator, "clip", webm, "video/webm")
            await settled(api, api_keys, case_ref, 2)
            media_requests: list[str] = []
            page.on("request", lambda r: media_requests.append(r.url) if "/media/" in r.url else None)
            await page.goto(f"{url}/review#{case_ref}")
            await page.fill("#username", username)
            await page.fill("#password", password)
            await page.click("#signin-button")
            photo, clip = page.locator('.media[data-media-id="photo"]'), page.locator('.media[data-media-id="clip"]')
            await expect(photo).to_be_visible()
            filter_of = "node => getComputedStyle(node).filter"

            # Pointing at the item reveals it; moving off hides it again; pointing again shows the kept bytes.
            await photo.locator(".frame").hover()
            await revealed(page, photo)
            await expect(photo.locator("img")).to_have_css("filter", "none")
            await page.mouse.move(5, 5)  # over the queue, off every card
            await expect(photo).not_to_have_class(re.compile(r"\brevealed\b"))
            assert "blur" in await photo.locator("img").evaluate(filter_of)
            await photo.locator(".frame").hover()
            await expect(photo.locator("img")).to_have_css("filter", "none")
            assert len(media_requests) == 1, media_requests  # one fetch for the item, however often it is shown
            assert views(engine, case_ref) == ["photo"]  # and one recorded view

            # The video, revealed by pointing at it, starts muted and paused as the settings say.
            await clip.locator(".frame").hover()
            video = clip.locator("video")
            await expect(video).to_have_attribute("src", re.compile("^blob:"))
            await expect(photo).not_to_have_class(re.compile(r"\brevealed\b"))  # leaving the photo hid it
            assert await video.evaluate("v => ({muted: v.muted, paused: v.paused, autoplay: v.autoplay})") == {
                "muted": True, "paused": True, "autoplay": False}
            await page.mouse.move(5, 5)
            await expect(clip).not_to_have_class(re.compile(r"\brevealed\b"))
            assert "blur" in await video.evaluate(filter_of)
            assert len(media_requests) == 2, media_requests
            assert sorted(views(engine, case_ref)) == ["clip", "photo"]
        finally:
            await browser.close()


REASON_WORDS = {"platform_signal": "Platform escalated", "hash_match": "Hash bank match", "classifier": "Classifier",
                "user_report": "User report", "manual_escalation": "Escalated by a reviewer"}


async def a_case_of_every_reason(api: httpx.AsyncClient, api_keys: dict, engine: Engine) -> dict:
    """One user's case whose five items came each their own way: the platform's upload of a user in a live stream
    (urgent), a bank match, a classifier's very high priority, a user's report with its text, a reviewer's
    escalation."""
    creator = f"user-{uuid.uuid4().hex[:8]}"
    platform_key = headers(api_keys, Role.PLATFORM, REVIEW_PAGE_ORG)
    case_ref = await upload(api, api_keys, creator, "live", synthetic_image(71), indicators=json.dumps(
        {"live_session_active": True}))
    known = synthetic_image(72, size=(512, 384))
    bank = BankRepository(engine).create_bank(REVIEW_PAGE_ORG, f"known-{uuid.uuid4().hex[:6]}")
    BankRepository(engine).add_entries(bank, [NewEntry("pdq", hash_media(known).image.pdq, external_id="k-1",
                                                       classification="A1")])
    for content_id, data in (("matched", known), ("flagged", make_sandbox_image(Priority.VERY_HIGH, seed=73))):
        screened = await api.post("/v1/screenings/upload", headers=platform_key, files={
            "file": (f"{content_id}.png", data, "image/png")}, data={"content_id": content_id, "creator_id": creator})
        assert screened.status_code == 202, screened.text
    async with fake_platform() as platform:
        reported = await api.post("/v1/user-reports", headers=platform_key, json={
            "content_id": "reported", "creator_id": creator, "media_url": platform.add("reported", 74),
            "reporter_id": "reporter-7", "reason": "Child sexual exploitation", "csam": True,
            "report_text": "He wrote to me: send more or I will post your photos"})
        assert reported.status_code == 202, reported.text
        escalated = await api.post("/v1/escalations", headers=headers(api_keys, Role.CHILD_SAFETY_MODERATOR,
                                                                      REVIEW_PAGE_ORG), json={
            "content_id": "escalated", "creator_id": creator, "media_url": platform.add("escalated", 75),
            "reason": "Same face as in the reported photo"})
        assert escalated.status_code == 202, escalated.text
        case = await settled(api, api_keys, case_ref, 5)
    case["bank_name"] = bank.name
    return case


async def test_the_page_shows_why_each_item_is_there_and_the_form_reaches_the_decision(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client, engine: Engine,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    case = await a_case_of_every_reason(api, api_keys, engine)
    case_ref = case["case_ref"]
    items = {m["media_id"]: m for m in case["media"]}
    kinds = {media_id: [r["kind"] for r in m["reasons"]] for media_id, m in items.items()}
    assert kinds["matched"] == ["hash_match"] and kinds["flagged"] == ["classifier"], kinds
    assert kinds["reported"] == ["user_report"] and kinds["escalated"] == ["manual_escalation"], kinds
    assert case["urgency"]["level"] == "urgent", case["urgency"]
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    async with served(settings, temporal_client, engine) as url, playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.goto(f"{url}/review#{case_ref}")
            await page.fill("#username", username)
            await page.fill("#password", password)
            await page.click("#signin-button")
            await expect(page.locator("#media .media")).to_have_count(5)

            # Each item says why it is here: what, the detail (bank and distance, priority, the report's reason),
            # who (the reporting user, the escalating reviewer) and when, as the API recorded it.
            for media_id, item in items.items():
                reasons = page.locator(f'.media[data-media-id="{media_id}"] .reasons li')
                await expect(reasons).to_have_count(len(item["reasons"]))
                for shown, reason in zip(await reasons.all(), item["reasons"], strict=True):
                    expected = REASON_WORDS[reason["kind"]] + (f": {reason['detail']}" if reason["detail"] else "")
                    await expect(shown).to_contain_text(expected)
                    if reason["by"]:
                        await expect(shown).to_contain_text(f"by {reason['by']}")
                    if reason["at"]:
                        at = await page.evaluate("(iso) => new Date(iso).toLocaleString()", reason["at"])
                        await expect(shown).to_contain_text(at)
            matched = page.locator('.media[data-media-id="matched"]')
            await expect(matched.locator(".reasons")).to_contain_text(case["bank_name"])
            await expect(matched.locator(".reasons")).to_contain_text("distance")
            await expect(matched.locator(".analysis .match")).to_contain_text(
                re.compile(rf"Bank {case['bank_name']}: pdq distance \d+ \(A1\)"))
            await expect(page.locator('.media[data-media-id="flagged"] .reasons')).to_contain_text(
                "Classifier: VERY_HIGH")
            reported = page.locator('.media[data-media-id="reported"]')
            await expect(reported.locator(".reasons")).to_contain_text(
                "User report: Child sexual exploitation · by reporter-7")
            await expect(reported.locator(".report-text")).to_have_text(
                "He wrote to me: send more or I will post your photos")
            await expect(page.locator('.media[data-media-id="escalated"] .reasons')).to_contain_text(
                "Escalated by a reviewer: Same face as in the reported photo · by child_safety_moderator")

            # The urgency: its level, each reason and the evidence each points at.
            await expect(page.locator(".case-head .level")).to_have_text("URGENT")
            urgency = page.locator("#urgency-reasons li")
            await expect(urgency).to_have_count(len(case["urgency"]["reasons"]))
            for shown, reason in zip(await urgency.all(), case["urgency"]["reasons"], strict=True):
                await expect(shown).to_contain_text(reason["text"])
                await expect(shown.locator(".evidence")).to_have_text(reason["evidence"])
            evidence = {e for r in case["urgency"]["reasons"] for e in r["evidence"]}
            assert {"platform.live_session", "user_report:reported"} <= evidence, case["urgency"]["reasons"]

            # Victim, intended recipient and additional information, typed in the form, reach the decision.
            await page.keyboard.press("v")  # the item under the cursor, revealed before it is reported
            first = page.locator("#media .media.current")
            await revealed(page, first)
            await page.keyboard.press("3")
            for key in ["i", "1"]:
                await page.keyboard.press(key)
            await page.fill("#victim-screen_name", "little_star_12")
            await page.fill("#victim-email", "star12@example.net")
            await page.fill("#recipient-esp_identifier", "kid-account-99")
            await page.fill("#recipient-first_name", "Sam")
            await page.fill("#info", "The user contacted the victim through three new accounts this week.")
            await page.click("#submit")
            await expect(page.locator("#confirm")).to_be_visible()
            await expect(page.locator("#confirm-body")).to_contain_text("Victim")
            await expect(page.locator("#confirm-body")).to_contain_text("three new accounts")
            await page.click("#confirm-file")
            await expect(page.locator("#filing-status")).to_contain_text("Filing")
            reported_id = await first.get_attribute("data-media-id")
        finally:
            await browser.close()

    reviewer = headers(api_keys, Role.MODERATOR_MANAGER, REVIEW_PAGE_ORG)
    decision = (await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1}, headers=reviewer)).json()["decision"]
    assert [(m["media_id"], m["classification"]) for m in decision["media"] if m["reported"]] == [(reported_id, "B1")]
    [victim] = decision["victims"]
    assert victim["screen_name"] == "little_star_12" and [e["value"] for e in victim["emails"]] == [
        "star12@example.net"]
    [recipient] = decision["intended_recipients"]
    assert recipient["esp_identifier"] == "kid-account-99" and recipient["person"]["first_name"] == "Sam"
    assert decision["additional_info"] == "The user contacted the victim through three new accounts this week."


async def test_a_refused_filing_says_what_to_do_and_the_dashboards_retry_files_it(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client, engine: Engine,
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    case_ref = await new_case(api, api_keys, REVIEW_PAGE_ORG, 91_001)
    username, password = new_user(monkeypatch, settings, REVIEW_PAGE_ORG)
    # NCMEC refuses the report once (3100: not authorised to submit, the org's account): the case needs attention.
    sandbox.state.faults.configure(error_rate=1.0, error_codes=[3100], error_count=1)
    try:
        async with served(settings, temporal_client, engine) as url, \
                playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                await page.goto(f"{url}/review#{case_ref}")
                await page.fill("#username", username)
                await page.fill("#password", password)
                await page.click("#signin-button")
                await expect(page.locator("#media .media")).to_have_count(1)
                await page.keyboard.press("v")
                await revealed(page, page.locator("#media .media.current"))
                for key in ["3", "i", "1", "Enter"]:
                    await page.keyboard.press(key)
                await expect(page.locator("#confirm-file")).to_be_enabled()
                await page.keyboard.press("Enter")

                # The review page says it failed, why, and where the retry is.
                await expect(page.locator("#filing-failure")).to_contain_text("3100", timeout=60_000)
                await expect(page.locator("#filing-next")).to_contain_text("retry the filing under Needs attention")
                await page.click("#filing-retry-link")
                await page.wait_for_url(re.compile(r"/dashboard$"))

                # The dashboard lists the case as needing attention; its Retry files it and shows the report id.
                row = page.locator(f'#attention tr[data-case-ref="{case_ref}"]')
                await expect(row).to_contain_text("needs attention")
                await row.locator("button.retry").click()
                report_id = page.locator("#retry-report-id")
                await expect(report_id).to_have_text(re.compile(r"^\d+$"), timeout=60_000)
                shown = await report_id.text_content()
                await expect(row).to_have_count(0)  # no longer needing attention
                await expect(page.locator(f'#reports td:text-is("{shown}")')).to_have_count(1)  # listed as filed
            finally:
                await browser.close()
    finally:
        sandbox.state.faults.reset()
    case = (await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1},
                          headers=headers(api_keys, Role.MODERATOR_MANAGER, REVIEW_PAGE_ORG))).json()
    assert case["status"] == "filed" and str(case["filing"]["report_id"]) == shown
