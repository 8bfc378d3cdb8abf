"""NCMEC hash-sharing fetch against the sandbox over real loopback HTTP: paging, deletions, resumption."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from detection.banks import BankRepository
from detection.hashsharing import (
    CHECKPOINT,
    FetchResult,
    HashSharingClient,
    HashSharingError,
    fetch_into_bank,
    iter_all_entries,
    load_checkpoint,
    parse_entries,
    parse_status,
)
from detection.hashsharing_sandbox import (
    SANDBOX_PASSWORD,
    SANDBOX_USERNAME,
    HashSharingSandbox,
    SandboxEntry,
    create_hashsharing_sandbox_app,
    deletion_of,
    synthetic_entries,
    utc,
)
from detection.matcher import BankMatcher
from detection.media_hashes import hash_media
from models.hash_banks import HashBank, HashBankEntry
from tests.hostile_xml import SECRET_MARKER, billion_laughs, external_entity, write_secret
from tipline.http_server import serve_app
from tipline.synthetic import synthetic_image

ENTRY = HashBankEntry.__table__
FIRST_FETCH_UNTIL = utc(2026, 1, 1)


@dataclass
class Feed:
    url: str
    state: HashSharingSandbox

    def client(self, *, retries: int = 0, password: str = SANDBOX_PASSWORD) -> HashSharingClient:
        return HashSharingClient(self.url, SANDBOX_USERNAME, password, retries=retries, timeout=10)


def make_entries(count: int, first_seed: int) -> list[SandboxEntry]:
    return synthetic_entries(range(first_seed, first_seed + count), start=utc(2025, 3, 1), step=timedelta(hours=1))


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    app = create_hashsharing_sandbox_app(make_entries(23, 5000), page_size=5)
    async with serve_app(app) as url:
        yield Feed(url, app.state.hashsharing)


def new_bank(engine: Engine) -> HashBank:
    return BankRepository(engine).create_bank(f"hs-{uuid.uuid4().hex[:12]}", "ncmec", source="ncmec")


async def fetch(feed: Feed, engine: Engine, bank: HashBank, *, until: datetime = FIRST_FETCH_UNTIL,
                window: timedelta | None = None) -> FetchResult:
    """One fetch run in a worker thread: the client is synchronous and the sandbox serves on this loop."""
    with feed.client() as client:
        return await asyncio.to_thread(fetch_into_bank, engine, bank, client, until=until, window=window)


def live_rows(engine: Engine, bank: HashBank) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(ENTRY.c.external_id, ENTRY.c.hash_type, ENTRY.c.value)
                            .where(ENTRY.c.bank_id == bank.id, ENTRY.c.deleted_at.is_(None))).all()
    return sorted((e, t, v) for e, t, v in rows)


def expected_rows(entries: list[SandboxEntry]) -> list[tuple[str, str, str]]:
    return sorted((e.external_id, t, e.fingerprints[t]) for e in entries for t in ("md5", "sha1", "pdq"))


async def test_status_and_paged_entries_over_http(feed: Feed) -> None:
    with feed.client() as client:
        status = await asyncio.to_thread(client.status)
        assert (status.member_id, status.username) == (1, SANDBOX_USERNAME)
        entries = await asyncio.to_thread(lambda: list(iter_all_entries(client, utc(2025), utc(2026))))
    assert [e.id for e in entries] == [e.id for e in feed.state.entries]
    assert entries[0].fingerprints.keys() == {"md5", "sha1", "pdq", "pdna"}
    assert sum("start=" in r for r in feed.state.requests) == 4  # 23 entries, 5 a page: 1 + 4 next pages


async def test_wrong_credentials_are_refused(feed: Feed) -> None:
    with feed.client(password="wrong") as client, pytest.raises(HashSharingError) as error:
        await asyncio.to_thread(client.status)
    assert error.value.status_code == 401


def test_the_feed_xml_shape_matches_ncmec() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">
  <images count="2" maxTimestamp="2017-10-24T15:10:00Z">
    <image><member id="42">Example</member><timestamp>2017-10-24T15:00:00Z</timestamp><id>image1</id>
      <classification>A1</classification>
      <fingerprints><md5>A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1</md5><pdna>abc</pdna></fingerprints></image>
    <deletedImage><member id="43">Other</member><id>image4</id><timestamp>2017-10-24T15:10:00Z</timestamp>
    </deletedImage>
  </images>
  <videos count="1" maxTimestamp="2017-10-24T15:20:00Z">
    <video><member id="42">Example</member><id>video1</id>
      <fingerprints><md5>b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1</md5><tmk-pdqf rel="self" href="/v2/x"/></fingerprints>
    </video>
  </videos>
  <paging><next>/v2/entries?from=2017-10-20T00%3A00%3A00.000Z&amp;start=2001&amp;size=1000&amp;max=3000</next></paging>
</queryResult>"""
    page = parse_entries(body)
    assert [(e.external_id, e.kind, e.deleted, e.classification) for e in page.entries] == [
        ("42-image1", "image", False, "A1"), ("43-image4", "image", True, None), ("42-video1", "video", False, None)]
    assert page.entries[0].fingerprints == {"md5": "A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1", "pdna": "abc"}
    assert page.entries[2].fingerprints == {"md5": "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"}
    assert page.next_url == "/v2/entries?from=2017-10-20T00%3A00%3A00.000Z&start=2001&size=1000&max=3000"


def test_a_feed_page_with_a_doctype_is_refused_and_nothing_is_resolved(tmp_path: Path) -> None:
    entry = "<images><image><member id=\"42\">Example</member><id>image1</id><fingerprints><md5>"
    tail = "</md5></fingerprints></image></images>"
    hostile = [
        billion_laughs("queryResult", entry).replace(b"&lol9;", b"&lol9;" + tail.encode()),
        external_entity("queryResult", write_secret(tmp_path), entry).replace(b"&xxe;", b"&xxe;" + tail.encode()),
    ]
    for body in hostile:
        with pytest.raises(HashSharingError, match="DOCTYPE") as info:
            parse_entries(body)
        assert SECRET_MARKER not in str(info.value)
    with pytest.raises(HashSharingError, match="DOCTYPE"):
        parse_status(external_entity("status", tmp_path / "secret.txt", "<member id=\"1\">&xxe;</member>"))


async def test_fetched_entries_match_and_a_deletion_stops_the_match_after_refresh(feed: Feed, engine: Engine) -> None:
    bank = new_bank(engine)
    result = await fetch(feed, engine, bank)
    assert (result.pages, result.entries, result.added) == (5, 23, 69)  # MD5, SHA-1 and PDQ of each image
    assert live_rows(engine, bank) == expected_rows(feed.state.entries)

    target = feed.state.entries[7]
    assert target.seed is not None
    media = hash_media(synthetic_image(target.seed))
    matcher = BankMatcher(engine)
    matcher.load()
    matches = matcher.match(bank.org_id, media)
    assert {m.hash_type for m in matches} == {"md5", "sha1", "pdq"}
    assert {(m.external_id, m.classification) for m in matches} == {(target.external_id, "A1")}

    feed.state.entries.append(deletion_of(target, FIRST_FETCH_UNTIL + timedelta(minutes=5)))
    second = await fetch(feed, engine, bank, until=utc(2026, 2, 1))
    assert (second.pages, second.removed, second.added) == (1, 3, 0)
    assert matcher.refresh().entries_removed == 3
    assert matcher.match(bank.org_id, media) == []


async def test_an_interrupted_fetch_resumes_from_its_checkpoint(feed: Feed, engine: Engine) -> None:
    bank = new_bank(engine)
    feed.state.fail_pages = {3}
    with pytest.raises(HashSharingError):
        await fetch(feed, engine, bank)
    checkpoint = load_checkpoint(engine, bank)
    assert checkpoint is not None and checkpoint.pages_fetched == 2 and checkpoint.next_url
    assert "start=11" in checkpoint.next_url
    assert len(live_rows(engine, bank)) == 10 * 3  # exactly the two pages written

    requests_before = len(feed.state.requests)
    result = await fetch(feed, engine, bank)
    resumed = feed.state.requests[requests_before:]
    assert "start=11" in resumed[0]  # not from the beginning
    assert (result.pages, result.added, result.unchanged) == (3, 13 * 3, 0)
    assert live_rows(engine, bank) == expected_rows(feed.state.entries)  # no gap
    with engine.connect() as conn:  # and no duplicate, live or tombstoned
        assert conn.execute(select(func.count()).where(ENTRY.c.bank_id == bank.id)).scalar_one() == 23 * 3
    checkpoint = load_checkpoint(engine, bank)
    assert checkpoint is not None and checkpoint.next_url is None and checkpoint.window_from == FIRST_FETCH_UNTIL

    again = await fetch(feed, engine, bank)  # caught up: nothing new, nothing rewritten
    assert again.pages == 0


async def test_an_expired_cursor_restarts_its_window_without_duplicates(feed: Feed, engine: Engine) -> None:
    bank = new_bank(engine)
    feed.state.fail_pages = {2}
    with pytest.raises(HashSharingError):
        await fetch(feed, engine, bank)
    with engine.begin() as conn:  # as if the 12-hour cursor had lapsed: the sandbox refuses it (400)
        conn.execute(CHECKPOINT.update().where(CHECKPOINT.c.bank_id == bank.id)
                     .values(next_url="/v2/entries?from=bad&to=bad&start=6&size=5&max=10"))
    result = await fetch(feed, engine, bank)
    assert result.restarted_windows == 1 and result.unchanged == 5 * 3
    assert live_rows(engine, bank) == expected_rows(feed.state.entries)


async def test_the_fetch_command(feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from tipline.bank_cli import add_bank_commands

    monkeypatch.setenv("TIPLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TIPLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("TIPLINE_HASHSHARING_USERNAME", SANDBOX_USERNAME)
    monkeypatch.setenv("TIPLINE_HASHSHARING_PASSWORD", SANDBOX_PASSWORD)
    parser = argparse.ArgumentParser(prog="tipline")
    add_bank_commands(parser.add_subparsers(required=True))

    def run(*argv: str) -> None:
        args = parser.parse_args(list(argv))
        args.run(args)

    run("bank", "create", "--org", "demo", "--name", "ncmec", "--source", "ncmec")
    await asyncio.to_thread(run, "bank", "fetch-ncmec", "--org", "demo", "--bank", "ncmec", "--url", feed.url)
    out, _ = capsys.readouterr()
    assert "23 entries: added 69 hashes" in out


async def test_time_windows_cover_the_whole_feed_exactly_once(feed: Feed, engine: Engine) -> None:
    bank = new_bank(engine)
    result = await fetch(feed, engine, bank, window=timedelta(days=30))
    window_requests = [r for r in feed.state.requests if "start=" not in r]
    assert len(window_requests) > 10  # years of mostly empty feed, asked for in growing windows
    assert result.entries == 23 and result.added == 69
    assert live_rows(engine, bank) == expected_rows(feed.state.entries)
    checkpoint = load_checkpoint(engine, bank)
    assert checkpoint is not None and checkpoint.window_from == FIRST_FETCH_UNTIL and checkpoint.next_url is None
