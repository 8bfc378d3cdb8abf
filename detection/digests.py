"""Exact cryptographic digests of media bytes (MD5, SHA-1 for NCMEC lists; SHA-256 for evidence storage)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

# 1 MiB balances syscall overhead against memory; hashlib releases the GIL for buffers this large.
_CHUNK_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class Digests:
    """Lower-case hex digests of one blob, plus its size in bytes."""

    md5: str
    sha1: str
    sha256: str
    size: int


def digest_bytes(data: bytes) -> Digests:
    return Digests(
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def digest_file(path: str | os.PathLike[str]) -> Digests:
    """Digest a file in one streaming pass, so arbitrarily large videos never sit in memory."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha1 = hashlib.sha1(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    buf = bytearray(_CHUNK_SIZE)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            chunk = view[:n]
            md5.update(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
            size += n
    return Digests(md5=md5.hexdigest(), sha1=sha1.hexdigest(), sha256=sha256.hexdigest(), size=size)
