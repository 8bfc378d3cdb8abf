"""The review page is served, and every API path its script calls exists."""

from __future__ import annotations

import re

import httpx

from api.app import STATIC, create_app
from tipline.settings import Settings

# Claiming (issue 14 point 5) lands in parallel; the page already calls it and tolerates its absence (404).
CLAIM_PATHS = {"/v1/cases/{case_ref}/claim"}


async def test_the_review_page_calls_only_endpoints_that_exist(api: httpx.AsyncClient, settings: Settings) -> None:
    page = await api.get("/review")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    # Its script and style are files of its own (the page's CSP allows no inline code).
    style = await api.get(re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text)[1])
    entry = re.search(r'<script type="module" src="([^"]+)"></script>', page.text)[1]
    assert style.status_code == 200 and (await api.get(entry)).status_code == 200
    # Media hidden until the reviewer chooses: blurred and greyscale by default, the reviewer's settings aside.
    assert "blur(var(--hidden-blur))" in style.text and "--hidden-grey: 1" in style.text
    # Every module the entry imports is served from here too (no asset from the internet).
    modules = [await api.get(f"/static/js/{path.name}") for path in sorted(STATIC.glob("js/*.js"))]
    assert modules and all(m.status_code == 200 for m in modules)
    assert not any(re.search(r'from\s+"https?:', m.text) for m in modules)
    paths = set(create_app(settings).openapi()["paths"]) | CLAIM_PATHS
    called = set(re.findall(r'`?(/v1/[a-z/${}._-]+)', "".join(m.text for m in modules)))
    assert called, "the page calls no API"
    for path in called:
        pattern = re.sub(r"\$\{[^}]+\}", "{x}", path.split("?")[0])
        assert any(re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), pattern.replace("{x}", "x")) for p in paths), path
