"""Where the keys that encrypt Temporal payloads come from.

One key is *current* and encrypts every new payload; older keys stay readable so histories written before a
rotation still decode. Each payload names its key id in its metadata (``tipline.codec``).

Configuration, first that is set wins:
- ``TIPLINE_PAYLOAD_KEYS``: ``id:base64key`` entries separated by commas (32 random bytes each), current key
  first unless ``TIPLINE_PAYLOAD_CURRENT_KEY`` names another. Rotate by putting a new entry first and keeping
  the old ones as long as any history (running or retained) was written with them.
- ``TIPLINE_PAYLOAD_KEY_FILE``: a key file (JSON ``{"current": id, "keys": {id: base64}}``, mode 0600) holding
  the same, e.g. a mounted secret; ``TIPLINE_PAYLOAD_CURRENT_KEY``, when set, overrides its ``current``.
- The local stack only: ``<data_dir>/payload-keys.json``, generated on first use like the evidence key.

``PayloadKeySource`` is the seam for a cloud KMS: a source may unwrap data keys on demand (envelope
encryption) and cache them, since both methods are awaited by the codec.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tipline.private_files import create_once

if TYPE_CHECKING:
    from tipline.settings import Settings

KEY_BYTES = 32
KEYS_ENV = "TIPLINE_PAYLOAD_KEYS"
CURRENT_ENV = "TIPLINE_PAYLOAD_CURRENT_KEY"
KEY_FILE_ENV = "TIPLINE_PAYLOAD_KEY_FILE"
LOCAL_KEY_FILE_NAME = "payload-keys.json"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class PayloadKeyError(Exception):
    """Payload keys are misconfigured. Messages name key ids and settings, never key material."""


class UnknownPayloadKey(PayloadKeyError):
    """A payload names a key id this process does not hold (a retired key, or another deployment's)."""


class PayloadKeySource(Protocol):
    """Gives the codec its keys. A KMS-backed source would return unwrapped data keys here."""

    async def current(self) -> tuple[str, bytes]:
        """The key id and 32-byte key that encrypt new payloads."""
        ...

    async def key(self, key_id: str) -> bytes:
        """The 32-byte key for ``key_id``; raises ``UnknownPayloadKey`` if there is none."""
        ...


class StaticKeySource:
    """Keys held in memory (from the environment or a key file). Immutable; ``rotated`` returns a new one."""

    __slots__ = ("_current", "_keys")

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if not keys:
            raise PayloadKeyError("no payload keys are configured")
        for key_id, material in keys.items():
            _check_id(key_id)
            if len(material) != KEY_BYTES:
                raise PayloadKeyError(f"payload key {key_id!r} must be {KEY_BYTES} bytes (AES-256)")
        if current not in keys:
            raise PayloadKeyError(f"the current payload key {current!r} is not among the configured keys")
        self._keys = dict(keys)
        self._current = current

    @classmethod
    def generate(cls, key_id: str | None = None) -> StaticKeySource:
        key_id = key_id or new_key_id()
        return cls({key_id: secrets.token_bytes(KEY_BYTES)}, key_id)

    @classmethod
    def parse(cls, spec: str, current: str | None = None, where: str = KEYS_ENV) -> StaticKeySource:
        keys: dict[str, bytes] = {}
        for position, entry in enumerate((e for e in re.split(r"[,\s]+", spec) if e), start=1):
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise PayloadKeyError(f"{where} entry {position} is not 'id:base64key'")
            if _check_id(key_id, where) in keys:
                raise PayloadKeyError(f"{where} names key {key_id!r} twice")
            keys[key_id] = _decode_key(encoded, f"{where} key {key_id!r}")
        if not keys:
            raise PayloadKeyError(f"{where} holds no keys")
        if current is not None and current not in keys:
            raise PayloadKeyError(f"{CURRENT_ENV} names {current!r}, a key {where} does not hold "
                                  f"(it holds: {', '.join(keys)})")
        return cls(keys, current or next(iter(keys)))

    @classmethod
    def load_file(cls, path: Path, current: str | None = None, setting: str | None = None) -> StaticKeySource:
        """A key file: ``{"current": id, "keys": {id: base64}}``, mode 0600. ``current`` (the
        ``TIPLINE_PAYLOAD_CURRENT_KEY`` setting) overrides the file's own. Errors name the file and ``setting``
        (the variable that named it), never key material."""
        where = f"the payload key file {path}" + (f" ({setting})" if setting else "")
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise PayloadKeyError(f"{where} does not exist") from None
        except OSError as error:
            raise PayloadKeyError(f"{where} cannot be read ({error.strerror or type(error).__name__})") from None
        if not stat.S_ISREG(mode):
            raise PayloadKeyError(f"{where} is not a file")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PayloadKeyError(f"{where} is readable by others; chmod 600 it")
        try:
            document = json.loads(path.read_text())
            entries = document["keys"]
            if not isinstance(entries, dict):
                raise TypeError("keys is not an object")
            keys = {_check_id(k, where): _decode_key(v, f"key {k!r} in {where}") for k, v in entries.items()}
            named = document.get("current")
        except OSError as error:
            raise PayloadKeyError(f"{where} cannot be read ({error.strerror or type(error).__name__})") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            # ``from None``: a JSON error message could quote key text.
            raise PayloadKeyError(f'{where} is not a valid key file: expected JSON {{"current": id, "keys": '
                                  f'{{id: base64 of 32 bytes}}}}') from None
        if not keys:
            raise PayloadKeyError(f"{where} holds no keys")
        if current is not None:
            if current not in keys:
                raise PayloadKeyError(f"{CURRENT_ENV} names {current!r}, a key {where} does not hold "
                                      f"(it holds: {', '.join(keys)})")
            return cls(keys, current)
        if named is None:
            raise PayloadKeyError(f'{where} names no current key: add "current" or set {CURRENT_ENV}')
        if not isinstance(named, str) or named not in keys:
            shown = repr(named) if isinstance(named, str) else "a non-string"
            raise PayloadKeyError(f"{where} names current key {shown}, which it does not hold "
                                  f"(it holds: {', '.join(keys)})")
        return cls(keys, named)

    @classmethod
    def load_or_create(cls, path: Path, current: str | None = None) -> StaticKeySource:
        if not path.exists():
            _create_key_file(path, cls.generate(new_key_id("local")))
        return cls.load_file(path, current)

    @property
    def current_id(self) -> str:
        return self._current

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    async def current(self) -> tuple[str, bytes]:
        return self._current, self._keys[self._current]

    async def key(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownPayloadKey(
                f"payload key {key_id!r} is not configured (configured: {', '.join(sorted(self._keys))}); a "
                f"history written before a rotation needs its key kept in {KEYS_ENV}"
            ) from None

    def rotated(self, key_id: str | None = None) -> StaticKeySource:
        """A new current key; every old one stays for reading."""
        key_id = _check_id(key_id or new_key_id())
        if key_id in self._keys:
            raise PayloadKeyError(f"payload key id {key_id!r} is already configured")
        return StaticKeySource({key_id: secrets.token_bytes(KEY_BYTES), **self._keys}, key_id)

    def to_spec(self) -> str:
        """The ``TIPLINE_PAYLOAD_KEYS`` text, current key first. It *is* the secret."""
        ordered = [self._current, *(k for k in self._keys if k != self._current)]
        return ",".join(f"{k}:{base64.b64encode(self._keys[k]).decode()}" for k in ordered)

    def __repr__(self) -> str:
        return f"StaticKeySource(current={self._current!r}, ids={sorted(self._keys)!r})"

    def __reduce__(self) -> object:
        raise TypeError("payload keys cannot be pickled")

    def _file_text(self) -> str:
        keys = {k: base64.b64encode(v).decode() for k, v in self._keys.items()}
        return json.dumps({"format": 1, "current": self._current, "keys": keys}, indent=2) + "\n"


def key_source(settings: Settings) -> PayloadKeySource:
    """The deployment's payload keys (see the module docstring for the order). ``payload_current_key``
    (``TIPLINE_PAYLOAD_CURRENT_KEY``) picks the current key from whichever source is used."""
    current = settings.payload_current_key or None
    if settings.payload_keys is not None:
        return StaticKeySource.parse(settings.payload_keys.get_secret_value(), current)
    if settings.payload_key_file is not None:
        return StaticKeySource.load_file(settings.payload_key_file, current, KEY_FILE_ENV)
    if settings.allow_production:
        raise PayloadKeyError(f"{KEYS_ENV} or {KEY_FILE_ENV} must be set where production "
                              "filing is allowed; a generated key file would sit beside Temporal's data")
    return StaticKeySource.load_or_create(settings.data_dir / LOCAL_KEY_FILE_NAME, current)


def new_key_id(prefix: str = "payload") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _check_id(key_id: object, where: str | None = None) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise PayloadKeyError((f"{where}: " if where else "") + "payload key ids are 1-64 characters from "
                              "A-Z a-z 0-9 . _ -")
    return key_id


def _decode_key(encoded: str, where: str) -> bytes:
    try:
        material = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PayloadKeyError(f"{where} is not valid base64") from None
    if len(material) != KEY_BYTES:
        raise PayloadKeyError(f"{where} must decode to {KEY_BYTES} bytes (AES-256), not {len(material)}")
    return material


def _create_key_file(path: Path, source: StaticKeySource) -> None:
    create_once(path, source._file_text())


def main(argv: list[str] | None = None) -> int:
    """``python -m tipline.payload_keys new [id]``: print a fresh ``id:base64`` entry for TIPLINE_PAYLOAD_KEYS."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "new" or len(args) > 2:
        print("usage: python -m tipline.payload_keys new [key-id]", file=sys.stderr)
        return 2
    print(StaticKeySource.generate(args[1] if len(args) == 2 else None).to_spec())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
