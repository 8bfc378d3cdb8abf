"""The key audit bundles are signed with: Ed25519, its private half in a file of the deployment's own (created
once, readable by its owner only), its public half printed by ``tipline audit public-key`` for auditors to keep.

Not the platforms' HMAC keys (tipline.signing): an auditor must be able to check a bundle without being able to
make one, so the signature is public-key."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tipline.private_files import create_once
from tipline.settings import Settings

KEY_FILE_NAME = "audit-signing.key"
PUBLIC_PREFIX = "ed25519:"


def key_path(settings: Settings) -> Path:
    return settings.audit_signing_key_file or settings.data_dir / KEY_FILE_NAME


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    path = key_path(settings)
    if not path.exists():
        create_once(path, base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode() + "\n")
    return _read(path)


def existing_signing_key(settings: Settings) -> Ed25519PrivateKey | None:
    """The deployment's key if its file exists; never creates one (an auditor's machine has none of its own)."""
    path = key_path(settings)
    return _read(path) if path.is_file() else None


def _read(path: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text().strip()))


def public_key_text(key: Ed25519PublicKey) -> str:
    return PUBLIC_PREFIX + base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key as ``tipline audit public-key`` prints it; ValueError saying why if it is not one."""
    text = text.strip()
    if not text.startswith(PUBLIC_PREFIX):
        raise ValueError(f"a public key starts with {PUBLIC_PREFIX!r}, as `tipline audit public-key` prints it")
    try:
        raw = base64.b64decode(text.removeprefix(PUBLIC_PREFIX), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as error:
        raise ValueError(f"not an Ed25519 public key: {error}") from None


def signature_valid(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
