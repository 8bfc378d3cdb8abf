"""The reviewer's pages besides the case review page: the queue with claims, triage, and the reports dashboard.

Plain HTML with ES modules from /static: no build step, nothing fetched from elsewhere."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.static_files import STATIC

router = APIRouter(include_in_schema=False)

# Each page runs only its own modules and style, talks only to this API, and shows media from blob: URLs.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src blob:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
PAGES = {"/queue": "queue.html", "/triage": "triage.html", "/dashboard": "dashboard.html"}


def _page(file_name: str) -> Callable[[], FileResponse]:
    def serve() -> FileResponse:
        return FileResponse(STATIC / file_name, headers={"Cache-Control": "no-store",
                                                         "Content-Security-Policy": PAGE_CSP})
    return serve


for _path, _file in PAGES.items():
    router.add_api_route(_path, _page(_file), methods=["GET"])
