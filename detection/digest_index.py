"""Exact MD5 / SHA-1 / SHA-256 lookups, shaped like ``PdqIndex`` so the matcher treats both alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, TypeVar

import numpy as np

K = TypeVar("K")
V = TypeVar("V")

DigestType = Literal["md5", "sha1", "sha256"]
_DIGEST_BYTES: dict[str, int] = {"md5": 16, "sha1": 20, "sha256": 32}


class DigestIndex:
    """Exact MD5 / SHA-1 / SHA-256 lookups, with the same add/remove/query shape as ``PdqIndex``.

    Keys are the raw digest bytes (half the memory of hex strings). ``query`` returns
    ``[(entry_id, 0), ...]`` so callers can treat exact and fuzzy hits alike.
    """

    def __init__(self, hash_type: DigestType = "md5") -> None:
        if hash_type not in _DIGEST_BYTES:
            raise ValueError(f"unsupported digest type {hash_type!r}")
        self.hash_type = hash_type
        self._width = _DIGEST_BYTES[hash_type]
        # One entry id per key in the common case; a list only when several entries share a digest.
        self._by_digest: dict[bytes, int | list[int]] = {}
        self._by_id: dict[int, bytes | list[bytes]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def _key(self, value: str) -> bytes:
        try:
            key = bytes.fromhex(value.strip())
        except (ValueError, AttributeError):
            key = b""
        if len(key) != self._width:
            raise ValueError(f"not a {self.hash_type} hex digest: {str(value)[:80]!r}")
        return key

    def add(self, entry_ids: Sequence[int], hashes: Sequence[str]) -> None:
        if len(entry_ids) != len(hashes):
            raise ValueError(f"{len(entry_ids)} entry ids for {len(hashes)} hashes")
        keys = [self._key(h) for h in hashes]  # validate all before changing anything
        for entry_id, key in zip(entry_ids, keys, strict=True):
            entry_id = int(entry_id)
            _multi_add(self._by_digest, key, entry_id)
            _multi_add(self._by_id, entry_id, key)

    def remove(self, entry_ids: Iterable[int]) -> int:
        removed = 0
        for entry_id in entry_ids:
            keys = self._by_id.pop(int(entry_id), None)
            if keys is None:
                continue
            for key in keys if isinstance(keys, list) else (keys,):
                _multi_discard(self._by_digest, key, int(entry_id))
                removed += 1
        return removed

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (entry id, digest) pair as (n,) int64 ids and (n, width) uint8 keys, for a snapshot."""
        pairs = [(i, k) for i, keys in self._by_id.items() for k in (keys if isinstance(keys, list) else (keys,))]
        ids = np.fromiter((i for i, _ in pairs), dtype=np.int64, count=len(pairs))
        keys = np.frombuffer(b"".join(k for _, k in pairs), dtype=np.uint8).reshape(len(pairs), self._width)
        return ids, keys

    @classmethod
    def from_arrays(cls, hash_type: DigestType, ids: np.ndarray, keys: np.ndarray) -> DigestIndex:
        """Inverse of ``to_arrays``."""
        index = cls(hash_type)
        if keys.shape != (ids.size, index._width):
            raise ValueError(f"{hash_type} keys of shape {keys.shape} for {ids.size} ids")
        raw = np.ascontiguousarray(keys).tobytes()
        width = index._width
        for row, entry_id in enumerate(ids.tolist()):
            key = raw[row * width : (row + 1) * width]
            _multi_add(index._by_digest, key, entry_id)
            _multi_add(index._by_id, entry_id, key)
        return index

    def query(self, digest_hex: str) -> list[tuple[int, int]]:
        try:
            key = self._key(digest_hex)
        except ValueError:
            return []
        ids = self._by_digest.get(key)
        if ids is None:
            return []
        return [(i, 0) for i in sorted(ids if isinstance(ids, list) else (ids,))]


def _multi_add(mapping: dict[K, V | list[V]], key: K, value: V) -> None:
    current = mapping.get(key)
    if current is None:
        mapping[key] = value
    elif isinstance(current, list):
        if value not in current:
            current.append(value)
    elif current != value:
        mapping[key] = [current, value]


def _multi_discard(mapping: dict[K, V | list[V]], key: K, value: V) -> None:
    current = mapping.get(key)
    if isinstance(current, list):
        if value in current:
            current.remove(value)
        if len(current) == 1:
            mapping[key] = current[0]
    elif current == value:
        del mapping[key]
