"""NCMEC hash-sharing API client, and a checkpointed fetch of its feed into a hash bank.

The API (XML over HTTPS, HTTP Basic auth), as documented by NCMEC and used by python-threatexchange:

* ``GET {base}/v2/status`` -> ``<status><username/><member id="N">name</member></status>``
* ``GET {base}/v2/entries?from=T&to=T`` -> ``<queryResult>`` holding ``<images maxTimestamp=..>`` and
  ``<videos>`` lists of ``<image>``/``<video>`` entries (``<member id>``, ``<id>``, ``<timestamp>``,
  ``<classification>``, ``<fingerprints>`` with ``<md5>``, ``<sha1>``, ``<pdq>``, ``<pdna>``, ...) and
  ``<deletedImage>``/``<deletedVideo>`` tombstones, plus ``<paging><next>/v2/entries?...&start=&size=&max=
  </next></paging>`` while more pages (1000 entries each) remain. ``next`` is relative to the base URL and
  stays valid for about 12 hours. Elements carry the ``https://hashsharing.ncmec.org/hashsharing/v2``
  namespace, which we ignore. Times are UTC, ``YYYY-MM-DDTHH:MM:SSZ``.

Assumptions (not documented where we could read them): an entry's id is unique per member, so an entry is
identified as ``"{member}-{id}"``; entries in a time window are not ordered by time, so only a fully paged
window is a safe place to advance ``from``; a window's bounds are inclusive at ``from``.

Unlike stock HMA, which keeps only image PDQ and video MD5, we keep MD5 and SHA-1 of images and videos and
PDQ of images: exact digests are what a platform can match on every upload for free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx
from lxml import etree
from sqlalchemy import Connection, Engine, insert, select, update
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from detection.banks import FeedApplyResult, FeedUpdate, apply_feed_updates, validate_hash
from models.hash_banks import BankHashType, HashBank, HashSharingCheckpoint
from models.records import utcnow
from tipline.safe_xml import XmlRefused, parse_xml

ENVIRONMENTS: dict[str, str] = {
    "industry": "https://report.cybertip.org/hashsharing",
    "ngo": "https://hashsharing.ncmec.org/npo",
    "exploitative": "https://hashsharing.ncmec.org/exploitative",
    "test_industry": "https://exttest.cybertip.org/hashsharing",
    "test_ngo": "https://hashsharing-test.ncmec.org/npo",
    "test_exploitative": "https://hashsharing-test.ncmec.org/exploitative",
}
DEFAULT_BASE_URL = ENVIRONMENTS["industry"]
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The first fetch of a bank starts here: before any hash-sharing entry existed.
FEED_START = datetime(2000, 1, 1, tzinfo=UTC)
# Do not ask for the last few seconds: entries still being written there could be missed by a window that
# is then closed for good (python-threatexchange keeps the same margin).
DEFAULT_LAG = timedelta(seconds=5)
# Time windows (see fetch_into_bank): shrink fast when busy, grow slowly when empty, as python-threatexchange
# learned to do against the real service.
DEFAULT_WINDOW = timedelta(days=30)
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=365)
BUSY_WINDOW_PAGES = 100
# fingerprint element -> our hash type, per entry kind. PDQ is an image hash; digests apply to both kinds.
KEPT_FINGERPRINTS: dict[str, dict[str, BankHashType]] = {
    "image": {"md5": BankHashType.MD5, "sha1": BankHashType.SHA1, "pdq": BankHashType.PDQ},
    "video": {"md5": BankHashType.MD5, "sha1": BankHashType.SHA1},
}
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Answers to an old ``next`` URL that mean "the cursor is gone": restart the window instead of failing.
_EXPIRED_CURSOR_STATUSES = frozenset({400, 404, 410})
CHECKPOINT = HashSharingCheckpoint.__table__


class HashSharingError(Exception):
    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def _worth_retrying(error: BaseException) -> bool:
    # No status: the network failed. Overload and gateway errors pass; anything else will not get better.
    return isinstance(error, HashSharingError) and (error.status_code is None or error.status_code in _RETRY_STATUSES)


@dataclass(frozen=True, slots=True)
class HashSharingStatus:
    member_id: int
    member_name: str
    username: str | None


@dataclass(frozen=True, slots=True)
class FeedEntry:
    id: str
    member_id: int
    kind: Literal["image", "video"]
    deleted: bool
    timestamp: datetime | None
    classification: str | None = None
    fingerprints: dict[str, str] = field(default_factory=dict)  # element name -> text, as sent

    @property
    def external_id(self) -> str:
        return f"{self.member_id}-{self.id}"


@dataclass(frozen=True, slots=True)
class EntriesPage:
    entries: list[FeedEntry]
    next_url: str | None  # relative to the base URL, already XML-unescaped


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.strip()
    for pattern in (TIME_FORMAT, "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _local(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _child(element: etree._Element, name: str) -> etree._Element | None:
    for child in element:
        if _local(child) == name:
            return child
    return None


def _parse(body: bytes) -> etree._Element:
    try:
        return parse_xml(body)
    except XmlRefused as exc:
        raise HashSharingError(f"hash-sharing answer refused: {exc}") from None


def parse_status(body: bytes) -> HashSharingStatus:
    root = _parse(body)
    member = _child(root, "member")
    username = _child(root, "username")
    if member is None:
        raise HashSharingError("status answer has no <member>")
    return HashSharingStatus(int(member.get("id", "0")), (member.text or "").strip(),
                             (username.text or "").strip() if username is not None else None)


def parse_entries(body: bytes) -> EntriesPage:
    root = _parse(body)
    entries: list[FeedEntry] = []
    for group in root:
        if _local(group) not in ("images", "videos"):
            continue
        for item in group:
            tag = _local(item)
            deleted = tag.startswith("deleted")
            kind = (tag[len("deleted"):] if deleted else tag).lower()
            if kind not in ("image", "video"):
                continue
            ident, member = _child(item, "id"), _child(item, "member")
            if ident is None or member is None or not (ident.text or "").strip():
                raise HashSharingError(f"<{tag}> without <id> or <member>")
            classification = _child(item, "classification")
            fingerprints = _child(item, "fingerprints")
            entries.append(FeedEntry(
                id=(ident.text or "").strip(),
                member_id=int(member.get("id", "0")),
                kind=kind,  # type: ignore[arg-type]
                deleted=deleted,
                timestamp=parse_time(getattr(_child(item, "timestamp"), "text", None)),
                classification=(classification.text or "").strip() or None if classification is not None else None,
                # Large fingerprints (TMK, Videntifier) come as links with no text; they are not kept anyway.
                fingerprints={_local(f): f.text.strip() for f in (fingerprints if fingerprints is not None else ())
                              if f.text and f.text.strip()},
            ))
    paging = _child(root, "paging")
    next_el = _child(paging, "next") if paging is not None else None
    next_url = (next_el.text or "").strip() if next_el is not None else ""
    return EntriesPage(entries, next_url or None)


class HashSharingClient:
    """Synchronous client: fetches run from the command line or a worker thread, one page at a time."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not username or not password:
            raise ValueError("hash-sharing username and password are required")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._sleep = sleep
        self._http = httpx.Client(auth=(username, password), timeout=timeout, transport=transport,
                                  headers={"Accept": "application/xml"})

    def __enter__(self) -> HashSharingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, url: str, params: dict[str, str] | None = None) -> bytes:
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=2, exp_base=4, max=30),
            retry=retry_if_exception(_worth_retrying),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._get_once, url, params)

    def _get_once(self, url: str, params: dict[str, str] | None) -> bytes:
        try:
            response = self._http.get(url, params=params)
        except httpx.TransportError as exc:
            raise HashSharingError(f"hash-sharing request failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise HashSharingError(f"hash-sharing answered HTTP {response.status_code}", response.status_code)
        return response.content

    def status(self) -> HashSharingStatus:
        return parse_status(self._get(f"{self.base_url}/v2/status"))

    def get_entries(self, start: datetime, end: datetime) -> EntriesPage:
        return parse_entries(self._get(f"{self.base_url}/v2/entries",
                                       {"from": format_time(start), "to": format_time(end)}))

    def get_next(self, next_url: str) -> EntriesPage:
        if next_url.startswith(("http://", "https://")):
            raise HashSharingError("refusing an absolute next URL: it would send the credentials elsewhere")
        return parse_entries(self._get(self.base_url + "/" + next_url.lstrip("/")))


@dataclass(slots=True)
class FetchResult:
    pages: int = 0
    entries: int = 0
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    reclassified: int = 0
    invalid_fingerprints: int = 0
    restarted_windows: int = 0  # a stored next URL had expired, so its window was fetched again
    caught_up_to: datetime | None = None  # the feed is fully applied up to here

    def add(self, applied: FeedApplyResult) -> None:
        self.added += applied.added
        self.removed += applied.removed
        self.unchanged += applied.unchanged
        self.reclassified += applied.reclassified


def to_updates(entries: Iterable[FeedEntry]) -> tuple[list[FeedUpdate], int]:
    """Feed entries as bank updates, keeping the fingerprints we can match; returns (updates, invalid)."""
    updates: list[FeedUpdate] = []
    invalid = 0
    # Within a page the newest word on an entry wins; entries without a timestamp keep feed order.
    ordered = sorted(entries, key=lambda e: e.timestamp or datetime.min.replace(tzinfo=UTC))
    for e in ordered:
        hashes: list[tuple[str, str]] = []
        if not e.deleted:
            for element, hash_type in KEPT_FINGERPRINTS[e.kind].items():
                value = e.fingerprints.get(element)
                if value is None:
                    continue
                try:
                    hashes.append(validate_hash(hash_type, value))
                except ValueError:
                    invalid += 1
        updates.append(FeedUpdate(e.external_id, e.deleted, e.classification, tuple(hashes)))
    return updates, invalid


def _load_checkpoint(conn: Connection, bank: HashBank, start: datetime) -> dict[str, object]:
    row = conn.execute(select(CHECKPOINT).where(CHECKPOINT.c.bank_id == bank.id)).one_or_none()
    if row is not None:
        return row._asdict()
    conn.execute(insert(CHECKPOINT).values(org_id=bank.org_id, bank_id=bank.id, window_from=start, window_to=None,
                                           next_url=None, pages_fetched=0, updated_at=utcnow()))
    return _load_checkpoint(conn, bank, start)


def load_checkpoint(engine: Engine, bank: HashBank) -> HashSharingCheckpoint | None:
    with engine.connect() as conn:
        row = conn.execute(select(CHECKPOINT).where(CHECKPOINT.c.bank_id == bank.id)).one_or_none()
    return HashSharingCheckpoint.model_validate(row._asdict()) if row else None


def _save_checkpoint(conn: Connection, bank_id: int, **values: object) -> None:
    conn.execute(update(CHECKPOINT).where(CHECKPOINT.c.bank_id == bank_id).values(updated_at=utcnow(), **values))


def fetch_into_bank(
    engine: Engine,
    bank: HashBank,
    client: HashSharingClient,
    *,
    until: datetime | None = None,
    start: datetime = FEED_START,
    lag: timedelta = DEFAULT_LAG,
    window: timedelta | None = DEFAULT_WINDOW,
    progress: Callable[[FetchResult], None] | None = None,
) -> FetchResult:
    """Page the feed from the bank's checkpoint up to ``until`` (default: now minus ``lag``) into the bank.

    The span is asked for in time windows that start at ``window`` long (None: one window for everything),
    double while they come back nearly empty and shrink fourfold once one takes ``BUSY_WINDOW_PAGES``
    pages: a first fetch of years of feed then never hangs on one huge cursor that could expire (12 h)
    and have to be restarted from its beginning.

    Each page's entries and the checkpoint after it are written in one transaction, so an interruption at
    any point (a failed request, a killed process) resumes with the first page not yet written: no gap, and
    no page applied twice. Even if one were (an expired cursor restarts its window), applying entries is
    idempotent. Raises ``HashSharingError`` when the API fails; the checkpoint keeps what was done.
    """
    assert bank.id is not None
    end = until or (datetime.now(UTC) - lag)
    result = FetchResult()
    with engine.begin() as conn:
        cp = _load_checkpoint(conn, bank, start)
    window_from: datetime = cp["window_from"]  # type: ignore[assignment]
    window_to: datetime | None = cp["window_to"]  # type: ignore[assignment]
    next_url: str | None = cp["next_url"]  # type: ignore[assignment]
    pages: int = cp["pages_fetched"]  # type: ignore[assignment]
    span = window
    window_pages = 0

    while True:
        if next_url:
            try:
                page = client.get_next(next_url)
            except HashSharingError as exc:
                if exc.status_code not in _EXPIRED_CURSOR_STATUSES:
                    raise
                result.restarted_windows += 1
                next_url = None
                continue
        else:
            if window_to is None:
                if window_from >= end:
                    break
                window_to = end if span is None else min(end, window_from + span)
            page = client.get_entries(window_from, window_to)

        updates, invalid = to_updates(page.entries)
        result.invalid_fingerprints += invalid
        pages += 1
        window_pages += 1
        with engine.begin() as conn:
            result.add(apply_feed_updates(conn, bank.id, updates))
            if page.next_url:
                _save_checkpoint(conn, bank.id, window_to=window_to, next_url=page.next_url, pages_fetched=pages)
            else:  # the window is complete: the only point where "from" may move on
                assert window_to is not None
                _save_checkpoint(conn, bank.id, window_from=window_to, window_to=None, next_url=None,
                                 pages_fetched=pages)
        result.pages += 1
        result.entries += len(page.entries)
        if progress:
            progress(result)
        if page.next_url:
            next_url = page.next_url
        else:
            assert window_to is not None
            window_from, window_to, next_url = window_to, None, None
            result.caught_up_to = window_from
            if span is not None:
                if window_pages >= BUSY_WINDOW_PAGES:
                    span = max(MIN_WINDOW, span / 4)
                elif window_pages == 1:
                    span = min(MAX_WINDOW, span * 2)
            window_pages = 0
            if window_from >= end:
                break
    if result.caught_up_to is None and window_to is None:
        result.caught_up_to = window_from
    return result


def iter_all_entries(client: HashSharingClient, start: datetime, end: datetime) -> Iterator[FeedEntry]:
    """Every entry in [start, end), page by page (no checkpointing; for tools and tests)."""
    page = client.get_entries(start, end)
    yield from page.entries
    while page.next_url:
        page = client.get_next(page.next_url)
        yield from page.entries
