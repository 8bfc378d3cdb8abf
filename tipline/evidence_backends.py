"""Where sealed evidence objects live: a small storage protocol, and its local-directory implementation.

The evidence store (``tipline.evidence``) encrypts and authenticates; a backend only keeps opaque sealed bytes
under a name (the object's SHA-256). Backends never see plaintext or keys, so moving evidence from a disk to a
bucket changes nothing about what an attacker holding the storage can read.

The S3 implementation is in ``tipline.evidence_s3``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

_NAME = re.compile(r"[0-9a-f]{64}")


class EvidenceMissing(FileNotFoundError):
    pass


class EvidenceChanged(OSError):
    """The object was replaced while it was being read (a concurrent re-seal of the same bytes). Retryable:
    reopening reads the new copy, which decrypts to the same plaintext."""


class EvidenceStoreUnavailable(OSError):
    """The backend cannot take or serve evidence now: its folder or bucket is missing, access is denied, or its
    endpoint does not answer. The message names the folder or bucket (for the operator's log), never a
    credential."""


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError("not a sha256 digest")
    return name


def fan_out(name: str) -> str:
    """``ab/cd/abcd…``: the local layout, kept for object keys too so a local store syncs into a bucket as is."""
    return f"{name[:2]}/{name[2:4]}/{name}"


@runtime_checkable
class RangedSource(Protocol):
    """One stored object opened for reading: its length, and any byte range of it on demand."""

    size: int

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer only at the end of the object)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class StorageBackend(Protocol):
    def put_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        """Store the concatenation of ``chunks`` under ``name``, replacing any object there. Atomic: readers see
        the old object or the whole new one, never a part; nothing is left behind if ``chunks`` raises."""
        ...

    def put_file(self, name: str, path: Path) -> None:
        """Store the sealed file at ``path`` (a local scratch file) under ``name``, as ``put_stream`` would; the
        file may be moved rather than copied, so the caller must not use ``path`` afterwards."""
        ...

    def open(self, name: str) -> RangedSource:
        """Raises ``EvidenceMissing`` if there is no such object."""
        ...

    def exists(self, name: str) -> bool: ...

    def delete(self, name: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        ...

    def size(self, name: str) -> int:
        """The stored (sealed) length in bytes; raises ``EvidenceMissing``."""
        ...

    def names(self) -> Iterator[str]:
        """Every stored object's name, for maintenance (re-encryption after a key rotation)."""
        ...

    def probe(self) -> None:
        """Check, cheaply and without writing, that objects can be stored and read where this backend keeps
        them (a readiness check); raises ``EvidenceStoreUnavailable`` saying why not."""
        ...


class FileSource:
    """A ``RangedSource`` over a local file. The open handle pins the file: a concurrent ``os.replace`` of the
    same name does not change what this reader sees."""

    def __init__(self, path: Path) -> None:
        try:
            self._file: BinaryIO = path.open("rb")
        except FileNotFoundError:
            raise EvidenceMissing(path.name) from None
        self.size = os.fstat(self._file.fileno()).st_size

    def read_at(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(length)

    def close(self) -> None:
        self._file.close()


def _fsync_dir(path: Path) -> None:
    # Evidence must survive a power cut once put_* has returned: the rename itself has to reach the disk.
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalBackend:
    """Objects as files under ``root/ab/cd/<sha256>``, the layout every store before backends used."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root = root
        self._scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBackend(root={str(self.root)!r})"

    def path(self, name: str) -> Path:
        return self.root / fan_out(check_name(name))

    def put_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        target = self.path(name)
        handle, temp = tempfile.mkstemp(dir=self._scratch, prefix="seal-")
        try:
            with os.fdopen(handle, "wb") as sink:
                for chunk in chunks:
                    sink.write(chunk)
                sink.flush()
                os.fsync(sink.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            # A concurrent writer of the same bytes may win the race; either ciphertext decrypts to the same.
            os.replace(temp, target)
            _fsync_dir(target.parent)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def put_file(self, name: str, path: Path) -> None:
        # The scratch folder is on the object folder's filesystem: the sealed file moves into place, no copy.
        target = self.path(name)
        with path.open("rb") as sealed:
            os.fsync(sealed.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        _fsync_dir(target.parent)

    def open(self, name: str) -> FileSource:
        return FileSource(self.path(name))

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def size(self, name: str) -> int:
        try:
            return self.path(name).stat().st_size
        except FileNotFoundError:
            raise EvidenceMissing(name) from None

    def probe(self) -> None:
        if not self.root.is_dir():
            raise EvidenceStoreUnavailable(f"the evidence folder {str(self.root)!r} does not exist")

    def names(self) -> Iterator[str]:
        for path in sorted(self.root.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*")):
            name = path.name
            if path.is_file() and _NAME.fullmatch(name) and path.parent.name == name[2:4] and \
                    path.parent.parent.name == name[:2]:
                yield name
