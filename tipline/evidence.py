"""The evidence store: media bytes, content-addressed by SHA-256, in a local folder.

Temporal payloads and database rows carry an ``EvidenceRef`` (digests and size), never bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from detection.digests import digest_file
from models.case import EvidenceRef


class EvidenceMissing(FileNotFoundError):
    pass


class EvidenceStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / "incoming"
        self._incoming.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    @contextmanager
    def incoming_file(self) -> Iterator[tuple[Path, BinaryIO]]:
        """A scratch file in the store's own filesystem, so ``put_path`` is a rename, not a copy."""
        handle, name = tempfile.mkstemp(dir=self._incoming)
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as stream:
                yield path, stream
        finally:
            path.unlink(missing_ok=True)

    def put_path(self, path: Path) -> EvidenceRef:
        """Move ``path`` into the store (or drop it if those bytes are already kept)."""
        digests = digest_file(path)
        target = self.path_for(digests.sha256)
        if target.exists():
            path.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        return EvidenceRef(sha256=digests.sha256, md5=digests.md5, sha1=digests.sha1, size=digests.size)

    def put_stream(self, source: BinaryIO, *, max_bytes: int | None = None) -> EvidenceRef:
        with self.incoming_file() as (path, sink):
            copied = 0
            while chunk := source.read(1 << 20):
                copied += len(chunk)
                if max_bytes is not None and copied > max_bytes:
                    raise ValueError(f"media is larger than {max_bytes} bytes")
                sink.write(chunk)
            sink.close()
            return self.put_path(path)

    def put_bytes(self, data: bytes) -> EvidenceRef:
        with self.incoming_file() as (path, sink):
            sink.write(data)
            sink.close()
            return self.put_path(path)

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path_for(sha256).open("rb")
        except FileNotFoundError:
            raise EvidenceMissing(sha256) from None

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as handle:
            return handle.read()

