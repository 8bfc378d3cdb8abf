"""Match a media item's hashes against every enabled hash bank of its org, kept in memory and refreshed by delta.

Per bank: a ``PdqIndex`` (fuzzy PDQ at the bank's distance), a ``DigestIndex`` per exact digest type and,
for own-reports banks only, brute-force indexes of 64-bit pHashes and crop-resistant segment hashes
(HASH_MATCHING.md: a 64-bit hash is too weak for industry-sized lists, fine for a platform's own bank).

``refresh()`` reads only what changed since the last load, using the per-bank change sequence described in
``models/hash_banks.py``: new rows are those above the largest entry id already seen, removals are the
tombstones newer than the sequence already seen. A bank that is new (or re-enabled) is built outside the lock
and swapped in; deltas are applied under a short write lock, so ``match`` calls are never held up for long.
With a ``snapshot_dir``, a bank is first looked for in its snapshot (``detection/bank_snapshot.py``) and only
built from every entry when there is no usable one; a restart then costs a file read plus the delta.

Only hashes and entry ids live in memory. On a candidate match the matcher reads the entry rows (so an
entry tombstoned since the last refresh no longer matches, and classifications are current), filters the
allowlist and records the hits: a few indexed queries, and only when something matched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, select

from detection.bank_snapshot import bank_identity, load_snapshot, prune_snapshots, save_snapshot
from detection.banks import BANK, ENTRY, MIN_PDQ_QUALITY, BankRepository
from detection.crop_resistant import MIN_MATCHING_SEGMENTS, informative_segments
from detection.loaded_bank import DIGEST_TYPES, LoadedBank
from detection.media_hashes import MediaHashes
from models.hash_banks import BankHashType, BankSource

# 64-bit pHash: edits and 2-5 % crops land at 0-12 bits, unrelated images rarely below 18 (HASH_MATCHING.md).
PHASH_DISTANCE = 10
# A crop-resistant segment matches when its 64-bit dhash is this close to a stored segment's; an image matches
# when enough of its informative segments do (detection/crop_resistant.py).
CROP_SEGMENT_DISTANCE = 10
# A bank is snapshotted again once this many rows (or a tenth of the bank) changed since its last snapshot,
# so the delta a restart applies stays small.
SNAPSHOT_AFTER_CHANGES = 10_000
_LOAD_BATCH = 100_000
_DELTA_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class BankMatch:
    bank_id: int
    bank_name: str
    entry_id: int
    hash_type: str  # the bank entry's type: pdq, md5, sha1, sha256, phash or crop_resistant
    distance: int  # bits for pdq/phash/crop_resistant (best segment), 0 for exact digests
    external_id: str | None
    classification: str | None


@dataclass(frozen=True, slots=True)
class RefreshStats:
    banks_loaded: int = 0  # built from the database (new, re-enabled, or first load without a snapshot)
    banks_restored: int = 0  # read from a snapshot, then brought up to date
    banks_dropped: int = 0  # disabled or deleted
    entries_added: int = 0
    entries_removed: int = 0
    seconds: float = 0.0


class _ReadWriteLock:
    """Many matchers or one mutator. Writers wait for readers to drain and block new readers meanwhile."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class BankMatcher:
    """In-memory matcher over all orgs' enabled banks. Thread-safe: ``match`` from many threads, ``refresh``
    from one (concurrent refreshes are serialised)."""

    def __init__(self, engine: Engine, *, record_hits: bool = True, phash_distance: int = PHASH_DISTANCE,
                 crop_segment_distance: int = CROP_SEGMENT_DISTANCE, snapshot_dir: Path | None = None) -> None:
        self.engine = engine
        # Where banks are snapshotted so a restart reads files instead of every entry (see bank_snapshot).
        self.snapshot_dir = snapshot_dir
        self.repository = BankRepository(engine)
        self.record_hits = record_hits
        self.phash_distance = phash_distance
        self.crop_segment_distance = crop_segment_distance
        self._banks: dict[int, LoadedBank] = {}
        self._by_org: dict[str, tuple[LoadedBank, ...]] = {}
        self._lock = _ReadWriteLock()
        self._refresh_lock = threading.Lock()
        self._loaded = False

    # ------------------------------------------------------------------ loading

    def load(self) -> RefreshStats:
        """The first refresh: every enabled bank in full. Later calls behave as ``refresh``."""
        return self.refresh()

    def refresh(self) -> RefreshStats:
        started = time.perf_counter()
        loaded = restored = dropped = added = removed = 0
        with self._refresh_lock, self.engine.connect() as conn:
            rows = conn.execute(select(BANK.c.id, BANK.c.org_id, BANK.c.name, BANK.c.source, BANK.c.enabled,
                                       BANK.c.pdq_distance, BANK.c.change_seq, BANK.c.created_at)).all()
            if self.snapshot_dir is not None and not self._loaded:
                prune_snapshots(self.snapshot_dir, {r.id for r in rows})  # disabled banks keep theirs
            wanted = {r.id for r in rows if r.enabled}
            for bank_id in [b for b in self._banks if b not in wanted]:
                with self._lock.write():
                    del self._banks[bank_id]
                dropped += 1
            for r in rows:
                if not r.enabled:
                    continue
                current = self._banks.get(r.id)
                identity = bank_identity(r.id, r.org_id, r.source, r.created_at)
                if current is None:
                    restoration = self._restore(conn, r, identity)
                    if restoration is None:
                        fresh = self._build(conn, r.id, r.org_id, r.name, r.source, r.pdq_distance, r.change_seq)
                        self._save(fresh, identity)
                        loaded += 1
                    else:
                        fresh, n_added, n_removed = restoration
                        restored += 1
                        added += n_added
                        removed += n_removed
                    with self._lock.write():
                        self._banks[r.id] = fresh
                    continue
                if current.change_seq != r.change_seq:
                    n_added, n_removed = self._apply_delta(conn, current, r.change_seq)
                    added += n_added
                    removed += n_removed
                    current.unsaved_changes += n_added + n_removed
                    if current.unsaved_changes > max(SNAPSHOT_AFTER_CHANGES, current.entries() // 10):
                        self._save(current, identity)
                if (current.name, current.pdq_distance) != (r.name, r.pdq_distance):
                    with self._lock.write():
                        current.name, current.pdq_distance = r.name, r.pdq_distance
            with self._lock.write():
                by_org: dict[str, list[LoadedBank]] = {}
                for bank in self._banks.values():
                    by_org.setdefault(bank.org_id, []).append(bank)
                self._by_org = {org: tuple(sorted(banks, key=lambda b: b.id)) for org, banks in by_org.items()}
            self._loaded = True
        return RefreshStats(loaded, restored, dropped, added, removed, time.perf_counter() - started)

    def _restore(self, conn: Connection, row: Row[Any], identity: str) -> tuple[LoadedBank, int, int] | None:
        """The bank from its snapshot brought up to date by the usual delta, with the rows added and removed;
        None without a usable snapshot."""
        if self.snapshot_dir is None:
            return None
        empty = LoadedBank(row.id, row.org_id, row.name, row.source, row.pdq_distance, row.change_seq)
        bank = load_snapshot(self.snapshot_dir, identity, empty)
        if bank is None:
            return None
        added = removed = 0
        if bank.change_seq != row.change_seq:
            added, removed = self._apply_delta(conn, bank, row.change_seq)
            bank.unsaved_changes = added + removed
        return bank, added, removed

    def _save(self, bank: LoadedBank, identity: str) -> None:
        if self.snapshot_dir is not None:
            save_snapshot(self.snapshot_dir, bank, identity)
            bank.unsaved_changes = 0

    def _build(self, conn: Connection, bank_id: int, org_id: str, name: str, source: str, distance: int,
               change_seq: int) -> LoadedBank:
        # change_seq was read before these rows: anything committed in between is re-applied by the next
        # refresh, harmlessly (additions start above max_id, removals of absent rows are no-ops).
        bank = LoadedBank(bank_id, org_id, name, source, distance, change_seq)
        query = (select(ENTRY.c.id, ENTRY.c.hash_type, ENTRY.c.value)
                 .where(ENTRY.c.bank_id == bank_id, ENTRY.c.deleted_at.is_(None)))
        if source != BankSource.OWN_REPORTS:
            query = query.where(ENTRY.c.hash_type.in_([BankHashType.PDQ.value, *(t.value for t in DIGEST_TYPES)]))
        # The largest id before the rows are read, so that tombstoned or skipped rows above the live maximum
        # are not "new" next time; read after, it could cover a row committed after the scan and lose it.
        top = conn.execute(select(ENTRY.c.id).where(ENTRY.c.bank_id == bank_id)
                           .order_by(ENTRY.c.id.desc()).limit(1)).scalar()
        max_id = int(top or 0)
        result = conn.execution_options(stream_results=True, yield_per=_LOAD_BATCH).execute(query)
        for part in result.partitions():
            batch = [(int(i), t, v) for i, t, v in part]
            if batch:
                max_id = max(max_id, max(i for i, _, _ in batch))
            bank.add_rows(batch)
        bank.max_id = max_id
        return bank

    def _apply_delta(self, conn: Connection, bank: LoadedBank, change_seq: int) -> tuple[int, int]:
        added = 0
        new_rows = conn.execution_options(stream_results=True, yield_per=_DELTA_BATCH).execute(
            select(ENTRY.c.id, ENTRY.c.hash_type, ENTRY.c.value, ENTRY.c.deleted_at)
            .where(ENTRY.c.bank_id == bank.id, ENTRY.c.id > bank.max_id)
            .order_by(ENTRY.c.id)
        )
        # One short write lock per batch: a big import reaches the index in steps, and matching goes on
        # between them (every row added is committed, so a partly applied delta is still correct).
        for part in new_rows.partitions():
            live = [(int(i), t, v) for i, t, v, deleted in part if deleted is None]
            with self._lock.write():
                added += bank.add_rows(live)
                bank.max_id = max(bank.max_id, int(part[-1][0]))
        gone = conn.execute(
            select(ENTRY.c.id, ENTRY.c.hash_type)
            .where(ENTRY.c.bank_id == bank.id, ENTRY.c.deleted_seq > bank.change_seq)
        ).all()
        with self._lock.write():
            bank.remove_rows([(int(i), t) for i, t in gone])
            bank.change_seq = change_seq
        return added, len(gone)

    # ------------------------------------------------------------------ matching

    def entry_count(self, org_id: str | None = None) -> int:
        with self._lock.read():
            banks = self._banks.values() if org_id is None else self._by_org.get(org_id, ())
            return sum(b.entries() for b in banks)

    def match(self, org_id: str, hashes: MediaHashes) -> list[BankMatch]:
        """Every live, non-allowlisted bank entry this media item matches, best first; hits are recorded."""
        if not self._loaded:
            self.load()
        candidates: dict[int, tuple[LoadedBank, int]] = {}  # entry id -> (bank, distance)

        def found(bank: LoadedBank, hits: list[tuple[int, int]]) -> None:
            for entry_id, distance in hits:
                previous = candidates.get(entry_id)
                if previous is None or distance < previous[1]:
                    candidates[entry_id] = (bank, distance)

        digests = hashes.digests
        image = hashes.image
        with self._lock.read():
            for bank in self._by_org.get(org_id, ()):
                for hash_type, index in bank.digests.items():
                    found(bank, index.query(getattr(digests, hash_type)))
                if image is None:
                    continue
                if len(bank.pdq):
                    # Low-quality PDQ hashes are mostly noise: only an identical hash is trusted.
                    threshold = bank.pdq_distance if image.pdq_quality >= MIN_PDQ_QUALITY else 0
                    # All 8 dihedral variants in one pass over the bank, not 8 passes.
                    found(bank, bank.pdq.query_many(image.pdq_dihedral or (image.pdq,), threshold))
                if bank.own_reports and bank.phash is not None:
                    found(bank, bank.phash.query(int(image.phash, 16), self.phash_distance))
                if bank.own_reports and bank.crop is not None and image.crop_resistant:
                    found(bank, self._crop_matches(bank, image.crop_resistant))
        if not candidates:
            return []
        return self._confirm(org_id, hashes, candidates)

    def _crop_matches(self, bank: LoadedBank, crop_resistant: str) -> list[tuple[int, int]]:
        """Entries that share at least two informative segments with the image: (entry id, best distance)."""
        assert bank.crop is not None
        segments_matched: dict[int, int] = {}
        best: dict[int, int] = {}
        for segment in informative_segments(crop_resistant):
            nearest: dict[int, int] = {}  # one count per image segment, however many of an entry's it is near
            for entry_id, distance in bank.crop.query(segment, self.crop_segment_distance):
                nearest[entry_id] = min(distance, nearest.get(entry_id, distance))
            for entry_id, distance in nearest.items():
                segments_matched[entry_id] = segments_matched.get(entry_id, 0) + 1
                best[entry_id] = min(distance, best.get(entry_id, distance))
        return [(entry_id, best[entry_id]) for entry_id, count in segments_matched.items()
                if count >= MIN_MATCHING_SEGMENTS]

    def _confirm(self, org_id: str, hashes: MediaHashes, candidates: dict[int, tuple[LoadedBank, int]]
                 ) -> list[BankMatch]:
        entries = [e for e in self.repository.get_entries(candidates) if e.deleted_at is None]
        media_values: dict[str, str] = {
            BankHashType.MD5: hashes.digests.md5, BankHashType.SHA1: hashes.digests.sha1,
            BankHashType.SHA256: hashes.digests.sha256,
        }
        if hashes.image is not None:
            media_values[BankHashType.PDQ] = hashes.image.pdq
            media_values[BankHashType.PHASH] = hashes.image.phash
            media_values[BankHashType.CROP_RESISTANT] = hashes.image.crop_resistant
        pairs = {(e.hash_type, e.value) for e in entries} | set(media_values.items())
        allowed = self.repository.allowlisted(org_id, {e.bank_id for e in entries}, pairs)

        def is_allowed(bank_id: int, hash_type: str, value: str) -> bool:
            return (None, hash_type, value) in allowed or (bank_id, hash_type, value) in allowed

        matches: list[BankMatch] = []
        for e in entries:
            assert e.id is not None
            bank, distance = candidates[e.id]
            media_value = media_values.get(e.hash_type)
            if is_allowed(e.bank_id, e.hash_type, e.value) or (
                media_value is not None and is_allowed(e.bank_id, e.hash_type, media_value)
            ):
                continue
            matches.append(BankMatch(e.bank_id, bank.name, e.id, e.hash_type, distance, e.external_id,
                                     e.classification))
        matches.sort(key=lambda m: (m.distance, m.bank_id, m.entry_id))
        if matches and self.record_hits:
            self.repository.record_hits(m.entry_id for m in matches)
        return matches
