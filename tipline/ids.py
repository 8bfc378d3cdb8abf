"""Workflow ids that name a case or a screening without revealing whose it is.

Workflow ids are shown unencrypted in the Temporal UI and its API, so they are a keyed MAC (HMAC-SHA256) of the
org and the user (or content item) under a per-deployment secret: without the key, knowing a user id does not
tell which case is theirs, and guessing user ids does not find one. The fixed prefix tells operators the kind.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import stat
from pathlib import Path

from tipline.private_files import create_once
from tipline.settings import Settings

ID_KEY_FILE_NAME = "id-key"
MIN_KEY_LENGTH = 32
CASE_PREFIX = "case-"
SCREENING_PREFIX = "screening-"


class IdKeyError(RuntimeError):
    """The id key is missing, too short, or readable by others."""


class IdMinter:
    """Mints the ids of one deployment. The key never leaves this object, and ``repr`` does not show it."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise IdKeyError(f"the id key must be at least {MIN_KEY_LENGTH} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "IdMinter(<key hidden>)"

    def _mac(self, purpose: str, *parts: str) -> str:
        message = "\x00".join((purpose, *parts)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def user_key(self, org_id: str, user_id: str) -> str:
        """Which user a case belongs to, as the registry stores it: a MAC, never the user id itself."""
        return self._mac("user", org_id, user_id)

    def case_id(self, org_id: str, user_id: str) -> str:
        return CASE_PREFIX + self._mac("case", org_id, user_id)[:32]

    def screening_id(self, org_id: str, content_id: str) -> str:
        """Stable per item, so a platform's retry screens once."""
        return SCREENING_PREFIX + self._mac("screening", org_id, content_id)[:32]


def legacy_case_id(org_id: str, user_id: str) -> str:
    """The unkeyed id cases had before keyed ids; users whose case has one keep it (see ``tipline.registry``)."""
    digest = hashlib.sha256(f"{org_id}\x00{user_id}".encode()).hexdigest()[:32]
    return f"case-{org_id}-{digest}"


def id_minter(settings: Settings) -> IdMinter:
    """The deployment's minter: ``TIPLINE_ID_KEY`` if set, else the local stack's key file, generated once."""
    if settings.id_key is not None:
        return IdMinter(settings.id_key.get_secret_value().encode())
    if settings.allow_production:
        raise IdKeyError("TIPLINE_ID_KEY must be set where production filing is allowed: a lost or changed key "
                         "would give every user a new case")
    return IdMinter(load_or_create_key_file(settings.data_dir / ID_KEY_FILE_NAME))


def load_or_create_key_file(path: Path) -> bytes:
    if not path.exists():
        _create_key_file(path)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IdKeyError(f"the id key file {path} is readable by others; chmod 600 it")
    return path.read_bytes().strip()


def _create_key_file(path: Path) -> None:
    create_once(path, secrets.token_urlsafe(48) + "\n")
