"""The evidence store: media bytes, content-addressed by SHA-256, encrypted at rest, in a local folder.

Temporal payloads and database rows carry an ``EvidenceRef`` (digests and size), never bytes. The address is
the SHA-256 of the *plaintext*, so report hashes and deduplication are unaffected by encryption; a stolen disk
or backup holds only ciphertext (the keys live elsewhere, see ``tipline.evidence_keys``).

Object format, version 2 (all integers big-endian)::

    header  = b"TLEV" | version u8 | chunk_size u32 | key_id_len u8 | key_id | salt[32] | nonce_prefix[7]
    chunk_i = AES-256-GCM(subkey, nonce_prefix | i u32 | final u8, plaintext_i, aad) -> ciphertext_i | tag[16]
    subkey  = HKDF-SHA256(ring[key_id], salt, info=b"tipline-evidence/v2")
    aad     = header | i u32 | 0                 for every chunk but the last
    aad     = header | sha256 | i u32 | 1        for the final chunk

Only the final chunk names the object's address, because only when it is sealed has every byte been hashed:
so a download is encrypted once, as it arrives, under the current key, and the finished file is moved to its
address, never decrypted and sealed again. Version 1 (still read; nothing writes it) bound the address into the
subkey (``info = b"tipline-evidence/v1" | sha256``) and into every chunk's aad, so it could only be written once
the address was known: a download was sealed twice.

Every chunk holds ``chunk_size`` plaintext bytes except the last, which holds 0..chunk_size bytes and is the
only one flagged final (an empty object is a single empty final chunk). This is the "STREAM" construction:
- reordering chunks breaks the counter in nonce and aad; truncating at a chunk boundary leaves a last chunk
  that was not sealed as final; appending or cutting bytes breaks the layout or a tag;
- a whole file from another object fails at its final chunk, whose aad names the address (``open``
  authenticates the final chunk before anything is read); a chunk from another object fails because every
  object's random salt gives it a subkey of its own, and the header holding the salt is in every chunk's aad;
- that per-object subkey also means nonces never repeat under one AES key however many objects a master key
  encrypts;
- the header is in every chunk's aad, so its key id, chunk size and nonce prefix cannot be altered either.

The plaintext size is not stored: it follows from the file length, and ``open`` authenticates the final chunk
before returning, so the size it reports is trustworthy and a truncated file fails at once.

Where sealed objects live is a storage backend's business (``tipline.evidence_backends``): a local directory by
default, or an S3-compatible bucket (``tipline.evidence_s3``). Backends hold ciphertext only; sealing, keys and
authentication stay here, so every backend stores exactly the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from detection.digests import Digests, digest_bytes
from models.case import EvidenceRef
from tipline.evidence_backends import (
    EvidenceChanged,
    EvidenceMissing,
    EvidenceStoreUnavailable,
    LocalBackend,
    RangedSource,
    StorageBackend,
    check_name,
)
from tipline.evidence_keys import (
    LOCAL_KEY_FILE_NAME,
    EvidenceKeyError,
    EvidenceKeyMissing,
    KeyRing,
    _Key,
)
from tipline.logging import get_logger
from tipline.metrics import count_evidence_stored

if TYPE_CHECKING:
    from tipline.settings import Settings

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EvidenceChanged",
    "EvidenceCorrupted",
    "EvidenceKeyError",
    "EvidenceKeyMissing",
    "EvidenceMissing",
    "EvidenceReader",
    "EvidenceStore",
    "EvidenceStoreUnavailable",
    "EvidenceTooLarge",
    "KeyRing",
    "LocalBackend",
    "StorageBackend",
]

MAGIC = b"TLEV"
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
# 1 MiB: large enough that the 16-byte tag per chunk is noise, small enough to decrypt for a seek cheaply.
DEFAULT_CHUNK_SIZE = 1 << 20
# Bounds on a header's chunk size, checked before it is authenticated, so a forged header cannot make a
# reader allocate gigabytes.
_MIN_CHUNK_SIZE = 16
_MAX_CHUNK_SIZE = 64 << 20
_TAG = 16
_SALT = 32
_PREFIX = 7
_MAX_CHUNKS = 1 << 32  # the counter is a u32 in the nonce
_FIXED = struct.Struct(">4sBIB")
# The longest header there can be: the fixed part, a key id of up to 255 bytes, the salt and the nonce prefix.
_MAX_HEADER = _FIXED.size + 255 + 32 + 7
_INFO_V1 = b"tipline-evidence/v1"
_INFO_V2 = b"tipline-evidence/v2"
log = get_logger(__name__)
# A scratch file untouched this long belongs to a dead process (downloads are capped well below this).
STALE_SCRATCH_SECONDS = 24 * 3600


class EvidenceTooLarge(ValueError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"media is larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


class EvidenceCorrupted(Exception):
    """An object failed authentication: it was altered, truncated, swapped, or is not in a known format.

    Never retryable: the bytes on disk are wrong, and reading on would return wrong evidence.
    """


def _sha256_bytes(sha256: str) -> bytes:
    return bytes.fromhex(check_name(sha256))


@dataclass(frozen=True, slots=True)
class _Header:
    chunk_size: int
    key_id: str
    salt: bytes
    prefix: bytes
    version: int = FORMAT_VERSION

    def encode(self) -> bytes:
        key_id = self.key_id.encode("ascii")
        return _FIXED.pack(MAGIC, self.version, self.chunk_size, len(key_id)) + key_id + self.salt + self.prefix

    @classmethod
    def read(cls, source: BinaryIO, label: str) -> tuple[_Header, bytes]:
        fixed = source.read(_FIXED.size)
        if len(fixed) < _FIXED.size or fixed[:4] != MAGIC:
            raise EvidenceCorrupted(
                f"evidence {label} is not an encrypted evidence object (if this store predates encryption at "
                f"rest, run EvidenceStore.encrypt_plaintext_objects())"
            )
        _, version, chunk_size, id_len = _FIXED.unpack(fixed)
        if version not in _READABLE_VERSIONS:
            raise EvidenceCorrupted(f"evidence {label} has unknown format version {version}")
        if not _MIN_CHUNK_SIZE <= chunk_size <= _MAX_CHUNK_SIZE:
            raise EvidenceCorrupted(f"evidence {label} has an impossible chunk size")
        rest = source.read(id_len + _SALT + _PREFIX)
        if len(rest) != id_len + _SALT + _PREFIX:
            raise EvidenceCorrupted(f"evidence {label} is truncated inside its header")
        try:
            key_id = rest[:id_len].decode("ascii")
        except UnicodeDecodeError:
            raise EvidenceCorrupted(f"evidence {label} has an unreadable key id") from None
        header = cls(chunk_size, key_id, rest[id_len:id_len + _SALT], rest[id_len + _SALT:], version)
        return header, fixed + rest


def _aead(key: _Key, salt: bytes, version: int, object_id: bytes) -> AESGCM:
    # A per-object subkey: nonce uniqueness then only has to hold within one object, where the counter
    # guarantees it, instead of across every object ever written under a long-lived master key.
    info = _INFO_V1 + object_id if version == 1 else _INFO_V2
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info)
    return AESGCM(hkdf.derive(key.reveal()))


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">IB", index, final)


def _aad(header: bytes, version: int, object_id: bytes, index: int, final: bool) -> bytes:
    bound = object_id if version == 1 or final else b""
    return header + bound + struct.pack(">IB", index, final)


class _Sealer:
    """Encrypts a plaintext stream of unknown length into ``sink``, one chunk at a time; the object's address is
    needed only at ``finish``, when the final chunk is sealed.

    It always holds back up to one chunk, because only at ``finish`` is it known which chunk is the last.
    """

    def __init__(self, sink: BinaryIO, key_id: str, key: _Key, chunk_size: int) -> None:
        salt, prefix = os.urandom(_SALT), os.urandom(_PREFIX)
        self._header = _Header(chunk_size, key_id, salt, prefix).encode()
        self._aead = _aead(key, salt, FORMAT_VERSION, b"")
        self._prefix = prefix
        self._chunk_size = chunk_size
        self._sink = sink
        self._pending = bytearray()
        self._index = 0
        sink.write(self._header)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._pending += data
        size = self._chunk_size
        if len(self._pending) > size:
            # Strictly more than a chunk: a chunk-sized remainder may turn out to be the final one.
            whole = (len(self._pending) - 1) // size * size
            view = memoryview(self._pending)
            try:
                for start in range(0, whole, size):
                    self._seal(view[start:start + size], final=False)
            finally:
                view.release()
            del self._pending[:whole]

    def finish(self, object_id: bytes) -> None:
        """Seal the last chunk, naming the object's address (the SHA-256 of everything written)."""
        self._seal(self._pending, final=True, object_id=object_id)
        self._pending = bytearray()

    def _seal(self, plaintext: bytes | bytearray | memoryview, *, final: bool, object_id: bytes = b"") -> None:
        if self._index >= _MAX_CHUNKS:
            raise ValueError("object too large for the evidence format's chunk counter")
        aad = _aad(self._header, FORMAT_VERSION, object_id, self._index, final)
        self._sink.write(self._aead.encrypt(_nonce(self._prefix, self._index, final), bytes(plaintext), aad))
        self._index += 1


class EvidenceReader(io.RawIOBase):
    """A read-only, seekable plaintext view of one encrypted object, decrypting one chunk at a time.

    Works as an httpx multipart file: ``read(n)``, ``seek`` and ``tell`` behave as on a file, so httpx sizes
    the body by seeking to the end. ``fileno()`` raises ``io.UnsupportedOperation`` (an ``OSError``, which httpx
    expects): the only descriptor there is would be the ciphertext's, and its size is not the plaintext size.
    Use ``size`` for a Content-Length. Any chunk that fails authentication raises ``EvidenceCorrupted``; no
    unauthenticated byte is ever returned.
    """

    def __init__(self, source: RangedSource, object_id: bytes, keyring: KeyRing, label: str) -> None:
        """``source`` is the sealed object as a backend opened it; the reader owns and closes it."""
        super().__init__()
        self.label = label
        self._file = source
        try:
            self._setup(object_id, keyring)
        except BaseException:
            source.close()
            raise

    def _setup(self, object_id: bytes, keyring: KeyRing) -> None:
        # One read for the header whatever the backend: for object storage that is one request.
        header, raw = _Header.read(io.BytesIO(self._file.read_at(0, min(_MAX_HEADER, self._file.size))),
                                   self.label)
        self.key_id = header.key_id
        self.version = header.version
        self._aead = _aead(keyring.key(header.key_id), header.salt, header.version, object_id)
        self._header = raw
        self._object_id = object_id
        self._prefix = header.prefix
        self._chunk_size = header.chunk_size
        body = self._file.size - len(raw)
        if body < _TAG:
            raise EvidenceCorrupted(f"evidence {self.label} is truncated: it has no final chunk")
        sealed = self._chunk_size + _TAG
        self._chunks = -(-body // sealed)
        if body - (self._chunks - 1) * sealed < _TAG:
            raise EvidenceCorrupted(f"evidence {self.label} is truncated inside a chunk")
        self.size: int = body - _TAG * self._chunks
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        # Authenticate the final chunk now: truncation fails here, before the caller sends a byte anywhere,
        # and ``size`` is then known to be the size that was sealed.
        self._chunk(self._chunks - 1)

    def _chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        final = index == self._chunks - 1
        sealed = self._chunk_size + _TAG
        want = sealed if not final else self.size - index * self._chunk_size + _TAG
        data = self._file.read_at(len(self._header) + index * sealed, want)
        if len(data) != want:
            raise EvidenceCorrupted(f"evidence {self.label} changed size while being read")
        try:
            plaintext = self._aead.decrypt(_nonce(self._prefix, index, final), data,
                                           _aad(self._header, self.version, self._object_id, index, final))
        except InvalidTag:
            raise EvidenceCorrupted(
                f"evidence {self.label} failed authentication at chunk {index} of {self._chunks}: it was altered, "
                f"truncated, or holds data from another object"
            ) from None
        self._cached = (index, plaintext)
        return plaintext

    # --- io.RawIOBase ----------------------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("evidence is encrypted at rest; there is no plaintext file descriptor "
                                      "(use .size for the length)")

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
        self._pos = target
        return target

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self._checkClosed()
        with memoryview(buffer) as outer, outer.cast("B") as view:
            written = 0
            while written < len(view) and self._pos < self.size:
                index, start = divmod(self._pos, self._chunk_size)
                piece = self._chunk(index)[start:start + len(view) - written]
                view[written:written + len(piece)] = piece
                written += len(piece)
                self._pos += len(piece)
            return written

    def read(self, size: int | None = -1) -> bytes:
        self._checkClosed()
        remaining = max(self.size - self._pos, 0)
        # Never allocate more than is left: callers pass generous sizes.
        wanted = remaining if size is None or size < 0 else min(size, remaining)
        buffer = bytearray(wanted)
        del buffer[self.readinto(buffer):]
        return bytes(buffer)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        # getattr: io calls close() again on garbage collection, even when __init__ failed before the open.
        handle = getattr(self, "_file", None)
        if handle is not None and not self.closed:
            handle.close()
            self._cached = None
        super().close()

    def __repr__(self) -> str:
        return f"<EvidenceReader {self.label} size={getattr(self, 'size', '?')} key_id={getattr(self, 'key_id', '?')}>"

    # --- streaming -------------------------------------------------------------------------------------------

    def iter_chunks(self) -> Iterator[bytes]:
        """Plaintext from the current position to the end, one decrypted chunk at a time; closes the reader.

        For HTTP responses (Starlette runs a sync iterator in a thread pool), and anywhere else that wants the
        whole object without holding it in memory.
        """
        try:
            while self._pos < self.size:
                index, start = divmod(self._pos, self._chunk_size)
                piece = self._chunk(index)[start:]
                self._pos += len(piece)
                yield piece
        finally:
            self.close()


class _IncomingWriter(io.RawIOBase):
    """The sink ``incoming_file`` hands out: digests and seals as it goes, under the store's current key.

    A download's address is unknown until its last byte, and only the final chunk names it (format version 2), so
    the file is sealed once, as the bytes arrive, and at ``close`` (when the address is known) its final chunk is
    sealed for that address: the finished file is the stored object, ready to be moved into place. Media never
    reach the disk in the clear. A file a killed process leaves behind has no final chunk, so no reader opens it,
    and ``sweep_incoming`` removes it.
    """

    def __init__(self, path: Path, handle: BinaryIO, keyring: KeyRing, chunk_size: int) -> None:
        super().__init__()
        self.path = path
        self._file = handle
        key_id, key = keyring.current()
        self.key_id = key_id
        self._sealer = _Sealer(handle, key_id, key, chunk_size)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self._size = 0
        self.digests: Digests | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._checkClosed()
        self._md5.update(data)
        self._sha1.update(data)
        self._sha256.update(data)
        self._sealer.write(data)
        written = memoryview(data).nbytes
        self._size += written
        return written

    def close(self) -> None:
        """Seal the last chunk for the address the bytes hash to: the file is then the stored object."""
        if not self.closed:
            self.digests = Digests(md5=self._md5.hexdigest(), sha1=self._sha1.hexdigest(),
                                   sha256=self._sha256.hexdigest(), size=self._size)
            self._sealer.finish(bytes.fromhex(self.digests.sha256))
            self._file.flush()
            self._file.close()
        super().close()

    def abandon(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def _ref(digests: Digests) -> EvidenceRef:
    return EvidenceRef(sha256=digests.sha256, md5=digests.md5, sha1=digests.sha1, size=digests.size)


class EvidenceStore:
    def __init__(self, root: Path, keyring: KeyRing | None = None, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 backend: StorageBackend | None = None) -> None:
        """``keyring`` defaults to ``TIPLINE_EVIDENCE_KEYS``, else a generated local key file beside ``root``.

        ``root`` always holds this process's scratch files (``root/incoming``); sealed objects go to ``backend``,
        by default the directory ``root`` itself (the layout of every store written before backends existed).
        The default keeps the one-argument form working for the local stack; deployments should build stores
        with ``from_settings``, which refuses to invent a key where production filing is allowed.
        """
        if not _MIN_CHUNK_SIZE <= chunk_size <= _MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between {_MIN_CHUNK_SIZE} and {_MAX_CHUNK_SIZE}")
        self.root = root
        self.keyring = keyring if keyring is not None else _default_keyring(root.parent)
        self.chunk_size = chunk_size
        self._incoming = root / "incoming"
        self._incoming.mkdir(parents=True, exist_ok=True)
        self.backend: StorageBackend = backend if backend is not None else LocalBackend(root, self._incoming)
        self._scratch: dict[Path, _IncomingWriter] = {}
        self._scratch_lock = threading.Lock()
        self.sweep_incoming()

    @classmethod
    def for_local_stack(cls, data_dir: Path, evidence_dir: Path | None = None) -> EvidenceStore:
        """The configured key ring if any, else ``data_dir/evidence-keys.json``, generated once (mode 0600)."""
        return cls(evidence_dir or data_dir / "evidence", _default_keyring(data_dir))

    @classmethod
    def from_settings(cls, settings: Settings) -> EvidenceStore:
        """The store a process should use: ``EvidenceStore.from_settings(settings)``.

        A generated key file sits on the same disk as the evidence, which is fine for a laptop and wrong for a
        deployment; with ``allow_production`` set, ``TIPLINE_EVIDENCE_KEYS`` is therefore required. So it is
        with object storage: a key file on one host would leave every other host unable to read the bucket.
        """
        keyring = KeyRing.from_environment()
        s3 = settings.evidence_backend == "s3"
        if keyring is None:
            if settings.allow_production:
                raise EvidenceKeyError("TIPLINE_EVIDENCE_KEYS must be set where production filing is allowed; "
                                       "a generated key file would sit beside the evidence it protects")
            if s3:
                raise EvidenceKeyError("TIPLINE_EVIDENCE_KEYS must be set when TIPLINE_EVIDENCE_BACKEND is s3: "
                                       "every host reading the bucket needs the same keys")
            keyring = KeyRing.load_or_create(settings.data_dir / LOCAL_KEY_FILE_NAME)
        backend: StorageBackend | None = None
        if s3:
            # Imported here: boto3 takes a noticeable time to import, and the local stack never needs it.
            from tipline.evidence_s3 import S3Backend

            backend = S3Backend.from_settings(settings)
        return cls(settings.resolved_evidence_dir, keyring, backend=backend)

    def __repr__(self) -> str:
        return f"EvidenceStore(root={str(self.root)!r}, backend={self.backend!r}, keyring={self.keyring!r})"

    def path_for(self, sha256: str) -> Path:
        """Where the *ciphertext* of an object lives, for the local backend only (tests and operators inspect
        it). Not servable as is: use ``open`` or ``iter_plaintext``."""
        if not isinstance(self.backend, LocalBackend):
            raise TypeError(f"evidence is kept in {self.backend!r}, not in local files")
        return self.backend.path(sha256)

    def exists(self, sha256: str) -> bool:
        return self.backend.exists(check_name(sha256))

    def delete(self, sha256: str) -> None:
        """Remove an object (retention, or a case's media dropped by a court order); missing is not an error."""
        self.backend.delete(check_name(sha256))

    # --- writing ---------------------------------------------------------------------------------------------

    @contextmanager
    def incoming_file(self) -> Iterator[tuple[Path, BinaryIO]]:
        """A scratch file to write plaintext into, then hand to ``put_path``.

        The sink seals as it goes, under the current key (format version 2: only the final chunk, sealed when the
        sink closes, names the address), so no media reaches the disk in the clear and ``put_path`` moves the
        finished file into the store without decrypting or sealing it again. Scratch files are always local,
        whatever the backend: a download's address is only known at its last byte.
        """
        handle, name = tempfile.mkstemp(dir=self._incoming)
        path = Path(name)
        sink = _IncomingWriter(path, os.fdopen(handle, "wb"), self.keyring, self.chunk_size)
        with self._scratch_lock:
            self._scratch[path] = sink
        try:
            # A RawIOBase, not a real file; callers only write() and close() it.
            yield path, cast(BinaryIO, sink)
        finally:
            sink.abandon()
            with self._scratch_lock:
                self._scratch.pop(path, None)
            path.unlink(missing_ok=True)

    def put_path(self, path: Path) -> EvidenceRef:
        """Take ``path`` into the store (or drop it if those bytes are already kept); ``path`` is removed.

        ``path`` is either a scratch file from ``incoming_file`` or a plaintext file anywhere on this machine.
        """
        with self._scratch_lock:
            scratch = self._scratch.get(path)
        if scratch is None:
            with path.open("rb") as source:
                ref = self.put_stream(source)
            path.unlink(missing_ok=True)
            return ref
        scratch.close()  # seals the final chunk if the caller did not close the sink
        assert scratch.digests is not None
        digests = scratch.digests
        if not self._intact(digests.sha256):
            sealed = path.stat().st_size
            self.backend.put_file(digests.sha256, path)
            count_evidence_stored(sealed)
            log.info("evidence stored", sha256=digests.sha256, key_id=scratch.key_id, backend=repr(self.backend))
        path.unlink(missing_ok=True)
        return _ref(digests)

    def put_stream(self, source: BinaryIO, *, max_bytes: int | None = None) -> EvidenceRef:
        """Store everything ``source`` yields; over ``max_bytes`` raises ``EvidenceTooLarge`` and stores nothing.

        At most one read past the limit is taken from ``source``: a huge stream is refused, not drained.
        """
        with self.incoming_file() as (path, sink):
            copied = 0
            while chunk := source.read(1 << 20 if max_bytes is None else min(1 << 20, max_bytes - copied + 1)):
                copied += len(chunk)
                if max_bytes is not None and copied > max_bytes:
                    raise EvidenceTooLarge(max_bytes)
                sink.write(chunk)
            sink.close()
            return self.put_path(path)

    def put_bytes(self, data: bytes) -> EvidenceRef:
        digests = digest_bytes(data)
        if not self._intact(digests.sha256):
            view = memoryview(data)
            count_evidence_stored(self._seal(
                digests.sha256, (view[i:i + self.chunk_size] for i in range(0, len(data), self.chunk_size))))
        return _ref(digests)

    def _intact(self, sha256: str) -> bool:
        """Whether an object is already stored and readable: storing the same bytes again repairs it if not."""
        try:
            self.open(sha256).close()
        except EvidenceMissing:
            return False
        except (EvidenceCorrupted, EvidenceKeyMissing):
            # The new copy is the same plaintext (same address), so replacing a damaged one loses nothing.
            return False
        return True

    def _seal(self, sha256: str, plaintext: Iterable[bytes | memoryview]) -> int:
        """Encrypt ``plaintext`` for ``sha256`` under the current key and hand it to the backend as a stream;
        returns the size of the ciphertext written."""
        written = 0

        def counted() -> Iterator[bytes]:
            nonlocal written
            for chunk in _sealed(self.keyring, sha256, plaintext, self.chunk_size):
                written += len(chunk)
                yield chunk

        self.backend.put_stream(sha256, counted())
        log.info("evidence stored", sha256=sha256, key_id=self.keyring.current_id, backend=repr(self.backend))
        return written

    # --- reading ---------------------------------------------------------------------------------------------

    def open(self, sha256: str) -> EvidenceReader:
        """A seekable plaintext stream (see ``EvidenceReader``): ``EvidenceMissing``, ``EvidenceCorrupted`` or
        ``EvidenceKeyMissing`` are raised here, before any byte is read, for absent, truncated or unreadable
        objects; a byte altered mid-file raises ``EvidenceCorrupted`` when its chunk is read."""
        object_id = _sha256_bytes(sha256)
        return EvidenceReader(self.backend.open(sha256), object_id, self.keyring, sha256)

    def iter_plaintext(self, sha256: str) -> Iterator[bytes]:
        """The object's plaintext in decrypted chunks; opening errors raise here, not at the first ``next``."""
        return self.open(sha256).iter_chunks()

    def size(self, sha256: str) -> int:
        with self.open(sha256) as reader:
            return reader.size

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as handle:
            return handle.read()

    def verify(self, sha256: str) -> EvidenceRef:
        """Decrypt the whole object and recompute its digests (an audit check); raises if anything is off."""
        md5, sha1, sha = hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False), hashlib.sha256()
        size = 0
        for piece in self.iter_plaintext(sha256):
            md5.update(piece)
            sha1.update(piece)
            sha.update(piece)
            size += len(piece)
        if sha.hexdigest() != sha256:
            raise EvidenceCorrupted(f"evidence {sha256} decrypts to bytes with a different sha256")
        return EvidenceRef(sha256=sha256, md5=md5.hexdigest(), sha1=sha1.hexdigest(), size=size)

    def probe(self) -> None:
        """Write, read back and delete a few random bytes where objects are written (a readiness check), then
        ask the backend whether its folder or bucket is there: raises ``OSError`` (``EvidenceStoreUnavailable``
        for the backend, naming the bucket) if the store cannot take evidence now. The probe is not evidence
        and is never sealed."""
        marker = os.urandom(16)
        handle, name = tempfile.mkstemp(dir=self._incoming, prefix="probe-")
        try:
            with os.fdopen(handle, "wb") as sink:
                sink.write(marker)
            if Path(name).read_bytes() != marker:
                raise OSError("the evidence store read back different bytes than it wrote")
        finally:
            Path(name).unlink(missing_ok=True)
        # Where objects live (a bucket, for S3): a missing bucket must fail here, not only on the first upload.
        self.backend.probe()

    # --- maintenance -----------------------------------------------------------------------------------------

    def sweep_incoming(self, older_than: float = STALE_SCRATCH_SECONDS) -> int:
        """Delete scratch files left by killed processes: ciphertext with no final chunk, which no reader opens.
        The age limit spares live downloads in other processes."""
        cutoff = time.time() - older_than
        removed = 0
        for path in self._incoming.iterdir():
            with suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def reencrypt(self, sha256: str) -> bool:
        """Re-seal one object under the current key if it uses another; True if it was rewritten."""
        with self.open(sha256) as reader:
            if reader.key_id == self.keyring.current_id:
                return False
        self._seal(sha256, self.iter_plaintext(sha256))
        return True

    def reencrypt_all(self) -> int:
        """After a rotation: move every object to the current key, so old keys can then be retired."""
        return sum(self.reencrypt(sha256) for sha256 in self.backend.names())

    def encrypt_plaintext_objects(self) -> int:
        """One-off migration for stores written before encryption at rest: encrypt each plaintext object in place.

        A file counts as plaintext only if it lacks the format's magic and its bytes hash to its own name, so
        nothing else is touched. Returns how many objects were encrypted.
        """
        count = 0
        for sha256 in list(self.backend.names()):
            source = self.backend.open(sha256)
            try:
                if source.read_at(0, len(MAGIC)) == MAGIC:
                    continue
                digest = hashlib.sha256()
                for piece in _read_source(source, self.chunk_size):
                    digest.update(piece)
                if digest.hexdigest() != sha256:
                    continue
                # The backend publishes the sealed copy only after the last plaintext byte was read from here.
                self._seal(sha256, _read_source(source, self.chunk_size))
            finally:
                source.close()
            count += 1
        return count


def _read_source(source: RangedSource, chunk_size: int) -> Iterator[bytes]:
    for offset in range(0, source.size, chunk_size):
        yield source.read_at(offset, chunk_size)


def _sealed(keyring: KeyRing, sha256: str, plaintext: Iterable[bytes | memoryview], chunk_size: int
            ) -> Iterator[bytes]:
    """The sealed object for ``plaintext`` as a stream of ciphertext pieces, about one chunk at a time."""
    key_id, key = keyring.current()
    out = io.BytesIO()
    sealer = _Sealer(cast(BinaryIO, out), key_id, key, chunk_size)

    def drain() -> bytes:
        piece = out.getvalue()
        out.seek(0)
        out.truncate()
        return piece

    for piece in plaintext:
        sealer.write(piece)
        if out.tell():
            yield drain()
    sealer.finish(_sha256_bytes(sha256))
    yield drain()


def _default_keyring(data_dir: Path) -> KeyRing:
    return KeyRing.from_environment() or KeyRing.load_or_create(data_dir / LOCAL_KEY_FILE_NAME)
