"""People who sign in to review: their accounts, their server-side sessions, and failed logins for throttling."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.records import _timestamp, utcnow


class ReviewerAccount(SQLModel, table=True):
    """A person of one org with one role. Password accounts are made by ``tipline user``; single sign-on ones on
    their first login, with org and role from the identity provider's groups on every login."""

    __tablename__ = "reviewer_account"

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    username: str = Field(unique=True, max_length=200)
    role: str = Field(max_length=40)
    # argon2id, with its parameters and salt in the string; None for single sign-on accounts.
    password_hash: str | None = Field(default=None, max_length=200)
    # "issuer sub" of a single sign-on account: the provider's stable id, never its (changeable) email.
    oidc_subject: str | None = Field(default=None, unique=True, max_length=400)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    disabled_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class LoginSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its hash is stored, so a leaked database
    opens no session."""

    __tablename__ = "login_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    account_id: int = Field(foreign_key="reviewer_account.id", index=True)
    # Bound to this session: a state-changing request by cookie must echo it in X-CSRF-Token.
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_timestamp())
    last_seen_at: datetime = Field(sa_column=_timestamp())
    revoked_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class LoginFailure(SQLModel, table=True):
    """One refused password login, by account name and by client address: both are throttled."""

    __tablename__ = "login_failure"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, max_length=200)
    client_address: str = Field(index=True, max_length=64)
    failed_at: datetime = Field(sa_column=_timestamp(index=True))


class ReviewerWellness(SQLModel, table=True):
    """How one person wants media shown to them. Kept on the server so that it follows them to any browser; the
    defaults (no row) are the safest."""

    __tablename__ = "reviewer_wellness"

    account_id: int = Field(foreign_key="reviewer_account.id", primary_key=True)
    blur_px: int = Field(default=24)
    greyscale: bool = Field(default=True)
    reveal_on_hover: bool = Field(default=False)
    reblur_on_leave: bool = Field(default=True)
    video_muted: bool = Field(default=True)
    video_paused: bool = Field(default=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
