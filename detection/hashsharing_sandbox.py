"""A stand-in for NCMEC's hash-sharing API: ``/v2/status`` and paged ``/v2/entries``, XML, Basic auth.

Entries are hashes of benign synthetic images (``tipline.synthetic``), never real material. Tests add
entries and deletions while it runs (``app.state.hashsharing``) and can make chosen pages fail once, to
exercise a fetch that resumes from its checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import Response
from lxml import etree

from detection.hashsharing import format_time, parse_time
from detection.media_hashes import hash_media
from tipline.synthetic import synthetic_image

NAMESPACE = "https://hashsharing.ncmec.org/hashsharing/v2"
SANDBOX_USERNAME = "hashsharing-sandbox"
SANDBOX_PASSWORD = "sandbox-password"


@dataclass
class SandboxEntry:
    id: str
    timestamp: datetime
    member_id: int = 1
    member_name: str = "Sandbox Member"
    kind: Literal["image", "video"] = "image"
    classification: str | None = "A1"
    fingerprints: dict[str, str] = field(default_factory=dict)  # element name -> value, e.g. {"md5": ...}
    deleted: bool = False
    seed: int | None = None  # the synthetic image the fingerprints come from, if any

    @property
    def external_id(self) -> str:
        return f"{self.member_id}-{self.id}"


def synthetic_entry(seed: int, timestamp: datetime, *, member_id: int = 1, classification: str | None = "A1",
                    entry_id: str | None = None) -> SandboxEntry:
    """An image entry with the MD5, SHA-1 and PDQ of ``synthetic_image(seed)``, and a made-up PhotoDNA."""
    media = hash_media(synthetic_image(seed))
    assert media.image is not None
    fingerprints = {"md5": media.digests.md5, "sha1": media.digests.sha1, "pdq": media.image.pdq,
                    # Proprietary hashes appear in the real feed; this one only checks that they are ignored.
                    "pdna": base64.b64encode(bytes(144)).decode()}
    return SandboxEntry(id=entry_id or f"img-{seed}", timestamp=timestamp, member_id=member_id,
                        classification=classification, fingerprints=fingerprints, seed=seed)


def synthetic_entries(seeds: Iterable[int], *, start: datetime, step: timedelta = timedelta(minutes=1),
                      member_id: int = 1) -> list[SandboxEntry]:
    return [synthetic_entry(seed, start + i * step, member_id=member_id) for i, seed in enumerate(seeds)]


def deletion_of(entry: SandboxEntry, timestamp: datetime) -> SandboxEntry:
    return SandboxEntry(id=entry.id, timestamp=timestamp, member_id=entry.member_id, member_name=entry.member_name,
                        kind=entry.kind, classification=None, deleted=True)


@dataclass
class HashSharingSandbox:
    entries: list[SandboxEntry]
    page_size: int = 1000
    # 1-based page numbers (within a from/to window) that answer 503 the next time they are asked for.
    fail_pages: set[int] = field(default_factory=set)
    username: str = SANDBOX_USERNAME
    password: str = SANDBOX_PASSWORD
    requests: list[str] = field(default_factory=list)  # "path?query" of every authenticated request

    def window(self, start: datetime, end: datetime) -> list[SandboxEntry]:
        # The real feed is not time-ordered; a stable order is all a cursor needs.
        chosen = [e for e in self.entries if start <= e.timestamp < end]
        return sorted(chosen, key=lambda e: (e.timestamp, e.member_id, e.id))


def _element(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}", **attrs)
    if text is not None:
        child.text = text
    return child


def _xml(root: etree._Element, status: int = 200) -> Response:
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    return Response(content=body, status_code=status, media_type="application/xml")


def _entries_xml(page: list[SandboxEntry], next_url: str | None) -> etree._Element:
    root = etree.Element(f"{{{NAMESPACE}}}queryResult", nsmap={None: NAMESPACE})
    for kind, group_tag in (("image", "images"), ("video", "videos")):
        items = [e for e in page if e.kind == kind]
        if not items:
            continue
        group = _element(root, group_tag, count=str(len(items)),
                         maxTimestamp=format_time(max(e.timestamp for e in items)))
        for e in items:
            item = _element(group, ("deleted" + kind.title()) if e.deleted else kind)
            _element(item, "member", e.member_name, id=str(e.member_id))
            _element(item, "timestamp", format_time(e.timestamp))
            _element(item, "id", e.id)
            if e.deleted:
                continue
            if e.classification:
                _element(item, "classification", e.classification)
            prints = _element(item, "fingerprints")
            for name, value in e.fingerprints.items():
                _element(prints, name, value)
    if next_url:
        _element(_element(root, "paging"), "next", next_url)
    return root


def _authorised(request: Request, state: HashSharingSandbox) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(sep) and secrets.compare_digest(f"{user}:{password}".encode(),
                                                f"{state.username}:{state.password}".encode())


def create_hashsharing_sandbox_app(
    entries: Iterable[SandboxEntry],
    *,
    page_size: int = 1000,
    fail_pages: set[int] | frozenset[int] = frozenset(),
    username: str = SANDBOX_USERNAME,
    password: str = SANDBOX_PASSWORD,
) -> FastAPI:
    state = HashSharingSandbox(list(entries), page_size=page_size, fail_pages=set(fail_pages), username=username,
                               password=password)
    app = FastAPI(title="NCMEC hash-sharing sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.hashsharing = state

    @app.middleware("http")
    async def basic_auth(request: Request, call_next):  # type: ignore[no-untyped-def]
        if not _authorised(request, state):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="hashsharing"'})
        state.requests.append(f"{request.url.path}?{request.url.query}")
        return await call_next(request)

    @app.get("/v2/status")
    def status() -> Response:
        root = etree.Element(f"{{{NAMESPACE}}}status", nsmap={None: NAMESPACE})
        _element(root, "ipAddress", "127.0.0.1")
        _element(root, "username", state.username)
        _element(root, "member", "Sandbox Member", id="1")
        return _xml(root)

    @app.get("/v2/entries")
    def entries_page(request: Request) -> Response:
        q = request.query_params
        start, end = parse_time(q.get("from")), parse_time(q.get("to"))
        if start is None or end is None:
            return Response("from and to are required (YYYY-MM-DDTHH:MM:SSZ)", status_code=400)
        size = int(q.get("size", state.page_size))
        first = int(q.get("start", 1))  # 1-based, like NCMEC's cursor
        if size < 1 or first < 1:
            return Response("bad paging parameters", status_code=400)
        page_number = (first - 1) // size + 1
        if page_number in state.fail_pages:
            state.fail_pages.discard(page_number)  # a transient failure: the retry succeeds
            return Response("injected failure", status_code=503)
        window = state.window(start, end)
        page = window[first - 1 : first - 1 + size]
        next_url = None
        if first - 1 + size < len(window):
            following = first + size
            next_url = "/v2/entries?" + urlencode({
                "from": format_time(start), "to": format_time(end),
                "start": following, "size": size, "max": following + size - 1,
            })
        return _xml(_entries_xml(page, next_url))

    return app


def utc(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)
