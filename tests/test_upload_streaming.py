"""Uploads go from the request stream into the encrypted evidence store: no plaintext byte on disk, ever, and
nothing stored for a request that is refused (too large, empty, truncated, bad fields)."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from models.records import Role
from tests.helpers import headers
from tipline.evidence import EvidenceStore
from tipline.settings import Settings

# Synthetic, benign bytes: a PNG signature, then a marker that must never be found on disk in the clear.
MARKER = b"TIPLINE-PLAINTEXT-MARKER-"
CHUNK = 64 * 1024
BOUNDARY = "tipline-test-boundary"


def marked_payload(size: int) -> bytes:
    unit = MARKER + uuid.uuid4().hex.encode()
    return (b"\x89PNG\r\n\x1a\n" + unit * (size // len(unit) + 1))[:size]


def multipart_head(fields: dict[str, str], file_name: str = "big.png", content_type: str = "image/png") -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             for name, value in fields.items()]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n")
    return "".join(parts).encode()


def multipart_tail(fields: dict[str, str] | None = None) -> bytes:
    parts = [f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}'
             for name, value in (fields or {}).items()]
    return ("".join(parts) + f"\r\n--{BOUNDARY}--\r\n").encode()


def plaintext_on_disk(roots: list[Path]) -> list[str]:
    """Every file under ``roots``, or open in this process (deleted temp files included), holding MARKER."""
    candidates = [path for root in roots for path in root.rglob("*")]
    candidates += [Path("/proc/self/fd") / fd for fd in os.listdir("/proc/self/fd")]
    hits = []
    for path in candidates:
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                continue  # only files: reading a pipe or socket would take bytes meant for someone else
            with open(path, "rb") as handle:
                if MARKER in handle.read():
                    hits.append(f"{path} -> {os.path.realpath(path)}")
        except OSError:
            continue  # gone in between
    return hits


@pytest.fixture
def private_tmp(tmp_path: Path) -> Iterator[Path]:
    """The system temp dir for this test alone: where a multipart parser would spool (Starlette: over 1 MB)."""
    spool = tmp_path / "tmp"
    spool.mkdir()
    previous = tempfile.tempdir
    tempfile.tempdir = str(spool)
    try:
        yield spool
    finally:
        tempfile.tempdir = previous


async def test_an_upload_over_the_old_spool_threshold_never_touches_the_disk_in_the_clear(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, private_tmp: Path
) -> None:
    payload = marked_payload(4 << 20)  # four times Starlette's 1 MB spool threshold
    head = multipart_head({"content_id": "big-1", "creator_id": f"user-{uuid.uuid4().hex[:8]}"})
    scans: list[list[str]] = []

    async def body() -> AsyncIterator[bytes]:
        yield head
        for offset in range(0, len(payload), CHUNK):
            yield payload[offset:offset + CHUNK]
            if offset in (2 << 20, 3 << 20):  # mid-upload: the app has taken megabytes of media by now
                scans.append(plaintext_on_disk([private_tmp, settings.data_dir]))
        yield multipart_tail()

    response = await api.post("/v1/content/upload", content=body(), headers={
        **headers(api_keys, Role.PLATFORM), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.status_code == 202, response.text
    assert scans == [[], []], f"plaintext found mid-upload: {scans}"
    assert plaintext_on_disk([private_tmp, settings.data_dir]) == []
    store = EvidenceStore.from_settings(settings)
    sha256 = hashlib.sha256(payload).hexdigest()
    assert store.read_bytes(sha256) == payload  # stored whole, encrypted
    assert MARKER not in store.path_for(sha256).read_bytes()


@pytest.fixture(scope="module")
async def small_limits_api(settings: Settings, temporal_client: Client, engine: Engine
                           ) -> AsyncIterator[httpx.AsyncClient]:
    limited = settings.model_copy(update={"max_upload_bytes": 256 * 1024, "max_json_body_bytes": 16 * 1024})
    app = create_app(limited, temporal=temporal_client, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as client:
        yield client


def stored(settings: Settings, payload: bytes) -> bool:
    return EvidenceStore.from_settings(settings).exists(hashlib.sha256(payload).hexdigest())


async def post_multipart(client: httpx.AsyncClient, api_keys: dict, body: bytes) -> httpx.Response:
    return await client.post("/v1/content/upload", content=body, headers={
        **headers(api_keys, Role.PLATFORM), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


async def test_an_upload_over_the_limit_is_refused_with_413_naming_it_and_nothing_is_stored(
    small_limits_api: httpx.AsyncClient, api_keys: dict, settings: Settings
) -> None:
    payload = marked_payload(300 * 1024)
    sent = 0

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced as bytes arrive
        nonlocal sent
        yield multipart_head({"content_id": "too-big", "creator_id": "user-1"})
        for offset in range(0, len(payload), CHUNK):
            sent += CHUNK
            yield payload[offset:offset + CHUNK]
        yield multipart_tail()

    response = await small_limits_api.post("/v1/content/upload", content=body(), headers={
        **headers(api_keys, Role.PLATFORM), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.status_code == 413, response.text
    problem = response.json()
    assert problem["errors"] == [{"field": "body.file", "message": "larger than the limit of 262144 bytes"}]
    assert "TIPLINE_MAX_UPLOAD_BYTES" in problem["detail"]
    assert sent <= 256 * 1024 + CHUNK  # refused as the limit was crossed, not after reading everything
    assert not stored(settings, payload)


@pytest.mark.parametrize("user_first", [True, False])
async def test_oversized_user_metadata_is_refused_before_any_evidence_is_stored(
    small_limits_api: httpx.AsyncClient, api_keys: dict, settings: Settings, user_first: bool
) -> None:
    payload = marked_payload(20 * 1024)
    user = '{"screen_name": "' + "x" * (40 * 1024) + '"}'
    fields = {"content_id": "meta", "creator_id": "user-1"}
    body = (multipart_head({**fields, "user": user}) + payload + multipart_tail() if user_first
            else multipart_head(fields) + payload + multipart_tail({"user": user}))
    response = await post_multipart(small_limits_api, api_keys, body)
    assert response.status_code == 413, response.text
    assert response.json()["errors"][0]["field"] == "body.user"
    assert "TIPLINE_MAX_JSON_BODY_BYTES" in response.json()["detail"]
    assert not stored(settings, payload)


FILE = marked_payload(4096)


@pytest.mark.parametrize(("body", "field", "message"), [
    (multipart_head({"content_id": "e", "creator_id": "u"}) + multipart_tail(), "body.file", "the file is empty"),
    (multipart_head({"content_id": "t", "creator_id": "u"}) + b"\x89PNG truncated, no closing boundary",
     "body", "the multipart body ends before its closing boundary"),
    (multipart_head({"content_id": "x", "creator_id": "u", "creater_id": "u"}) + FILE + multipart_tail(),
     "body.creater_id", "unknown field"),
    (multipart_head({"creator_id": "u"}) + FILE + multipart_tail(), "body.content_id", "Field required"),
    (multipart_head({"content_id": "n", "creator_id": "u", "indicators": '{"live_sesion_active": true}'})
     + FILE + multipart_tail(), "body.indicators.live_sesion_active", "Extra inputs are not permitted"),
    (multipart_head({"content_id": "n", "creator_id": "u"}, content_type="text/html; x=\x01")
     + FILE + multipart_tail(), "body.file.content_type", None),
])
async def test_a_refused_upload_names_the_field_and_stores_nothing(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, body: bytes, field: str, message: str | None
) -> None:
    response = await post_multipart(api, api_keys, body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert errors[0]["field"] == field, errors
    if message is not None:
        assert errors[0]["message"] == message
    assert not stored(settings, FILE)


async def test_an_upload_that_is_not_multipart_is_refused_with_415(api: httpx.AsyncClient, api_keys: dict) -> None:
    response = await api.post("/v1/content/upload", json={"content_id": "x"}, headers=headers(api_keys, Role.PLATFORM))
    assert response.status_code == 415
    assert response.json()["errors"][0]["field"] == "body"


async def test_a_json_body_over_its_limit_is_refused_before_it_is_read(
    small_limits_api: httpx.AsyncClient, api_keys: dict
) -> None:
    declared = await small_limits_api.post("/v1/content", content=b"{" + b" " * (32 * 1024) + b"}", headers={
        **headers(api_keys, Role.PLATFORM), "Content-Type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["errors"] == [{"field": "body", "message": "larger than the limit of 16384 bytes"}]
    assert "TIPLINE_MAX_JSON_BODY_BYTES" in declared.json()["detail"]

    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # chunked, no Content-Length: never ends unless refused
        nonlocal sent
        yield b'{"user": {"screen_name": "'
        while True:
            sent += 4096
            yield b"x" * 4096

    chunked = await small_limits_api.post("/v1/content", content=endless(), headers={
        **headers(api_keys, Role.PLATFORM), "Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert sent <= 16 * 1024 + 4096
