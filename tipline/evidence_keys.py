"""The evidence key ring: which AES-256 keys encrypt and decrypt the evidence store.

One key is *current* and encrypts every new object; older keys stay in the ring so objects written before a
rotation can still be read. Each object's header names the key id it was written with.

Configuration, in order of precedence:
- ``TIPLINE_EVIDENCE_KEYS``: ``id:base64key`` entries separated by commas (32-byte keys, standard base64),
  with ``TIPLINE_EVIDENCE_CURRENT_KEY`` naming the current one (default: the first entry). Rotate by putting
  a new entry first and keeping the old ones until ``EvidenceStore.reencrypt_all()`` has run.
- For the local stack only: a key file in the data folder, generated on first use with mode 0600.

Key bytes never appear in reprs, logs or exception messages: they are kept in ``_Key`` wrappers whose repr is
redacted, and parsing errors name the entry by position and id, never by its text.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from tipline.private_files import create_once

KEY_BYTES = 32
KEYS_ENV = "TIPLINE_EVIDENCE_KEYS"
CURRENT_KEY_ENV = "TIPLINE_EVIDENCE_CURRENT_KEY"
LOCAL_KEY_FILE_NAME = "evidence-keys.json"
# Ids go into every object header (length-prefixed, one byte), so they are short and plain.
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class EvidenceKeyError(Exception):
    """The key ring is misconfigured, or lacks a key an object needs. Messages name key ids, never keys."""


class EvidenceKeyMissing(EvidenceKeyError):
    """An object was written with a key id the ring does not hold (a retired key, or the wrong ring)."""


class _Key:
    """Raw key bytes behind a redacted repr, so tracebacks, debuggers and ``repr(ring)`` cannot leak them."""

    __slots__ = ("_material",)

    def __init__(self, material: bytes) -> None:
        self._material = material

    def reveal(self) -> bytes:
        return self._material

    def __repr__(self) -> str:
        return "<evidence key redacted>"

    __str__ = __repr__

    def __reduce__(self) -> object:
        # Pickling would copy key bytes into task queues or caches; nothing needs that.
        raise TypeError("evidence keys cannot be pickled")


def _check_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise EvidenceKeyError("evidence key ids are 1-64 characters from A-Z a-z 0-9 . _ -")
    return key_id


def _decode_key(encoded: str, where: str) -> _Key:
    try:
        material = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        # ``from None``: the decoder's own message could quote part of the key text.
        raise EvidenceKeyError(f"{where} is not valid base64") from None
    if len(material) != KEY_BYTES:
        raise EvidenceKeyError(f"{where} must decode to {KEY_BYTES} bytes (AES-256), not {len(material)}")
    return _Key(material)


def new_key_id(prefix: str = "key") -> str:
    """A fresh, unique-enough key id, e.g. ``key-1f3a9c0d``."""
    return _check_id(f"{prefix}-{secrets.token_hex(4)}")


class KeyRing:
    """Key id → 32-byte key, plus which id encrypts new objects. Immutable; rotation returns a new ring."""

    __slots__ = ("_current", "_keys")

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if not keys:
            raise EvidenceKeyError("the evidence key ring is empty")
        ring: dict[str, _Key] = {}
        for key_id, material in keys.items():
            _check_id(key_id)
            if not isinstance(material, bytes | bytearray) or len(material) != KEY_BYTES:
                raise EvidenceKeyError(f"evidence key {key_id!r} must be {KEY_BYTES} bytes (AES-256)")
            ring[key_id] = _Key(bytes(material))
        if current not in ring:
            raise EvidenceKeyError(f"the current evidence key {current!r} is not in the key ring")
        self._keys = ring
        self._current = current

    @classmethod
    def _of(cls, keys: Mapping[str, _Key], current: str) -> KeyRing:
        return cls({key_id: key.reveal() for key_id, key in keys.items()}, current)

    @classmethod
    def generate(cls, key_id: str | None = None) -> KeyRing:
        """A ring with one fresh random key: for the local stack, tests, and scratch files."""
        key_id = key_id or new_key_id()
        return cls({key_id: secrets.token_bytes(KEY_BYTES)}, key_id)

    @property
    def current_id(self) -> str:
        return self._current

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __repr__(self) -> str:
        return f"KeyRing(current={self._current!r}, ids={sorted(self._keys)!r})"

    def __reduce__(self) -> object:
        raise TypeError("evidence key rings cannot be pickled")

    def key(self, key_id: str) -> _Key:
        try:
            return self._keys[key_id]
        except KeyError:
            known = ", ".join(sorted(self._keys))
            raise EvidenceKeyMissing(
                f"evidence key {key_id!r} is not in the key ring (it holds: {known}); an object written with a "
                f"rotated-out key needs that key back in {KEYS_ENV}"
            ) from None

    def current(self) -> tuple[str, _Key]:
        return self._current, self._keys[self._current]

    def rotated(self, key_id: str | None = None, material: bytes | None = None) -> KeyRing:
        """A ring whose current key is new (given, or random); every old key stays for reading."""
        key_id = _check_id(key_id or new_key_id())
        if key_id in self._keys:
            raise EvidenceKeyError(f"evidence key id {key_id!r} is already in the key ring")
        keys = {key_id: _Key(material if material is not None else secrets.token_bytes(KEY_BYTES))}
        keys.update(self._keys)
        return KeyRing._of(keys, key_id)

    def without(self, key_ids: Iterable[str]) -> KeyRing:
        """Retire keys (after ``EvidenceStore.reencrypt_all``); the current key cannot be retired."""
        retired = set(key_ids)
        if self._current in retired:
            raise EvidenceKeyError("the current evidence key cannot be retired; rotate first")
        return KeyRing._of({k: v for k, v in self._keys.items() if k not in retired}, self._current)

    def to_spec(self) -> str:
        """The ``TIPLINE_EVIDENCE_KEYS`` text for this ring, current key first. It *is* the secret."""
        ordered = [self._current, *(k for k in self._keys if k != self._current)]
        return ",".join(f"{k}:{base64.b64encode(self._keys[k].reveal()).decode()}" for k in ordered)

    # --- configuration -------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, spec: str, current: str | None = None) -> KeyRing:
        """Parse ``id:base64,id:base64``; the current key is ``current`` or else the first entry."""
        keys: dict[str, _Key] = {}
        for position, entry in enumerate((e for e in re.split(r"[,\s]+", spec) if e), start=1):
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise EvidenceKeyError(f"{KEYS_ENV} entry {position} is not 'id:base64key'")
            _check_id(key_id)
            if key_id in keys:
                raise EvidenceKeyError(f"{KEYS_ENV} names key {key_id!r} twice")
            keys[key_id] = _decode_key(encoded, f"{KEYS_ENV} key {key_id!r}")
        if not keys:
            raise EvidenceKeyError(f"{KEYS_ENV} holds no keys")
        return cls._of(keys, current or next(iter(keys)))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> KeyRing | None:
        """The configured ring, or None when ``TIPLINE_EVIDENCE_KEYS`` is unset."""
        environ = os.environ if environ is None else environ
        spec = environ.get(KEYS_ENV, "").strip()
        if not spec:
            return None
        return cls.parse(spec, environ.get(CURRENT_KEY_ENV) or None)

    @classmethod
    def load_or_create(cls, path: Path) -> KeyRing:
        """The local stack's key file: created once (mode 0600), then reused by every process."""
        if not path.exists():
            _create_key_file(path, cls.generate(new_key_id("local")))
        return cls._load_key_file(path)

    @classmethod
    def _load_key_file(cls, path: Path) -> KeyRing:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise EvidenceKeyError(f"the evidence key file {path} is readable by others; chmod 600 it")
        try:
            document = json.loads(path.read_text())
            keys = {_check_id(k): _decode_key(v, f"key {k!r} in {path}") for k, v in document["keys"].items()}
            current = document["current"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EvidenceKeyError(f"the evidence key file {path} is not a valid key file") from None
        return cls._of(keys, current)

    def save(self, path: Path) -> None:
        """Write this ring as a key file (mode 0600), replacing any previous one atomically."""
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=".evidence-keys-")
        try:
            with os.fdopen(handle, "w") as sink:
                sink.write(self._key_file_text())
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def _key_file_text(self) -> str:
        keys = {k: base64.b64encode(v.reveal()).decode() for k, v in self._keys.items()}
        return json.dumps({"format": 1, "current": self._current, "keys": keys}, indent=2) + "\n"


def _create_key_file(path: Path, ring: KeyRing) -> None:
    create_once(path, ring._key_file_text())


def main(argv: list[str] | None = None) -> int:
    """``python -m tipline.evidence_keys new [id]``: print a fresh ``id:base64`` entry for the key ring."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "new" or len(args) > 2:
        print("usage: python -m tipline.evidence_keys new [key-id]", file=sys.stderr)
        return 2
    print(KeyRing.generate(args[1] if len(args) == 2 else None).to_spec())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
