"""Reviewer accounts and their sessions: argon2 passwords, server-side sessions with idle and absolute expiry,
revocation, and login throttling per account and per client address.

Every function takes ``now`` so that expiry and throttling are decided by one clock the caller controls.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, func, update
from sqlmodel import Session, col, select

from models.accounts import LoginFailure, LoginSession, ReviewerAccount
from models.records import Role
from tipline.settings import Settings

# argon2id with the library's defaults (RFC 9106's second recommended profile); check_needs_rehash follows them.
HASHER = PasswordHasher()
# Verified against when the account does not exist, so a refusal takes as long whether or not it does.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
PEOPLE_ROLES = frozenset(Role) - {Role.PLATFORM}
MIN_PASSWORD_LENGTH = 12


class AccountError(ValueError):
    """A request about an account that cannot be done; the message says why."""


class LoginRefused(Exception):
    """Wrong name or password, or a disabled account: the caller learns no more than that."""


class LoginThrottled(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class SignedIn:
    account: ReviewerAccount
    session: LoginSession


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password: at least {MIN_PASSWORD_LENGTH} characters")


def _people_role(role: Role | str) -> Role:
    role = Role(role)
    if role not in PEOPLE_ROLES:
        raise AccountError(f"role: {role.value} is for platforms' API keys, not for people")
    return role


def create_account(engine: Engine, org_id: str, username: str, role: Role | str, password: str) -> ReviewerAccount:
    _check_password_rules(password)
    role = _people_role(role)
    with Session(engine) as session:
        if session.exec(select(ReviewerAccount).where(ReviewerAccount.username == username)).first():
            raise AccountError(f"username: {username!r} is taken")
        account = ReviewerAccount(org_id=org_id, username=username, role=role.value,
                                  password_hash=HASHER.hash(password))
        session.add(account)
        session.commit()
        session.refresh(account)
        return account


def _account_named(session: Session, username: str) -> ReviewerAccount:
    account = session.exec(select(ReviewerAccount).where(ReviewerAccount.username == username)).first()
    if account is None:
        raise AccountError(f"username: no account {username!r}")
    return account


def _revoke_all(session: Session, account_id: int, now: datetime) -> int:
    result = session.execute(update(LoginSession)
                             .where(col(LoginSession.account_id) == account_id, col(LoginSession.revoked_at).is_(None))
                             .values(revoked_at=now))
    return int(result.rowcount)  # type: ignore[attr-defined]


def disable_account(engine: Engine, username: str, now: datetime) -> int:
    """Refuse the account from now on and end its sessions; returns how many sessions were ended."""
    with Session(engine) as session:
        account = _account_named(session, username)
        assert account.id is not None
        account.disabled_at = account.disabled_at or now
        session.add(account)
        ended = _revoke_all(session, account.id, now)
        session.commit()
        return ended


def reset_password(engine: Engine, username: str, password: str, now: datetime) -> int:
    """Set a new password and end every session of the account (one may be an intruder's)."""
    _check_password_rules(password)
    with Session(engine) as session:
        account = _account_named(session, username)
        assert account.id is not None
        if account.oidc_subject is not None:
            raise AccountError(f"username: {username!r} signs in through single sign-on and has no password")
        account.password_hash = HASHER.hash(password)
        session.add(account)
        ended = _revoke_all(session, account.id, now)
        session.execute(delete(LoginFailure).where(col(LoginFailure.username) == username))
        session.commit()
        return ended


def _throttle(session: Session, settings: Settings, username: str, address: str, now: datetime) -> None:
    since = now - timedelta(seconds=settings.login_failure_window_seconds)
    for column, value, limit in ((LoginFailure.username, username, settings.login_max_failures_per_account),
                                 (LoginFailure.client_address, address, settings.login_max_failures_per_address)):
        count, oldest = session.execute(
            select(func.count(), func.min(LoginFailure.failed_at))
            .where(col(column) == value, col(LoginFailure.failed_at) > since)).one()
        if count >= limit:
            # Failures leave the window one by one; the oldest leaving brings the count under the limit.
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
            wait = (oldest + timedelta(seconds=settings.login_failure_window_seconds) - now).total_seconds()
            raise LoginThrottled(max(1, int(wait) + 1))


def check_login(engine: Engine, settings: Settings, username: str, password: str, address: str,
                now: datetime) -> ReviewerAccount:
    """The account if the password is right; throttled before the password is even checked."""
    with Session(engine) as session:
        _throttle(session, settings, username, address, now)
        account = session.exec(select(ReviewerAccount).where(ReviewerAccount.username == username)).first()
        stored = account.password_hash if account is not None else None
        try:
            HASHER.verify(stored or _DUMMY_HASH, password)
            good = stored is not None and account is not None and account.disabled_at is None
        except (VerificationError, InvalidHashError):
            good = False
        if not good or account is None:
            session.add(LoginFailure(username=username[:200], client_address=address[:64], failed_at=now))
            session.commit()
            raise LoginRefused
        if HASHER.check_needs_rehash(stored or ""):
            account.password_hash = HASHER.hash(password)
            session.add(account)
        session.execute(delete(LoginFailure).where(col(LoginFailure.username) == username))
        session.commit()
        session.refresh(account)
        return account


def open_session(engine: Engine, account: ReviewerAccount, now: datetime) -> tuple[str, LoginSession]:
    """A new session for ``account``: the token for the cookie (shown once, stored as a hash) and its row."""
    assert account.id is not None
    token = secrets.token_urlsafe(32)
    row = LoginSession(token_hash=hash_token(token), account_id=account.id, csrf_token=secrets.token_urlsafe(32),
                       created_at=now, last_seen_at=now)
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    return token, row


def signed_in(engine: Engine, settings: Settings, token: str, now: datetime) -> SignedIn | None:
    """The live session of ``token`` and its account, its idle clock restarted; None if it has ended."""
    with Session(engine) as session:
        row = session.get(LoginSession, hash_token(token))
        if row is None or row.revoked_at is not None:
            return None
        account = session.get(ReviewerAccount, row.account_id)
        idle = now - row.last_seen_at > timedelta(minutes=settings.session_idle_minutes)
        too_old = now - row.created_at > timedelta(hours=settings.session_absolute_hours)
        if account is None or account.disabled_at is not None or idle or too_old:
            row.revoked_at = now
            session.add(row)
            session.commit()
            return None
        row.last_seen_at = now
        session.add(row)
        session.commit()
        session.refresh(row)
        session.refresh(account)
        return SignedIn(account=account, session=row)


def end_session(engine: Engine, token: str, now: datetime) -> None:
    with Session(engine) as session:
        row = session.get(LoginSession, hash_token(token))
        if row is not None and row.revoked_at is None:
            row.revoked_at = now
            session.add(row)
            session.commit()


def single_sign_on_account(engine: Engine, subject: str, username: str, org_id: str, role: Role,
                           now: datetime) -> ReviewerAccount:
    """The account of a provider's subject, made on its first login; org and role follow the groups each time.

    A change of org ends the account's other sessions: they were opened with the old org's rights.
    """
    role = _people_role(role)
    with Session(engine) as session:
        account = session.exec(select(ReviewerAccount).where(ReviewerAccount.oidc_subject == subject)).first()
        if account is None:
            if session.exec(select(ReviewerAccount.id).where(ReviewerAccount.username == username)).first():
                # The name is taken (a password account, or the same sub at another issuer): the subject's own
                # hash keeps it unique and stable, instead of a failed sign-in.
                username = f"{username[:190]}~{hashlib.sha256(subject.encode()).hexdigest()[:8]}"
            account = ReviewerAccount(org_id=org_id, username=username, role=role.value, oidc_subject=subject,
                                      created_at=now)
        elif account.disabled_at is not None:
            raise LoginRefused
        else:
            if account.org_id != org_id or account.role != role.value:
                assert account.id is not None
                _revoke_all(session, account.id, now)
            account.org_id, account.role = org_id, role.value
        session.add(account)
        session.commit()
        session.refresh(account)
        return account
