"""Signed HTTP calls between Tipline and a platform, in both directions.

Tipline's calls (media listing, enrichment, the escalation webhook) are signed with the Standard Webhooks
scheme (https://www.standardwebhooks.com), so a platform verifies them with an off-the-shelf library::

    webhook-id:        msg_3f1c…            (128 random bits, unique per call)
    webhook-timestamp: 1767225600           (unix seconds)
    webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">

The key is the org's ``callback_secret`` (``whsec_`` + base64), decoded as those libraries do.

An answer must be bound to the call it answers, or an answer captured for one user could be replayed into
another user's case. Every call therefore also carries ``Tipline-Answer-Id``: a digest of the call's id,
method, path and body digest. The platform signs its answer with the same library, using that value as the
message id (``wh.sign(answer_id, now, body)``) and returns it in ``webhook-id``. Tipline recomputes the
answer id from the call it made, so an answer for any other call fails, and records every accepted id in
the database (``seen_signed_message``) until it goes stale, so no answer is accepted twice by any process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx
from sqlalchemy import Engine, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session
from standardwebhooks.webhooks import Webhook

from models.records import SeenSignedMessage

__all__ = [
    "ANSWER_ID_HEADER",
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AnswerVerifier",
    "DatabaseReplayCache",
    "ReplayCache",
    "SignatureError",
    "SignedRequest",
    "answer_id_for",
    "sign_answer",
    "sign_request",
]

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
ANSWER_ID_HEADER = "Tipline-Answer-Id"
MAX_AGE_SECONDS = 300

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_ANSWER_ID = re.compile(r"ans_[0-9a-f]{32}")
_SIGNATURE = re.compile(r"v1,[A-Za-z0-9+/]{43}=")


class SignatureError(Exception):
    """A signed message was refused. ``reason`` is safe to log and to return: it never holds a secret."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class SignedRequest:
    """The headers to send with a call, and the id its answer must be signed under."""

    headers: dict[str, str]
    answer_id: str


def sign_request(key: bytes, method: str, url: str, body: bytes, *, now: float | None = None,
                 message_id: str | None = None) -> SignedRequest:
    """Standard Webhooks headers for ``body``, plus the answer id that binds an answer to this exact call."""
    message_id = f"msg_{secrets.token_hex(16)}" if message_id is None else message_id
    timestamp = int(time.time() if now is None else now)
    answer_id = answer_id_for(message_id, method, url, body)
    headers = {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: _signature(key, message_id, timestamp, body),
        ANSWER_ID_HEADER: answer_id,
    }
    return SignedRequest(headers=headers, answer_id=answer_id)


def answer_id_for(message_id: str, method: str, url: str, body: bytes) -> str:
    """``ans_`` + 128 bits of SHA-256 over the call's id, method, path (with query) and body digest."""
    target = httpx.URL(url)
    path = target.raw_path.decode("ascii")
    bound = "\n".join((message_id, method.upper(), path, hashlib.sha256(body).hexdigest()))
    return "ans_" + hashlib.sha256(bound.encode()).hexdigest()[:32]


def sign_answer(key: bytes, answer_id: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The headers a platform returns with its answer (what its Standard Webhooks library produces)."""
    timestamp = int(time.time() if now is None else now)
    return {ID_HEADER: answer_id, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: _signature(key, answer_id, timestamp, body)}


# ------------------------------------------------------------------------------------------- replay


class ReplayCache(Protocol):
    """Remembers message ids already accepted, per org."""

    def add(self, org_id: str, message_id: str, *, expires_at: float, now: float) -> bool:
        """Record ``message_id`` until ``expires_at``; False if it is already recorded (a replay)."""
        ...


class DatabaseReplayCache:
    """A ReplayCache every process shares: one row per accepted id, a unique constraint deciding the race.

    Rows are deleted once the message they record would be refused as stale anyway, so the table holds at
    most a window's worth of answers. Blocking: call it from a thread, not the event loop.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def add(self, org_id: str, message_id: str, *, expires_at: float, now: float) -> bool:
        expiry = datetime.fromtimestamp(expires_at, UTC)
        with Session(self._engine) as session:
            session.execute(delete(SeenSignedMessage).where(
                SeenSignedMessage.expires_at < datetime.fromtimestamp(now, UTC)))  # type: ignore[arg-type]
            inserted = session.execute(
                self._insert(SeenSignedMessage).values(org_id=org_id, message_id=message_id, expires_at=expiry)
                .on_conflict_do_nothing(index_elements=["org_id", "message_id"])
                .returning(SeenSignedMessage.id)  # type: ignore[arg-type]
            ).first()
            session.commit()
            return inserted is not None


# ----------------------------------------------------------------------------------------- verifier


class AnswerVerifier:
    """Accepts an answer only if it is signed with the org's key, for the call it answers, fresh, and new."""

    def __init__(self, org_id: str, key: bytes, replay_cache: ReplayCache,
                 max_age_seconds: int = MAX_AGE_SECONDS) -> None:
        if not key:
            raise ValueError("key must be non-empty bytes")
        self._org_id = org_id
        self._key = key
        self._replay_cache = replay_cache
        self.max_age_seconds = max_age_seconds

    def __repr__(self) -> str:
        return f"AnswerVerifier(org_id={self._org_id!r}, max_age_seconds={self.max_age_seconds})"

    def verify(self, request: SignedRequest, headers: Mapping[str, str], body: bytes, *,
               now: float | None = None) -> None:
        """Return if the answer is authentic, answers ``request``, is fresh and new; raise SignatureError if not."""
        now = time.time() if now is None else now
        answer_id = _header(headers, ID_HEADER)
        timestamp = _header(headers, TIMESTAMP_HEADER)
        signatures = _header(headers, SIGNATURE_HEADER)
        if not _ANSWER_ID.fullmatch(answer_id):
            raise SignatureError(f"malformed {ID_HEADER}")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise SignatureError(f"malformed {TIMESTAMP_HEADER}")
        if not hmac.compare_digest(answer_id, request.answer_id):
            raise SignatureError("the answer is for another request")
        sent_at = int(timestamp)
        if sent_at < now - self.max_age_seconds:
            raise SignatureError("timestamp too old")
        if sent_at > now + self.max_age_seconds:
            raise SignatureError("timestamp in the future")
        expected = _signature(self._key, answer_id, sent_at, body)
        # Standard Webhooks allows several space-separated signatures (during a key rotation); one must match.
        if not any(_SIGNATURE.fullmatch(s) and hmac.compare_digest(s, expected) for s in signatures.split(" ")):
            raise SignatureError("signature mismatch")
        # Only authentic answers reach the cache, so a flood of forgeries cannot fill it.
        if not self._replay_cache.add(self._org_id, answer_id, expires_at=sent_at + self.max_age_seconds, now=now):
            raise SignatureError("answer already used")


# -------------------------------------------------------------------------------------------- pieces


def _signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # Standard Webhooks signs text; a body that is not UTF-8 cannot be signed or verified the same everywhere.
        raise SignatureError("the body is not UTF-8") from None
    return Webhook(key).sign(message_id, datetime.fromtimestamp(timestamp, UTC), text)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    if value is None:
        raise SignatureError(f"missing {name} header")
    return value.strip()
