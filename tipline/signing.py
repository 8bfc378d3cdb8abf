"""Signed HTTP calls between Tipline and a platform, in both directions.

Tipline calls the platform (list a user's media, enrich a user) and the platform must know the call is
Tipline's; Tipline must know the answer is the platform's and is fresh. Both sides share the org's
secret and sign ``timestamp + "." + nonce + "." + body`` with HMAC-SHA256:

    X-Tipline-Timestamp: 1767225600            (unix seconds)
    X-Tipline-Nonce:     3f1c…(32 hex digits)   (128 random bits)
    X-Tipline-Signature: v1=<64 hex digits>

The timestamp bounds how long a captured message stays usable, and the nonce, remembered for exactly
that long, makes it usable once. The scheme signs the body only, not method or path: every signed
endpoint must therefore parse bodies that say what they are, and share one replay cache.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import secrets
import threading
import time
from collections.abc import Generator, Mapping
from typing import Protocol

import httpx

__all__ = [
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "InMemoryReplayCache",
    "ReplayCache",
    "SignatureError",
    "SignatureVerifier",
    "SignedRequestAuth",
    "sign",
]

TIMESTAMP_HEADER = "X-Tipline-Timestamp"
NONCE_HEADER = "X-Tipline-Nonce"
SIGNATURE_HEADER = "X-Tipline-Signature"

_VERSION = "v1="
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[0-9a-f]{32}")
_SIGNATURE = re.compile(r"v1=[0-9a-f]{64}")


class SignatureError(Exception):
    """A signed message was refused. ``reason`` is safe to log and to return: it never holds a secret."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def sign(secret: bytes, body: bytes, *, now: float | None = None, nonce: str | None = None) -> dict[str, str]:
    """The three headers that authenticate ``body``, to add to a request or a response."""
    _check_secret(secret)
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16) if nonce is None else nonce
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 32 lowercase hex digits")
    return {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: _VERSION + _mac(secret, timestamp, nonce, body),
    }


# ------------------------------------------------------------------------------------------- replay


class ReplayCache(Protocol):
    """Remembers nonces already accepted. Share one instance between all verifiers of the same secret;
    across processes, back it with a shared store (an ``INSERT … ON CONFLICT DO NOTHING`` does)."""

    def add(self, nonce: str, *, expires_at: float, now: float) -> bool:
        """Record ``nonce`` until ``expires_at``; False if it is already recorded (a replay)."""
        ...


class InMemoryReplayCache:
    """A process-local ReplayCache. Memory stays bounded: a nonce is forgotten once the message carrying
    it would be refused as stale anyway, so at most a window's worth of accepted messages is held."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._by_expiry: list[tuple[float, str]] = []  # a heap, so forgetting costs log n per nonce
        self._lock = threading.Lock()

    def add(self, nonce: str, *, expires_at: float, now: float) -> bool:
        with self._lock:
            self._forget_expired(now)
            if nonce in self._expiry:
                return False
            self._expiry[nonce] = expires_at
            heapq.heappush(self._by_expiry, (expires_at, nonce))
            return True

    def __len__(self) -> int:
        return len(self._expiry)

    def _forget_expired(self, now: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] < now:
            _, nonce = heapq.heappop(self._by_expiry)
            del self._expiry[nonce]


# ----------------------------------------------------------------------------------------- verifier


class SignatureVerifier:
    """Checks the headers ``sign`` produced: signature, freshness (±``max_age_seconds``), single use."""

    def __init__(
        self, secret: bytes, max_age_seconds: int = 300, *, replay_cache: ReplayCache | None = None
    ) -> None:
        _check_secret(secret)
        if max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        self._secret = secret
        self.max_age_seconds = max_age_seconds
        self.replay_cache: ReplayCache = InMemoryReplayCache() if replay_cache is None else replay_cache

    def __repr__(self) -> str:
        return f"SignatureVerifier(max_age_seconds={self.max_age_seconds})"

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
        """Return if the message is authentic, fresh and new; raise ``SignatureError`` otherwise."""
        now = time.time() if now is None else now
        timestamp = _header(headers, TIMESTAMP_HEADER)
        nonce = _header(headers, NONCE_HEADER)
        signature = _header(headers, SIGNATURE_HEADER)
        if not _TIMESTAMP.fullmatch(timestamp):
            raise SignatureError(f"malformed {TIMESTAMP_HEADER}")
        if not _NONCE.fullmatch(nonce):
            raise SignatureError(f"malformed {NONCE_HEADER}")
        if not _SIGNATURE.fullmatch(signature):
            raise SignatureError(f"malformed {SIGNATURE_HEADER}")
        sent_at = int(timestamp)
        if sent_at < now - self.max_age_seconds:
            raise SignatureError("timestamp too old")
        if sent_at > now + self.max_age_seconds:
            raise SignatureError("timestamp in the future")
        expected = _VERSION + _mac(self._secret, timestamp, nonce, body)
        if not hmac.compare_digest(expected, signature):
            raise SignatureError("signature mismatch")
        # Only authentic messages reach the cache, so a flood of forgeries cannot fill it or burn nonces.
        if not self.replay_cache.add(nonce, expires_at=sent_at + self.max_age_seconds, now=now):
            raise SignatureError("nonce already used")


# -------------------------------------------------------------------------------------------- httpx


class SignedRequestAuth(httpx.Auth):
    """Signs every outgoing request body; with ``response_verifier``, also refuses unsigned or stale answers.

    Works with ``httpx.Client`` and ``httpx.AsyncClient`` alike: ``auth=SignedRequestAuth(secret)``.
    """

    requires_request_body = True

    def __init__(self, secret: bytes, *, response_verifier: SignatureVerifier | None = None) -> None:
        _check_secret(secret)
        self._secret = secret
        self.response_verifier = response_verifier
        # httpx reads the class attribute; only buffer responses when they are to be verified.
        self.requires_response_body = response_verifier is not None

    def __repr__(self) -> str:
        return f"SignedRequestAuth(verifies_responses={self.response_verifier is not None})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(sign(self._secret, request.content))
        response = yield request
        if self.response_verifier is not None:
            self.response_verifier.verify(response.headers, response.content)


# -------------------------------------------------------------------------------------------- pieces


def _mac(secret: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode("ascii") + b"." + nonce.encode("ascii") + b"." + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    if value is None:
        raise SignatureError(f"missing {name} header")
    return value.strip()


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes | bytearray) or not secret:
        raise ValueError("secret must be non-empty bytes")
