"""Exact PDQ radius search (Hamming distance) over millions of hashes.

``PdqIndex`` is a brute-force scan made fast, not an approximate index: every query returns exactly the
entries a full pairwise comparison would. Layout and tricks (see HASH_MATCHING.md):

* Rows live in chunks of ``CHUNK_ROWS``. A chunk stores each 256-bit hash as three columns: bits 0-63
  (uint64), bits 64-95 (uint32) and bits 96-255 (five uint32 side by side), plus an int64 entry-id
  column: 40 bytes an entry, nothing else per entry.
* A query scans only the first two columns, an exact lower bound of the distance, and reads the rest
  for the few rows that pass it; the compiled loop is in ``detection.pdq_scan``.
* Removal writes -1 into the id column (a tombstone): no rebuild, matching continues, and
  ``compact()`` (run automatically once a quarter of rows are dead) reclaims the space.
* ``save`` writes plain ``.npy`` files; ``load`` memory-maps them, so a restart costs milliseconds and
  the OS page cache is shared between worker processes on one machine.

Concurrency: queries may run in several threads at once (scratch buffers are per thread and the scan
releases the GIL), but not while ``add``/``remove``/``compact`` runs; callers serialise mutations with a
lock, or mutate a copy and swap.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detection.pdq_scan import scan_chunk, scan_chunk_many

# 64K rows: at 1M entries the Python loop runs only 16 times, and a chunk's first two columns (768 KiB)
# stay small next to the caches. Appends fill the last chunk; no append copies more than one chunk.
CHUNK_ROWS = 1 << 16
_TOMBSTONE = -1
# Compact when this share of rows is dead: scans stay within 1.33x of the live size.
_COMPACT_DEAD_FRACTION = 0.25
_FORMAT_VERSION = 2
_PDQ_HEX_LEN = 64
_LOW32 = np.uint64(0xFFFFFFFF)
_COLUMN_FILES = ("pdq_first64.npy", "pdq_next32.npy", "pdq_last160.npy", "entry_ids.npy")


def pdq_hex_to_words(hashes: Sequence[str]) -> np.ndarray:
    """Parse 64-hex PDQ hashes into a (4, n) uint64 array; word 0 holds the first 16 hex digits.

    Raises ValueError naming the first bad hash (wrong length, non-hex, embedded whitespace).
    """
    n = len(hashes)
    if n == 0:
        return np.zeros((4, 0), dtype=np.uint64)
    # Fast path: one join + one fromhex for the whole batch; per-item checks only when it fails.
    raw = b""
    if all(type(h) is str and len(h) == _PDQ_HEX_LEN for h in hashes):
        try:
            raw = bytes.fromhex("".join(hashes))
        except ValueError:
            raw = b""
    if len(raw) != 32 * n:  # fromhex skips whitespace, so a shorter result also means a bad hash
        for i, h in enumerate(hashes):
            if not _is_pdq_hex(h):
                raise ValueError(f"hash #{i} is not a 64-hex-digit PDQ hash: {str(h)[:80]!r}")
        raw = bytes.fromhex("".join(str(h) for h in hashes))  # all valid: str subclasses, say
    words = np.frombuffer(raw, dtype=">u8").reshape(n, 4)
    return np.ascontiguousarray(words.T, dtype=np.uint64)


def _is_pdq_hex(h: object) -> bool:
    if not isinstance(h, str) or len(h) != _PDQ_HEX_LEN:
        return False
    try:
        return len(bytes.fromhex(h)) == 32
    except ValueError:
        return False


def words_to_pdq_hex(words: np.ndarray) -> list[str]:
    """Inverse of ``pdq_hex_to_words``."""
    be = np.ascontiguousarray(np.asarray(words, dtype=np.uint64).T).astype(">u8")
    raw = be.tobytes()
    return [raw[i : i + 32].hex() for i in range(0, len(raw), 32)]


def _split_words(words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(4, n) uint64 words -> the scan's columns: bits 0-63 (n,), bits 64-95 (n,), bits 96-255 (n, 5)."""
    rest = words[1:].T
    halves = np.empty((words.shape[1], 6), dtype=np.uint32)
    halves[:, 0::2] = rest >> np.uint64(32)
    halves[:, 1::2] = rest & _LOW32
    return np.ascontiguousarray(words[0]), np.ascontiguousarray(halves[:, 0]), np.ascontiguousarray(halves[:, 1:])


def _query_columns(digest: bytes) -> np.ndarray:
    """A 32-byte PDQ hash split like the stored columns (bits 0-63, 64-95, five words of 96-255), as uint64."""
    words32 = np.frombuffer(digest, dtype=">u4").astype(np.uint64)
    return np.concatenate([[(words32[0] << np.uint64(32)) | words32[1]], words32[2:]])


def _join_words(first64: np.ndarray, next32: np.ndarray, last160: np.ndarray) -> np.ndarray:
    """Inverse of ``_split_words``."""
    halves = np.column_stack([next32, last160]).astype(np.uint64)
    words = np.empty((4, first64.size), dtype=np.uint64)
    words[0] = first64
    words[1:] = ((halves[:, 0::2] << np.uint64(32)) | halves[:, 1::2]).T
    return words


@dataclass
class _Chunk:
    """Up to CHUNK_ROWS rows in the scan's column layout, plus their entry ids."""

    first64: np.ndarray  # (capacity,) uint64, bits 0-63
    next32: np.ndarray  # (capacity,) uint32, bits 64-95
    last160: np.ndarray  # (capacity, 5) uint32, bits 96-255: a row's 20 bytes together, read only on a match
    ids: np.ndarray  # (capacity,) int64; _TOMBSTONE marks a removed row

    @classmethod
    def allocate(cls, capacity: int) -> _Chunk:
        return cls(
            np.zeros(capacity, dtype=np.uint64),
            np.zeros(capacity, dtype=np.uint32),
            np.zeros((capacity, 5), dtype=np.uint32),
            np.full(capacity, _TOMBSTONE, dtype=np.int64),
        )

    @property
    def capacity(self) -> int:
        return int(self.ids.size)

    def write(self, at: int, ids: np.ndarray, columns: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        end = at + ids.size
        self.first64[at:end], self.next32[at:end], self.last160[at:end] = columns
        self.ids[at:end] = ids

    def rows(self, used: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return self.ids[:used], (self.first64[:used], self.next32[:used], self.last160[:used])


class _Scratch(threading.local):
    """Per-thread output buffers for the scan, so a query allocates nothing proportional to the index."""

    def __init__(self) -> None:
        self.rows = np.empty(0, dtype=np.int64)
        self.distances = np.empty(0, dtype=np.int64)

    def buffers(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self.rows.size < size:
            self.rows = np.empty(size, dtype=np.int64)
            self.distances = np.empty(size, dtype=np.int64)
        return self.rows, self.distances


class PdqIndex:
    """Exact PDQ radius index. Entry ids are non-negative int64 (e.g. the bank entry's database id)."""

    def __init__(self) -> None:
        # All chunks but the last hold exactly CHUNK_ROWS rows; the last grows up to that.
        self._chunks: list[_Chunk] = []
        self._tail_rows = 0  # rows used in the last chunk
        self._rows = 0  # rows used in total, tombstones included
        self._dead = 0
        self._scratch = _Scratch()

    # ------------------------------------------------------------------ size

    def __len__(self) -> int:
        """Live (not removed) rows."""
        return self._rows - self._dead

    @property
    def rows(self) -> int:
        """Rows scanned by a query, tombstones included."""
        return self._rows

    @property
    def nbytes(self) -> int:
        """Bytes of hash and id storage (resident or memory-mapped)."""
        return sum(c.first64.nbytes + c.next32.nbytes + c.last160.nbytes + c.ids.nbytes for c in self._chunks)

    # ------------------------------------------------------------------ mutation

    def add(self, entry_ids: Sequence[int], hashes: Sequence[str]) -> None:
        """Append hashes. Validates everything first, so a bad hash leaves the index unchanged."""
        if len(entry_ids) != len(hashes):
            raise ValueError(f"{len(entry_ids)} entry ids for {len(hashes)} hashes")
        words = pdq_hex_to_words(hashes)
        self.add_words(np.asarray(entry_ids, dtype=np.int64), words)

    def add_words(self, entry_ids: np.ndarray, words: np.ndarray) -> None:
        """Bulk form of ``add`` for already-parsed (4, n) uint64 hashes."""
        ids = np.asarray(entry_ids, dtype=np.int64).reshape(-1)
        words = np.asarray(words, dtype=np.uint64)
        if words.ndim != 2 or words.shape[0] != 4 or words.shape[1] != ids.size:
            raise ValueError(f"expected (4, {ids.size}) uint64 words, got {words.shape}")
        self._append(ids, _split_words(words))

    def _append(self, ids: np.ndarray, columns: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        if ids.size and int(ids.min()) < 0:
            raise ValueError("entry ids must be non-negative")
        done = 0
        while done < ids.size:
            if not self._chunks or self._tail_rows == CHUNK_ROWS:
                self._chunks.append(_Chunk.allocate(0))
                self._tail_rows = 0
            start = self._tail_rows
            take = min(CHUNK_ROWS - start, ids.size - done)
            if start + take > self._chunks[-1].capacity:
                self._grow_tail(start + take)
            part = slice(done, done + take)
            self._chunks[-1].write(start, ids[part], (columns[0][part], columns[1][part], columns[2][part]))
            self._tail_rows += take
            self._rows += take
            done += take

    def _grow_tail(self, needed: int) -> None:
        # The last chunk grows geometrically up to CHUNK_ROWS, so a small index does not pay for a full
        # chunk and a large one wastes at most one partly filled chunk.
        old = self._chunks[-1]
        grown = _Chunk.allocate(min(CHUNK_ROWS, max(needed, 2 * old.capacity, 1024)))
        ids, columns = old.rows(self._tail_rows)
        grown.write(0, ids, columns)
        self._chunks[-1] = grown

    def remove(self, entry_ids: Iterable[int]) -> int:
        """Tombstone every row of these entries; returns the rows removed. Unknown ids are ignored."""
        targets = np.unique(np.fromiter(entry_ids, dtype=np.int64))
        targets = targets[targets >= 0]
        if targets.size == 0 or self._rows == 0:
            return 0
        removed = 0
        for chunk, used in self._chunks_in_use():
            ids = chunk.ids[:used]
            hit = np.isin(ids, targets)
            n = int(np.count_nonzero(hit))
            if n:
                ids[hit] = _TOMBSTONE
                removed += n
        self._dead += removed
        if self._rows and self._dead > _COMPACT_DEAD_FRACTION * self._rows:
            self.compact()
        return removed

    def compact(self) -> None:
        """Drop tombstoned rows (copies live rows into fresh in-memory chunks)."""
        ids, columns = self._live_rows()
        fresh = PdqIndex()
        fresh._append(ids, columns)
        self._chunks, self._tail_rows, self._rows, self._dead = fresh._chunks, fresh._tail_rows, fresh._rows, 0

    # ------------------------------------------------------------------ query

    def query(self, pdq_hex: str, max_distance: int = 31) -> list[tuple[int, int]]:
        """All entries within ``max_distance`` bits, as (entry_id, distance) sorted by distance then id.

        An entry stored under several hashes is reported once, at its smallest distance.
        """
        if not 0 <= max_distance <= 256:
            raise ValueError("max_distance must be between 0 and 256")
        if not _is_pdq_hex(pdq_hex):
            raise ValueError(f"not a 64-hex-digit PDQ hash: {str(pdq_hex)[:80]!r}")
        return self._scan(_query_columns(bytes.fromhex(pdq_hex)), max_distance)

    def query_many(self, pdq_hexes: Sequence[str], max_distance: int = 31) -> list[tuple[int, int]]:
        """``query`` for several hashes at once (an image's 8 dihedral variants) in one pass over the index.

        Returns what querying each hash and keeping every entry's smallest distance would: (entry_id,
        distance) sorted by distance then id. Repeated hashes (a symmetric image's variants) are scanned once.
        Raises ValueError naming the first bad hash.
        """
        if not 0 <= max_distance <= 256:
            raise ValueError("max_distance must be between 0 and 256")
        for i, h in enumerate(pdq_hexes):
            if not _is_pdq_hex(h):
                raise ValueError(f"hash #{i} is not a 64-hex-digit PDQ hash: {str(h)[:80]!r}")
        distinct = list(dict.fromkeys(h.lower() for h in pdq_hexes))
        if not distinct:
            return []
        if len(distinct) == 1:
            return self._scan(_query_columns(bytes.fromhex(distinct[0])), max_distance)
        queries = np.stack([_query_columns(bytes.fromhex(h)) for h in distinct])
        return self._scan(queries, max_distance)

    def _scan(self, query: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
        """One pass over the chunks for a (7,) query or an (m, 7) stack of them."""
        found_rows, found_distances = self._scratch.buffers(max((c.capacity for c in self._chunks), default=0))
        scan = scan_chunk_many if query.ndim == 2 else scan_chunk
        found: dict[int, int] = {}
        for chunk, used in self._chunks_in_use():
            n = scan(
                chunk.first64, chunk.next32, chunk.last160, used, query, max_distance, found_rows, found_distances
            )
            if n == 0:
                continue
            ids = chunk.ids[found_rows[:n]]
            for entry_id, dist in zip(ids.tolist(), found_distances[:n].tolist(), strict=True):
                if entry_id != _TOMBSTONE and dist < found.get(entry_id, 257):
                    found[entry_id] = dist
        return sorted(found.items(), key=lambda item: (item[1], item[0]))

    # ------------------------------------------------------------------ persistence

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write live rows to ``directory`` (created if needed), one ``.npy`` file a column; meta.json last."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        ids, (first64, next32, last160) = self._live_rows()
        for name, column in zip(_COLUMN_FILES, (first64, next32, last160, ids), strict=True):
            _write_npy(path / name, np.ascontiguousarray(column))
        meta = {"format": "tipline-pdq-index", "version": _FORMAT_VERSION, "rows": int(ids.size)}
        tmp = path / "meta.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, path / "meta.json")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> PdqIndex:
        """Memory-map an index written by ``save``. Removals after loading never write to the files."""
        path = Path(directory)
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != "tipline-pdq-index" or meta.get("version") != _FORMAT_VERSION:
            raise ValueError(f"{path} is not a version-{_FORMAT_VERSION} PDQ index")
        rows = int(meta["rows"])
        first64, next32, last160 = (np.load(path / name, mmap_mode="r") for name in _COLUMN_FILES[:3])
        # Copy-on-write: tombstones written after loading stay in this process's memory.
        ids = np.load(path / _COLUMN_FILES[3], mmap_mode="c")
        expected = [(first64, np.uint64, (rows,)), (next32, np.uint32, (rows,)), (last160, np.uint32, (rows, 5))]
        if ids.shape != (rows,) or any(a.dtype != dtype or a.shape != shape for a, dtype, shape in expected):
            raise ValueError(f"{path}: files do not match meta.json (interrupted save?)")
        index = cls()
        full = rows // CHUNK_ROWS * CHUNK_ROWS
        for start in range(0, full, CHUNK_ROWS):
            part = slice(start, start + CHUNK_ROWS)
            index._chunks.append(_Chunk(first64[part], next32[part], last160[part], ids[part]))
        index._rows = full
        index._tail_rows = CHUNK_ROWS if full else 0
        if rows > full:
            # The partial last chunk becomes an ordinary in-memory chunk so appends continue in place.
            rest = slice(full, rows)
            index._append(np.asarray(ids[rest]), (first64[rest], next32[rest], last160[rest]))
        index._dead = int(np.count_nonzero(ids == _TOMBSTONE))
        return index

    # ------------------------------------------------------------------ helpers

    def _chunks_in_use(self) -> Iterator[tuple[_Chunk, int]]:
        last = len(self._chunks) - 1
        for i, chunk in enumerate(self._chunks):
            used = self._tail_rows if i == last else CHUNK_ROWS
            if used:
                yield chunk, used

    def _live_rows(self) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        parts = []
        for chunk, used in self._chunks_in_use():
            ids, (first64, next32, last160) = chunk.rows(used)
            live = ids != _TOMBSTONE
            parts.append((ids[live], first64[live], next32[live], last160[live]))
        if not parts:
            return np.zeros(0, np.int64), _split_words(np.zeros((4, 0), np.uint64))
        ids, first64, next32, last160 = (np.concatenate(column) for column in zip(*parts, strict=True))
        return ids, (first64, next32, last160)

    def iter_entries(self) -> Iterable[tuple[int, str]]:
        """Live (entry_id, pdq_hex) rows, for audits and re-exports."""
        ids, columns = self._live_rows()
        return zip(ids.tolist(), words_to_pdq_hex(_join_words(*columns)), strict=True)


def warm_up() -> None:
    """Compile the scan (or load it from numba's on-disk cache) now, not during the first match."""
    index = PdqIndex()
    index.add([0], ["0" * _PDQ_HEX_LEN])
    index.query("0" * _PDQ_HEX_LEN, 0)
    index.query_many(["0" * _PDQ_HEX_LEN, "f" * _PDQ_HEX_LEN], 0)


def _write_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_suffix(".npy.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
