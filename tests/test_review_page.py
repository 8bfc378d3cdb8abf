"""The review page is served, and every API path its script calls exists."""

from __future__ import annotations

import re

import httpx

from api.app import create_app
from tipline.settings import Settings


async def test_the_review_page_calls_only_endpoints_that_exist(api: httpx.AsyncClient, settings: Settings) -> None:
    page = await api.get("/review")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    # Its script and style are files of its own (the page's CSP allows no inline code).
    style = await api.get(re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text)[1])
    script = await api.get(re.search(r'<script src="([^"]+)"></script>', page.text)[1])
    assert style.status_code == 200 and script.status_code == 200
    assert "blur(" in style.text and "grayscale(1)" in style.text  # media hidden until the reviewer chooses
    paths = set(create_app(settings).openapi()["paths"])
    called = set(re.findall(r'`?(/v1/[a-z/${}._-]+)', script.text))
    assert called, "the page calls no API"
    for path in called:
        pattern = re.sub(r"\$\{[^}]+\}", "{x}", path.split("?")[0])
        assert any(re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), pattern.replace("{x}", "x")) for p in paths), path
