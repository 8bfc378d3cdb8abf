"""One hash bank as the matcher holds it in memory: a PDQ index, exact digest indexes and, for own-reports
banks only, brute-force indexes of 64-bit pHashes and crop-resistant segment hashes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detection.crop_resistant import informative_segments
from detection.digest_index import DigestIndex
from detection.pdq_index import PdqIndex
from models.hash_banks import BankHashType, BankSource

DIGEST_TYPES = (BankHashType.MD5, BankHashType.SHA1, BankHashType.SHA256)


class Hash64Index:
    """Brute-force Hamming search over 64-bit hashes; small by design (own-reports banks only)."""

    def __init__(self) -> None:
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._ids = np.zeros(0, dtype=np.int64)
        self._rows = 0

    def __len__(self) -> int:
        return int(np.count_nonzero(self._ids[: self._rows] >= 0))

    def add(self, entry_ids: list[int], hashes: list[int]) -> None:
        n = len(entry_ids)
        if self._rows + n > self._ids.size:
            capacity = max(1024, 2 * (self._rows + n))
            self._hashes = np.concatenate([self._hashes[: self._rows], np.zeros(capacity - self._rows, np.uint64)])
            self._ids = np.concatenate([self._ids[: self._rows], np.full(capacity - self._rows, -1, np.int64)])
        self._hashes[self._rows : self._rows + n] = np.asarray(hashes, dtype=np.uint64)
        self._ids[self._rows : self._rows + n] = entry_ids
        self._rows += n

    def remove(self, entry_ids: list[int]) -> None:
        if entry_ids and self._rows:
            ids = self._ids[: self._rows]
            ids[np.isin(ids, entry_ids)] = -1

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Live (ids, hashes), for a snapshot."""
        live = self._ids[: self._rows] >= 0
        return self._ids[: self._rows][live], self._hashes[: self._rows][live]

    @classmethod
    def from_arrays(cls, ids: np.ndarray, hashes: np.ndarray) -> Hash64Index:
        index = cls()
        index.add(ids.tolist(), hashes.tolist())
        return index

    def query(self, value: int, max_distance: int) -> list[tuple[int, int]]:
        if not self._rows:
            return []
        dist = np.bitwise_count(self._hashes[: self._rows] ^ np.uint64(value))
        rows = np.flatnonzero((dist <= max_distance) & (self._ids[: self._rows] >= 0))
        return list(zip(self._ids[rows].tolist(), dist[rows].astype(int).tolist(), strict=True))


@dataclass(slots=True)
class LoadedBank:
    id: int
    org_id: str
    name: str
    source: str
    pdq_distance: int
    change_seq: int  # the bank's change_seq this copy reflects
    max_id: int = 0  # the largest entry id seen (live or not)
    unsaved_changes: int = 0  # rows added or removed since the bank's last snapshot
    pdq: PdqIndex = field(default_factory=PdqIndex)
    digests: dict[str, DigestIndex] = field(default_factory=dict)
    phash: Hash64Index | None = None
    crop: Hash64Index | None = None

    @property
    def own_reports(self) -> bool:
        return self.source == BankSource.OWN_REPORTS

    def entries(self) -> int:
        n = len(self.pdq) + sum(len(d) for d in self.digests.values())
        return n + (len(self.phash) if self.phash else 0)

    def add_rows(self, rows: list[tuple[int, str, str]]) -> int:
        """Index (entry_id, hash_type, value) rows; returns how many were indexed."""
        by_type: dict[str, tuple[list[int], list[str]]] = {}
        for entry_id, hash_type, value in rows:
            ids, values = by_type.setdefault(hash_type, ([], []))
            ids.append(entry_id)
            values.append(value)
        added = 0
        for hash_type, (ids, values) in by_type.items():
            if hash_type == BankHashType.PDQ:
                self.pdq.add(ids, values)
            elif hash_type in DIGEST_TYPES:
                self.digests.setdefault(hash_type, DigestIndex(hash_type)).add(ids, values)  # type: ignore[arg-type]
            elif hash_type == BankHashType.PHASH and self.own_reports:
                self.phash = self.phash or Hash64Index()
                self.phash.add(ids, [int(v, 16) for v in values])
            elif hash_type == BankHashType.CROP_RESISTANT and self.own_reports:
                self.crop = self.crop or Hash64Index()
                segments = [(i, s) for i, v in zip(ids, values, strict=True) for s in informative_segments(v)]
                self.crop.add([i for i, _ in segments], [s for _, s in segments])
            else:
                continue  # pHash in a shared bank: not matched, by design
            added += len(ids)
        return added

    def remove_rows(self, rows: list[tuple[int, str]]) -> None:
        by_type: dict[str, list[int]] = {}
        for entry_id, hash_type in rows:
            by_type.setdefault(hash_type, []).append(entry_id)
        for hash_type, ids in by_type.items():
            if hash_type == BankHashType.PDQ:
                self.pdq.remove(ids)
            elif hash_type in self.digests:
                self.digests[hash_type].remove(ids)
            elif hash_type == BankHashType.PHASH and self.phash:
                self.phash.remove(ids)
            elif hash_type == BankHashType.CROP_RESISTANT and self.crop:
                self.crop.remove(ids)
