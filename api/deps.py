"""Dependencies: who is calling, and the parts an endpoint talks to."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from api.key_cache import ApiKeyCache
from api.problems import ProblemError
from api.upload_analysis import UploadAnalyzer
from models.records import NCMEC_ROLES, ApiKey, Role, utcnow
from tipline.accounts import signed_in
from tipline.audit_log import AuditLog
from tipline.evidence import EvidenceStore
from tipline.registry import RefRegistry
from tipline.settings import Settings

API_KEY_PREFIX = "tpl_"
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="An org's API key; its role decides what it may do.")
SESSION_COOKIE = "tipline_session"
CSRF_HEADER = "X-CSRF-Token"
session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                              description="A reviewer's session (POST /v1/session); every request that changes "
                                          f"something must also send {CSRF_HEADER} from GET /v1/session.")
# Requests that change nothing: only these may go without the CSRF token when authenticated by cookie.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def create_api_key(engine: Engine, org_id: str, role: Role, label: str = "") -> str:
    """Store a new key for ``org_id`` with ``role`` (as a hash only) and return it: it is shown just once."""
    key = new_api_key()
    with Session(engine) as session:
        session.add(ApiKey(org_id=org_id, role=Role(role).value, key_hash=hash_api_key(key), label=label))
        session.commit()
    return key


def list_api_keys(engine: Engine, org_id: str | None = None) -> list[ApiKey]:
    """Every key (or an org's), oldest first; rows carry hashes, so callers print only their other columns."""
    with Session(engine) as session:
        query = select(ApiKey).order_by(col(ApiKey.id))
        if org_id is not None:
            query = query.where(ApiKey.org_id == org_id)
        return list(session.exec(query).all())


def revoke_api_key(engine: Engine, key_id: int) -> ApiKey | None:
    """Revoke a key from now on; None if there is no such key. API processes remember a valid key for up to
    ``TIPLINE_API_KEY_CACHE_SECONDS`` (api/key_cache.py), so it is refused everywhere within that.

    Revoking a revoked key keeps its first revocation time.
    """
    with Session(engine) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            return None
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
            session.commit()
            session.refresh(row)
        return row


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in person (``user_id``) or a platform's or script's API key (``api_key_id``)."""

    org_id: str
    role: Role
    api_key_id: int | None = None
    user_id: int | None = None
    csrf_token: str | None = field(default=None, repr=False)
    # Shown to the person themself (GET /v1/session); never used for attribution, which is by id.
    username: str | None = field(default=None, repr=False)

    @property
    def actor(self) -> str:
        """How decisions, dismissals, claims and views are attributed: the person's account id, else the key.

        Ids, never names: the attribution travels in workflow histories.
        """
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return f"{self.role.value}:{self.api_key_id}"


# Coroutines, so FastAPI calls them on the event loop: a plain function dependency costs every request a trip
# through the thread pool, for an attribute read.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_temporal(request: Request) -> Client:
    return request.app.state.temporal


async def get_store(request: Request) -> EvidenceStore:
    return request.app.state.evidence_store


async def get_registry(request: Request) -> RefRegistry:
    return request.app.state.registry


async def get_upload_analyzer(request: Request) -> UploadAnalyzer:
    return request.app.state.upload_analyzer


async def get_audit_log(request: Request) -> AuditLog:
    return request.app.state.audit_log


async def get_clock(request: Request) -> Callable[[], datetime]:
    return request.app.state.clock


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


async def get_api_keys(request: Request) -> ApiKeyCache:
    return request.app.state.api_keys


async def authenticate(
    request: Request,
    key: Annotated[str | None, Security(api_key_header)],
    cookie: Annotated[str | None, Security(session_cookie)],
    engine: Annotated[Engine, Depends(get_engine)],
    settings: Annotated[Settings, Depends(get_settings)],
    clock: Annotated[Callable[[], datetime], Depends(get_clock)],
    api_keys: Annotated[ApiKeyCache, Depends(get_api_keys)],
) -> Principal:
    """An API key (platforms, automation) or a session cookie (people); a key, when sent, is what counts.

    A coroutine: the key comes from the process's short-lived cache, and the database reads it or a session
    needs run in a thread, so a request costs no thread-pool trip when its key is cached.
    """
    if key:
        found = await api_keys.lookup(hash_api_key(key))
        if found is None:
            raise ProblemError(401, "The API key is not valid")
        key_id, org_id, role = found
        return Principal(api_key_id=key_id, org_id=org_id, role=role)
    if not cookie:
        raise ProblemError(401, "Sign in or send an API key",
                           "POST /v1/session to sign in, or send an API key in the X-API-Key header")
    signed = await asyncio.to_thread(signed_in, engine, settings, cookie, clock())
    if signed is None:
        raise ProblemError(401, "The session has ended; sign in again")
    if request.method not in SAFE_METHODS:
        # A cookie goes with any request the browser makes, a forged one too; the token only with the page's own.
        sent = request.headers.get(CSRF_HEADER, "")
        if not secrets.compare_digest(sent.encode(), signed.session.csrf_token.encode()):
            raise ProblemError(403, "The CSRF token is missing or wrong",
                               f"send the csrf_token of GET /v1/session in the {CSRF_HEADER} header")
    account = signed.account
    assert account.id is not None
    return Principal(org_id=account.org_id, role=Role(account.role), user_id=account.id,
                     csrf_token=signed.session.csrf_token, username=account.username)


def api_key_principal(engine: Engine, key: str) -> Principal:
    with Session(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key),
                                                ApiKey.revoked_at.is_(None))).first()  # type: ignore[union-attr]
    if row is None or row.id is None:
        raise ProblemError(401, "The API key is not valid")
    return Principal(api_key_id=row.id, org_id=row.org_id, role=Role(row.role))


def require(roles: frozenset[Role]) -> Callable[[Principal], Principal]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in roles:
            raise ProblemError(403, "This role may not do that",
                               f"role {principal.role.value} is not one of "
                               f"{', '.join(sorted(r.value for r in roles))}")
        return principal

    return check


NcmecReviewer = Annotated[Principal, Depends(require(NCMEC_ROLES))]
RecordsReader = Annotated[Principal, Depends(require(NCMEC_ROLES | {Role.AUDITOR}))]
Platform = Annotated[Principal, Depends(require(frozenset({Role.PLATFORM})))]
DbSession = Annotated[Session, Depends(get_session)]
Temporal = Annotated[Client, Depends(get_temporal)]
Store = Annotated[EvidenceStore, Depends(get_store)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Registry = Annotated[RefRegistry, Depends(get_registry)]
Analyzer = Annotated[UploadAnalyzer, Depends(get_upload_analyzer)]
DbEngine = Annotated[Engine, Depends(get_engine)]
AuditTrail = Annotated[AuditLog, Depends(get_audit_log)]
