"""Signing in and out: POST /v1/session with a name and password, GET for who is signed in and the CSRF token,
DELETE to sign out. Single sign-on is in ``api.routers.sso``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import SESSION_COOKIE, AppSettings, AuditTrail, DbEngine, Principal, authenticate, get_clock
from api.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from api.requests import RequestBody
from models.accounts import ReviewerAccount
from tipline.accounts import LoginRefused, LoginThrottled, check_login, end_session, open_session
from tipline.settings import Settings

router = APIRouter(prefix="/v1/session", tags=["session"],
                   responses={**PROBLEM_RESPONSES, 429: PROBLEM_RESPONSES[401]})
Clock = Annotated[Callable[[], datetime], Depends(get_clock)]


class LoginIn(RequestBody):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class SessionOut(BaseModel):
    org_id: str
    role: str
    user_id: int | None = Field(description="The signed-in person's account; None for an API key")
    username: str | None = Field(default=None, description="The signed-in person's account name, to show them "
                                 "who they are signed in as; None for an API key")
    api_key_id: int | None
    csrf_token: str | None = Field(description="Send it as X-CSRF-Token with every request that changes something")


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    # Strict: no other site can make the browser send it, not even by a link; HttpOnly: no script can read it.
    response.set_cookie(SESSION_COOKIE, token, max_age=int(settings.session_absolute_hours * 3600), path="/",
                        secure=settings.session_cookie_secure, httponly=True, samesite="strict")


def session_out(account: ReviewerAccount, csrf_token: str) -> SessionOut:
    return SessionOut(org_id=account.org_id, role=account.role, user_id=account.id, username=account.username,
                      api_key_id=None, csrf_token=csrf_token)


def client_address(request: Request) -> str:
    # The connection's address; behind a reverse proxy, run uvicorn with --proxy-headers from that proxy only.
    return request.client.host if request.client else "unknown"


@router.post("", response_model=SessionOut, summary="Sign in with a name and password; sets the session cookie")
async def sign_in(body: LoginIn, request: Request, response: Response, engine: DbEngine, settings: AppSettings,
                  clock: Clock, audit: AuditTrail) -> SessionOut:
    now = clock()
    try:
        account = await run_in_threadpool(check_login, engine, settings, body.username, body.password,
                                          client_address(request), now)
    except LoginThrottled as throttled:
        raise ProblemError(429, "Too many failed sign-ins", f"try again in {throttled.retry_after_seconds} s",
                           headers={"Retry-After": str(throttled.retry_after_seconds)}) from None
    except LoginRefused:
        # No name in the log: a name typed here may be a person's email, or someone else's password.
        await run_in_threadpool(lambda: audit.append("session.sign_in_refused", actor="anonymous"))
        raise ProblemError(401, "Wrong name or password",
                           errors=[FieldProblem(field="password", message="does not match the name, or the "
                                                "account is disabled")]) from None
    token, row = await run_in_threadpool(open_session, engine, account, now)
    await run_in_threadpool(lambda: audit.append("session.signed_in", actor=f"user:{account.id}",
                                                 org_id=account.org_id, subject=f"user:{account.id}"))
    set_session_cookie(response, settings, token)
    return session_out(account, row.csrf_token)


@router.get("", response_model=SessionOut, summary="Who is signed in, and the session's CSRF token")
def who_am_i(principal: Annotated[Principal, Depends(authenticate)]) -> SessionOut:
    return SessionOut(org_id=principal.org_id, role=principal.role.value, user_id=principal.user_id,
                      username=principal.username, api_key_id=principal.api_key_id,
                      csrf_token=principal.csrf_token)


@router.delete("", status_code=204, summary="Sign out: the session ends on the server, not just in the browser")
async def sign_out(request: Request, principal: Annotated[Principal, Depends(authenticate)], engine: DbEngine,
                   settings: AppSettings, clock: Clock, audit: AuditTrail) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if principal.user_id is None or token is None:
        raise ProblemError(409, "An API key has no session to end", "revoke a key with `tipline apikey revoke`")
    await run_in_threadpool(end_session, engine, token, clock())
    await run_in_threadpool(lambda: audit.append("session.signed_out", actor=principal.actor,
                                                 org_id=principal.org_id, subject=principal.actor))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=settings.session_cookie_secure, httponly=True,
                           samesite="strict")
    return response
