"""Hash banks in the database: create banks, import hash lists, tombstone entries, the allowlist, hit counters.

Every write to a bank's entries goes through ``_begin_bank_write``, which bumps the bank's ``change_seq``
first: that serialises writers of one bank and gives the matcher its change sequence (see
``models/hash_banks.py``). Entries are never deleted, only tombstoned, so a refresh can see removals.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from detection.bank_file import HashEntry, MalformedLine, iter_hash_entries, normalize_hash
from detection.media_hashes import MediaHashes
from models.hash_banks import (
    DEFAULT_PDQ_DISTANCE,
    BankHashType,
    BankSource,
    HashBank,
    HashBankAllowlist,
    HashBankEntry,
)
from models.records import utcnow

BANK = HashBank.__table__
ENTRY = HashBankEntry.__table__
ALLOW = HashBankAllowlist.__table__

OWN_REPORTS_BANK_NAME = "own-reports"
# PDQ hashes of flat or tiny images are mostly noise; HASH_MATCHING.md: below 50, only exact matching.
MIN_PDQ_QUALITY = 50
# An import of a broken file could yield millions of malformed lines; keep the first ones, count the rest.
MAX_REPORTED_MALFORMED = 1000
# Rows per write: small enough that PostgreSQL ingests while we parse, large enough to amortise each call.
IMPORT_BATCH = 10_000
# Bound the size of IN (...) lists (SQLite's default limit on bound parameters is 32766).
_IN_CHUNK = 1000

ProgressCallback = Callable[[int, int], None]
"""``progress(lines_done, lines_total)``; lines_total is counted before the import starts."""

EntryKey = tuple[str, str, str | None]  # (hash_type, value, external_id): what makes an entry a duplicate


class BankNotFound(LookupError):  # noqa: N818 - reads better at call sites than BankNotFoundError
    pass


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int
    duplicates: int
    malformed: list[MalformedLine]  # the first MAX_REPORTED_MALFORMED, in file order
    malformed_count: int = 0  # all of them


@dataclass(frozen=True, slots=True)
class NewEntry:
    hash_type: str
    value: str
    external_id: str | None = None
    classification: str | None = None


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """One entry of a hash-sharing feed: its hashes now, or a deletion of everything under ``external_id``."""

    external_id: str
    deleted: bool = False
    classification: str | None = None
    hashes: tuple[tuple[str, str], ...] = ()  # (hash_type, value)


@dataclass(slots=True)
class FeedApplyResult:
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    reclassified: int = 0


@dataclass(frozen=True, slots=True)
class BankInfo:
    bank: HashBank
    live_entries: dict[str, int] = field(default_factory=dict)  # hash_type -> live entries


def validate_hash(hash_type: str, value: str) -> tuple[str, str]:
    """Normalise ``value`` for ``hash_type``; raises ValueError with a short reason."""
    if hash_type == BankHashType.CROP_RESISTANT:
        segments = [s.strip().lower() for s in value.split(",")]
        if not segments or any(len(s) != 16 or not _is_hex(s) for s in segments):
            raise ValueError("crop_resistant value must be comma-separated 16-hex-digit segments")
        return hash_type, ",".join(segments)
    parsed = normalize_hash(hash_type, value)
    if isinstance(parsed, str):
        raise ValueError(parsed)
    return parsed


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _begin_bank_write(conn: Connection, bank_id: int) -> int:
    """Bump the bank's change sequence (row-locking the bank until commit) and return the new value."""
    seq = conn.execute(
        update(BANK).where(BANK.c.id == bank_id).values(change_seq=BANK.c.change_seq + 1).returning(BANK.c.change_seq)
    ).scalar_one_or_none()
    if seq is None:
        raise BankNotFound(f"hash bank {bank_id} does not exist")
    return int(seq)


def _live_keys(conn: Connection, bank_id: int) -> set[EntryKey]:
    rows = conn.execute(
        select(ENTRY.c.hash_type, ENTRY.c.value, ENTRY.c.external_id).where(
            ENTRY.c.bank_id == bank_id, ENTRY.c.deleted_at.is_(None)
        )
    )
    return {(t, v, e) for t, v, e in rows}


_ENTRY_COLUMNS = "bank_id, hash_type, value, external_id, classification, added_at, hit_count"
EntryWriter = Callable[[Sequence[NewEntry]], None]


@contextmanager
def _entry_writer(conn: Connection, bank_id: int, added_at: datetime) -> Iterator[EntryWriter]:
    """A function that inserts rows in the caller's transaction, as fast as the database allows.

    PostgreSQL: one COPY stays open for the whole writer, so the server indexes rows while we parse the next
    ones. SQLite: plain executemany, bypassing SQLAlchemy's per-row bind processing (a third of the time).
    """
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f"COPY hash_bank_entry ({_ENTRY_COLUMNS}) FROM STDIN") as copy:

            def copy_rows(rows: Sequence[NewEntry]) -> None:
                for r in rows:
                    copy.write_row((bank_id, r.hash_type, r.value, r.external_id, r.classification, added_at, 0))

            yield copy_rows
        return
    # Stored exactly as the ORM would store it: the column type's own bind processor formats the timestamp.
    column_type = ENTRY.c.added_at.type.dialect_impl(conn.dialect)
    process = column_type.bind_processor(conn.dialect)
    stamp = process(added_at) if process else added_at
    sql = f"INSERT INTO hash_bank_entry ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0)"

    def insert_rows(rows: Sequence[NewEntry]) -> None:
        if rows:
            conn.exec_driver_sql(sql, [(bank_id, r.hash_type, r.value, r.external_id, r.classification, stamp)
                                       for r in rows])

    yield insert_rows


def _insert_rows(conn: Connection, bank_id: int, rows: Sequence[NewEntry], added_at: datetime) -> None:
    if rows:
        with _entry_writer(conn, bank_id, added_at) as write:
            write(rows)


def _count_lines(path: str | os.PathLike[str]) -> int:
    lines = 0
    last = b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


class BankRepository:
    """Bank operations, each in its own transaction on ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ banks

    def create_bank(
        self,
        org_id: str,
        name: str,
        *,
        pdq_distance: int = DEFAULT_PDQ_DISTANCE,
        source: BankSource | str = BankSource.FILE,
        enabled: bool = True,
    ) -> HashBank:
        if not 0 <= pdq_distance <= 256:
            raise ValueError("pdq_distance must be between 0 and 256")
        source = BankSource(source)
        with self.engine.begin() as conn:
            row = conn.execute(
                insert(BANK)
                .values(org_id=org_id, name=name, pdq_distance=pdq_distance, enabled=enabled, source=source.value,
                        change_seq=0, created_at=utcnow())
                .returning(*BANK.c)
            ).one()
        return HashBank.model_validate(row._asdict())

    def find_bank(self, org_id: str, name: str) -> HashBank | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(BANK).where(BANK.c.org_id == org_id, BANK.c.name == name)).one_or_none()
        return HashBank.model_validate(row._asdict()) if row else None

    def get_bank(self, org_id: str, name: str) -> HashBank:
        bank = self.find_bank(org_id, name)
        if bank is None:
            raise BankNotFound(f"org {org_id!r} has no hash bank named {name!r}")
        return bank

    def get_bank_by_id(self, bank_id: int) -> HashBank:
        with self.engine.connect() as conn:
            row = conn.execute(select(BANK).where(BANK.c.id == bank_id)).one_or_none()
        if row is None:
            raise BankNotFound(f"hash bank {bank_id} does not exist")
        return HashBank.model_validate(row._asdict())

    def get_or_create_bank(self, org_id: str, name: str, *, source: BankSource | str = BankSource.FILE) -> HashBank:
        bank = self.find_bank(org_id, name)
        if bank is not None:
            return bank
        try:
            return self.create_bank(org_id, name, source=source)
        except IntegrityError:  # created concurrently by another process: use theirs
            return self.get_bank(org_id, name)

    def list_banks(self, org_id: str) -> list[BankInfo]:
        with self.engine.connect() as conn:
            banks = [HashBank.model_validate(r._asdict())
                     for r in conn.execute(select(BANK).where(BANK.c.org_id == org_id).order_by(BANK.c.name))]
            counts: dict[int, dict[str, int]] = {}
            if banks:
                rows = conn.execute(
                    select(ENTRY.c.bank_id, ENTRY.c.hash_type, func.count())
                    .where(ENTRY.c.bank_id.in_([b.id for b in banks]), ENTRY.c.deleted_at.is_(None))
                    .group_by(ENTRY.c.bank_id, ENTRY.c.hash_type)
                )
                for bank_id, hash_type, n in rows:
                    counts.setdefault(bank_id, {})[hash_type] = int(n)
        return [BankInfo(b, counts.get(b.id or 0, {})) for b in banks]

    def update_bank(self, bank_id: int, *, enabled: bool | None = None, pdq_distance: int | None = None) -> HashBank:
        values: dict[str, Any] = {}
        if enabled is not None:
            values["enabled"] = enabled
        if pdq_distance is not None:
            if not 0 <= pdq_distance <= 256:
                raise ValueError("pdq_distance must be between 0 and 256")
            values["pdq_distance"] = pdq_distance
        if values:
            with self.engine.begin() as conn:
                conn.execute(update(BANK).where(BANK.c.id == bank_id).values(**values))
        return self.get_bank_by_id(bank_id)

    # ------------------------------------------------------------------ entries

    def import_file(
        self,
        bank: HashBank,
        path: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
        batch_size: int = IMPORT_BATCH,
    ) -> ImportResult:
        """Import a CSV / JSON-lines hash list (``detection.bank_file``) in one transaction.

        Malformed lines are skipped and reported; an entry already live in the bank (same type, value and
        external id), or repeated in the file, counts as a duplicate. All or nothing: a crash part-way
        leaves the bank as it was, and the matcher never sees half a file.
        """
        assert bank.id is not None
        total = _count_lines(path) if progress else 0
        added = duplicates = malformed_count = done = 0
        malformed: list[MalformedLine] = []
        added_at = utcnow()
        with self.engine.begin() as conn:
            _begin_bank_write(conn, bank.id)
            seen = _live_keys(conn, bank.id)
            batch: list[NewEntry] = []
            with _entry_writer(conn, bank.id, added_at) as write:
                for item in iter_hash_entries(path):
                    done += 1
                    if progress and done % batch_size == 0:
                        progress(done, max(total, done))
                    if isinstance(item, MalformedLine):
                        malformed_count += 1
                        if len(malformed) < MAX_REPORTED_MALFORMED:
                            malformed.append(item)
                        continue
                    key = (item.hash_type, item.value, item.external_id)
                    if key in seen:
                        duplicates += 1
                        continue
                    seen.add(key)
                    batch.append(NewEntry(item.hash_type, item.value, item.external_id, item.classification))
                    if len(batch) >= batch_size:
                        write(batch)
                        added += len(batch)
                        batch = []
                write(batch)
                added += len(batch)
        if progress:
            progress(done, done)
        return ImportResult(added=added, duplicates=duplicates, malformed=malformed, malformed_count=malformed_count)

    def add_entries(self, bank: HashBank, entries: Iterable[NewEntry | HashEntry]) -> list[int]:
        """Add entries not already live in the bank; returns the ids of the rows added."""
        assert bank.id is not None
        with self.engine.begin() as conn:
            return _add_entries(conn, bank.id, entries)

    def delete_by_external_ids(self, bank: HashBank, external_ids: Iterable[str]) -> int:
        """Tombstone every live entry with one of these external ids; returns the rows tombstoned."""
        assert bank.id is not None
        ids = sorted(set(external_ids))
        if not ids:
            return 0
        with self.engine.begin() as conn:
            seq = _begin_bank_write(conn, bank.id)
            removed = 0
            now = utcnow()
            for chunk in _chunks(ids):
                removed += conn.execute(
                    update(ENTRY)
                    .where(ENTRY.c.bank_id == bank.id, ENTRY.c.external_id.in_(chunk), ENTRY.c.deleted_at.is_(None))
                    .values(deleted_at=now, deleted_seq=seq)
                ).rowcount
        return removed

    def add_reported_media(
        self,
        org_id: str,
        media: MediaHashes,
        *,
        external_id: str | None = None,
        classification: str | None = None,
    ) -> list[int]:
        """Put a reported item's hashes into the org's own-reports bank (created on first use).

        MD5 and SHA-1 always; for images PDQ (only when its quality allows fuzzy matching), pHash and the
        crop-resistant hash, which together catch crops and edits of media the org has already reported.
        """
        bank = self.get_or_create_bank(org_id, OWN_REPORTS_BANK_NAME, source=BankSource.OWN_REPORTS)
        entries = [
            NewEntry(BankHashType.MD5, media.digests.md5, external_id, classification),
            NewEntry(BankHashType.SHA1, media.digests.sha1, external_id, classification),
        ]
        image = media.image
        if image is not None:
            if image.pdq_quality >= MIN_PDQ_QUALITY:
                entries.append(NewEntry(BankHashType.PDQ, image.pdq, external_id, classification))
            entries.append(NewEntry(BankHashType.PHASH, image.phash, external_id, classification))
            if image.crop_resistant:
                entries.append(NewEntry(BankHashType.CROP_RESISTANT, image.crop_resistant, external_id,
                                        classification))
        return self.add_entries(bank, entries)

    # ------------------------------------------------------------------ allowlist

    def allow(
        self,
        org_id: str,
        hash_type: str,
        value: str,
        *,
        bank: HashBank | None = None,
        reason: str = "",
        added_by: str = "",
    ) -> HashBankAllowlist:
        """Allowlist a known false positive, for one bank or (``bank`` None) all the org's banks."""
        hash_type, value = validate_hash(hash_type, value)
        bank_id = bank.id if bank is not None else None
        with self.engine.begin() as conn:
            existing = conn.execute(select(ALLOW).where(*_allow_filter(org_id, bank_id, hash_type, value))).first()
            if existing is not None:
                return HashBankAllowlist.model_validate(existing._asdict())
            row = conn.execute(
                insert(ALLOW)
                .values(org_id=org_id, bank_id=bank_id, hash_type=hash_type, value=value, reason=reason,
                        added_by=added_by, added_at=utcnow())
                .returning(*ALLOW.c)
            ).one()
        return HashBankAllowlist.model_validate(row._asdict())

    def disallow(self, org_id: str, hash_type: str, value: str, *, bank: HashBank | None = None) -> int:
        """Remove an allowlist entry; returns the rows removed."""
        hash_type, value = validate_hash(hash_type, value)
        bank_id = bank.id if bank is not None else None
        with self.engine.begin() as conn:
            return conn.execute(ALLOW.delete().where(*_allow_filter(org_id, bank_id, hash_type, value))).rowcount

    def allowlisted(self, org_id: str, bank_ids: Iterable[int], values: Iterable[tuple[str, str]]
                    ) -> set[tuple[int | None, str, str]]:
        """Which of ``values`` ((hash_type, value) pairs) are allowlisted for these banks or org-wide.

        Returns ``(bank_id or None, hash_type, value)`` for each allowlist row that applies.
        """
        pairs = sorted(set(values))
        banks = sorted(set(bank_ids))
        if not pairs:
            return set()
        found: set[tuple[int | None, str, str]] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(pairs, 200):
                rows = conn.execute(
                    select(ALLOW.c.bank_id, ALLOW.c.hash_type, ALLOW.c.value).where(
                        ALLOW.c.org_id == org_id,
                        or_(ALLOW.c.bank_id.is_(None), ALLOW.c.bank_id.in_(banks)),
                        or_(*(and_(ALLOW.c.hash_type == t, ALLOW.c.value == v) for t, v in chunk)),
                    )
                )
                found.update((b, t, v) for b, t, v in rows)
        return found

    # ------------------------------------------------------------------ hits

    def record_hits(self, entry_ids: Iterable[int]) -> None:
        """Count one hit on each entry (flood detection: a hash matching far too often is suspect)."""
        ids = sorted(set(entry_ids))
        if not ids:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            for chunk in _chunks(ids):
                conn.execute(
                    update(ENTRY).where(ENTRY.c.id.in_(chunk)).values(hit_count=ENTRY.c.hit_count + 1, last_hit_at=now)
                )

    def get_entries(self, entry_ids: Iterable[int]) -> list[HashBankEntry]:
        ids = sorted(set(entry_ids))
        out: list[HashBankEntry] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                out.extend(HashBankEntry.model_validate(r._asdict())
                           for r in conn.execute(select(ENTRY).where(ENTRY.c.id.in_(chunk))))
        return out


def _allow_filter(org_id: str, bank_id: int | None, hash_type: str, value: str) -> list[Any]:
    bank_clause = ALLOW.c.bank_id.is_(None) if bank_id is None else ALLOW.c.bank_id == bank_id
    return [ALLOW.c.org_id == org_id, bank_clause, ALLOW.c.hash_type == hash_type, ALLOW.c.value == value]


def _add_entries(conn: Connection, bank_id: int, entries: Iterable[NewEntry | HashEntry]) -> list[int]:
    wanted: dict[EntryKey, NewEntry] = {}
    for e in entries:
        hash_type, value = validate_hash(e.hash_type, e.value)
        wanted.setdefault((hash_type, value, e.external_id), NewEntry(hash_type, value, e.external_id,
                                                                     e.classification))
    if not wanted:
        return []
    _begin_bank_write(conn, bank_id)
    existing = _existing_keys(conn, bank_id, list(wanted))
    fresh = [e for k, e in wanted.items() if k not in existing]
    if not fresh:
        return []
    now = utcnow()
    return [
        int(conn.execute(
            insert(ENTRY)
            .values(bank_id=bank_id, hash_type=e.hash_type, value=e.value, external_id=e.external_id,
                    classification=e.classification, added_at=now, hit_count=0)
            .returning(ENTRY.c.id)
        ).scalar_one())
        for e in fresh
    ]


def _existing_keys(conn: Connection, bank_id: int, keys: Sequence[EntryKey]) -> set[EntryKey]:
    found: set[EntryKey] = set()
    values = sorted({k[1] for k in keys})
    for chunk in _chunks(values):
        rows = conn.execute(
            select(ENTRY.c.hash_type, ENTRY.c.value, ENTRY.c.external_id).where(
                ENTRY.c.bank_id == bank_id, ENTRY.c.value.in_(chunk), ENTRY.c.deleted_at.is_(None)
            )
        )
        found.update((t, v, e) for t, v, e in rows)
    return found


def apply_feed_updates(conn: Connection, bank_id: int, updates: Sequence[FeedUpdate]) -> FeedApplyResult:
    """Make the bank's live entries for each external id equal to the feed's latest state of it.

    Idempotent: applying the same page twice changes nothing the second time, which is what makes a
    re-fetched page (a resumed or restarted window) harmless. Runs in the caller's transaction so the
    caller can store its checkpoint atomically with the entries.
    """
    result = FeedApplyResult()
    if not updates:
        return result
    latest: dict[str, FeedUpdate] = {}
    for u in updates:  # within a page, the last word on an id wins
        latest[u.external_id] = u
    seq = _begin_bank_write(conn, bank_id)
    current: dict[str, list[tuple[int, str, str, str | None]]] = {}
    for chunk in _chunks(sorted(latest)):
        rows = conn.execute(
            select(ENTRY.c.id, ENTRY.c.external_id, ENTRY.c.hash_type, ENTRY.c.value, ENTRY.c.classification).where(
                ENTRY.c.bank_id == bank_id, ENTRY.c.external_id.in_(chunk), ENTRY.c.deleted_at.is_(None)
            )
        )
        for entry_id, ext, t, v, c in rows:
            current.setdefault(ext, []).append((int(entry_id), t, v, c))

    tombstone: list[int] = []
    reclassify: dict[str | None, list[int]] = {}
    inserts: list[NewEntry] = []
    for ext, u in latest.items():
        desired = set() if u.deleted else {validate_hash(t, v) for t, v in u.hashes}
        for entry_id, t, v, c in current.get(ext, []):
            if (t, v) in desired:
                desired.discard((t, v))  # a second live row with the same hash is removed below
                if c != u.classification:
                    reclassify.setdefault(u.classification, []).append(entry_id)
                else:
                    result.unchanged += 1
            else:
                tombstone.append(entry_id)
        inserts.extend(NewEntry(t, v, ext, u.classification) for t, v in sorted(desired))

    now = utcnow()
    for chunk in _chunks(tombstone):
        result.removed += conn.execute(
            update(ENTRY).where(ENTRY.c.id.in_(chunk)).values(deleted_at=now, deleted_seq=seq)
        ).rowcount
    for classification, ids in reclassify.items():
        # In place: the matcher reads classification from the row at match time, so no index change is needed.
        for chunk in _chunks(ids):
            result.reclassified += conn.execute(
                update(ENTRY).where(ENTRY.c.id.in_(chunk)).values(classification=classification)
            ).rowcount
    _insert_rows(conn, bank_id, inserts, now)
    result.added = len(inserts)
    return result


