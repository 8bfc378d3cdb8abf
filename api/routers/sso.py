"""Single sign-on by OpenID Connect: the authorization code flow with PKCE, through authlib.

Off until ``oidc_issuer`` is set. The person's org and role come from their groups claim at every login,
through ``oidc_group_roles``; an account is made on their first login. The ID token is checked (signature from
the provider's keys, issuer, audience, expiry, nonce) before anyone is signed in.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.concurrency import run_in_threadpool

from api.deps import AppSettings, AuditTrail, DbEngine, get_clock
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.routers.session import set_session_cookie
from models.records import Role
from tipline.accounts import PEOPLE_ROLES, LoginRefused, open_session, single_sign_on_account
from tipline.settings import Settings

with warnings.catch_warnings():
    # authlib 1.9 announces a move of its httpx integration to httpx2; the integration itself is unchanged.
    warnings.simplefilter("ignore")
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

router = APIRouter(prefix="/v1/session/oidc", tags=["session"],
                   responses={**PROBLEM_RESPONSES, 400: PROBLEM_RESPONSES[401], 502: PROBLEM_RESPONSES[401]})
Clock = Annotated[Callable[[], datetime], Depends(get_clock)]
# State, nonce and PKCE verifier between the two legs. Lax, not Strict: it must come back with the provider's
# redirect, a navigation from another site. HttpOnly, ten minutes, and only on these paths.
FLOW_COOKIE = "tipline_oidc"
FLOW_PATH = "/v1/session/oidc"
FLOW_SECONDS = 600
SCOPES = "openid email profile"


def _configured(settings: Settings) -> tuple[str, str]:
    if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_redirect_url):
        raise ProblemError(404, "Single sign-on is not set up",
                           "set TIPLINE_OIDC_ISSUER, TIPLINE_OIDC_CLIENT_ID and TIPLINE_OIDC_REDIRECT_URL")
    return settings.oidc_issuer.rstrip("/"), settings.oidc_client_id


def _client(settings: Settings) -> AsyncOAuth2Client:
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    return AsyncOAuth2Client(client_id=settings.oidc_client_id, client_secret=secret, scope=SCOPES,
                             redirect_uri=settings.oidc_redirect_url, code_challenge_method="S256",
                             token_endpoint_auth_method="client_secret_basic" if secret else "none", timeout=10)


async def _metadata(request: Request, issuer: str) -> dict[str, Any]:
    cached: dict[str, Any] | None = getattr(request.app.state, "oidc_metadata", None)
    if cached is None:
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(f"{issuer}/.well-known/openid-configuration")
                response.raise_for_status()
                cached = response.json()
        except (httpx.HTTPError, ValueError) as failure:
            raise ProblemError(502, "The identity provider cannot be reached; try again",
                               type(failure).__name__) from None
        if cached.get("issuer", "").rstrip("/") != issuer:
            raise ProblemError(502, "The identity provider names another issuer than TIPLINE_OIDC_ISSUER")
        request.app.state.oidc_metadata = cached
    return cached


@router.get("/login", response_class=RedirectResponse, status_code=302,
            summary="Start single sign-on: a redirect to the identity provider")
async def oidc_login(request: Request, settings: AppSettings) -> RedirectResponse:
    issuer, _ = _configured(settings)
    meta = await _metadata(request, issuer)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    async with _client(settings) as client:
        url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state, nonce=nonce,
                                                 code_verifier=verifier)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(FLOW_COOKIE, f"{state}.{nonce}.{verifier}", max_age=FLOW_SECONDS, path=FLOW_PATH,
                        secure=settings.session_cookie_secure, httponly=True, samesite="lax")
    return response


def role_from_groups(settings: Settings, groups: list[str]) -> tuple[str, Role]:
    """The org and role the groups map to; with several, the most powerful role, all in one org."""
    mapped = [settings.oidc_group_roles[g] for g in groups if g in settings.oidc_group_roles]
    if not mapped:
        raise ProblemError(403, "None of your groups may use Tipline",
                           f"the {settings.oidc_groups_claim} claim names no group of TIPLINE_OIDC_GROUP_ROLES")
    pairs = {tuple(entry.split(":", 1)) for entry in mapped}
    orgs = {org for org, _ in pairs}
    if len(orgs) != 1:
        raise ProblemError(403, "Your groups map to more than one org", "a person reviews for one org only")
    order = [Role.ADMIN, Role.MODERATOR_MANAGER, Role.CHILD_SAFETY_MODERATOR, Role.MODERATOR, Role.AUDITOR]
    roles = [Role(role) for _, role in pairs]
    if any(role not in PEOPLE_ROLES for role in roles):
        raise ProblemError(403, "A group maps to a role that is not for people")
    return orgs.pop(), min(roles, key=order.index)


@router.get("/callback", response_class=RedirectResponse, status_code=302,
            summary="Where the identity provider sends the person back; signs them in and opens the review page")
async def oidc_callback(request: Request, settings: AppSettings, engine: DbEngine, clock: Clock, audit: AuditTrail,
                        code: Annotated[str | None, Query(max_length=2000)] = None,
                        state: Annotated[str | None, Query(max_length=200)] = None,
                        error: Annotated[str | None, Query(max_length=200)] = None) -> RedirectResponse:
    issuer, client_id = _configured(settings)
    if error is not None:
        raise ProblemError(401, "The identity provider did not sign you in", error)
    flow = (request.cookies.get(FLOW_COOKIE) or "").split(".")
    if len(flow) != 3 or state is None or not secrets.compare_digest(flow[0], state) or code is None:
        raise ProblemError(400, "This sign-in was not started here, or took too long; start again")
    _, nonce, verifier = flow
    meta = await _metadata(request, issuer)
    try:
        async with _client(settings) as client:
            token = await client.fetch_token(meta["token_endpoint"], code=code, code_verifier=verifier)
            keys = (await client.get(meta["jwks_uri"])).json()
        decoded = jwt.decode(token["id_token"], KeySet.import_key_set(keys))
        jwt.JWTClaimsRegistry(iss={"essential": True, "value": issuer}, aud={"essential": True, "value": client_id},
                              exp={"essential": True}, nonce={"essential": True, "value": nonce},
                              sub={"essential": True}).validate(decoded.claims)
    except (OAuthError, JoseError, KeyError, ValueError, httpx.HTTPError) as failure:
        raise ProblemError(401, "The identity provider's answer could not be verified",
                           type(failure).__name__) from None
    claims = decoded.claims
    groups = claims.get(settings.oidc_groups_claim) or []
    org_id, role = role_from_groups(settings, [str(g) for g in groups] if isinstance(groups, list) else [])
    now = clock()
    subject = f"{issuer} {claims['sub']}"
    try:
        account = await run_in_threadpool(single_sign_on_account, engine, subject, f"sso:{claims['sub']}"[:200],
                                          org_id, role, now)
    except LoginRefused:
        raise ProblemError(403, "This account is disabled") from None
    session_token, _ = await run_in_threadpool(open_session, engine, account, now)
    await run_in_threadpool(lambda: audit.append("session.signed_in", actor=f"user:{account.id}",
                                                 org_id=account.org_id, subject=f"user:{account.id}", sso=True))
    response = RedirectResponse("/review", status_code=302)
    set_session_cookie(response, settings, session_token)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, secure=settings.session_cookie_secure, httponly=True,
                           samesite="lax")
    return response
