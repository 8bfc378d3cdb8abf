"""People sign in: accounts from ``tipline user``, argon2 passwords, server-side sessions in a Secure, HttpOnly,
SameSite cookie with idle and absolute expiry and revocation, CSRF tokens, throttled logins, and every view and
decision recorded against the person."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select
from temporalio.client import Client

from api.app import create_app
from api.deps import SESSION_COOKIE, hash_api_key
from models.accounts import LoginSession, ReviewerAccount
from models.audit import AuditRow
from models.records import FiledReport, MediaView, Role
from tests.accounts_helpers import browser, cli_with_password, new_user, sign_in
from tests.helpers import ORG, eventually, headers
from tipline.accounts import hash_token
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
IDLE_MINUTES, ABSOLUTE_HOURS, MAX_FAILURES = 5.0, 1.0, 3


@pytest.fixture(scope="module")
async def app(settings: Settings, temporal_client: Client, engine: Engine, worker: None) -> AsyncIterator[FastAPI]:
    short = settings.model_copy(update={"session_idle_minutes": IDLE_MINUTES, "session_absolute_hours": ABSOLUTE_HOURS,
                                        "login_max_failures_per_account": MAX_FAILURES})
    yield create_app(short, temporal=temporal_client, engine=engine)


async def waiting_case(api: httpx.AsyncClient, api_keys: dict, org: str) -> str:
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM, org),
                              data={"content_id": "m1", "creator_id": f"user-{uuid.uuid4().hex[:8]}"},
                              files={"file": ("a.png", synthetic_image(uuid.uuid4().int % 10_000), "image/png")})
    assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]

    async def ready() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN, org))).json()
        return case.get("status") == "awaiting_review" and bool(case["media"]) and case["media"][0]["analysis"]

    await eventually(ready, what="the case awaiting review")
    return case_ref


def account_id(engine: Engine, username: str) -> int:
    with Session(engine) as session:
        account = session.exec(select(ReviewerAccount).where(ReviewerAccount.username == username)).one()
    assert account.id is not None
    return account.id


async def test_a_user_made_by_the_cli_signs_in_with_a_secure_server_side_session(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine
) -> None:
    username, password = new_user(monkeypatch, settings, ORG, "moderator_manager")
    with Session(engine) as session:
        stored = session.exec(select(ReviewerAccount).where(ReviewerAccount.username == username)).one()
    assert stored.password_hash is not None and stored.password_hash.startswith("$argon2id$")
    assert password not in stored.password_hash
    async with browser(app) as client:
        response = await client.post("/v1/session", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        cookie = response.headers["set-cookie"]
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags, cookie
        assert f"max-age={int(ABSOLUTE_HOURS * 3600)}" in flags
        token = client.cookies[SESSION_COOKIE]
        with Session(engine) as session:  # only the token's hash is kept
            assert session.get(LoginSession, hash_token(token)) is not None
            assert session.get(LoginSession, token) is None
        me = (await client.get("/v1/session")).json()
        assert (me["org_id"], me["role"], me["user_id"]) == (ORG, "moderator_manager", stored.id)
        assert me["csrf_token"] == response.json()["csrf_token"] and len(me["csrf_token"]) >= 32
        assert (await client.get("/v1/cases")).status_code == 200

        # Signing out ends the session on the server: the same cookie, sent again, opens nothing.
        assert (await client.delete("/v1/session", headers={"X-CSRF-Token": me["csrf_token"]})).status_code == 204
        client.cookies.set(SESSION_COOKIE, token, domain="tipline.test")
        assert (await client.get("/v1/session")).status_code == 401


async def test_a_wrong_password_is_refused_and_repeated_failures_are_throttled(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    username, password = new_user(monkeypatch, settings, ORG)
    async with browser(app) as client:
        for _ in range(MAX_FAILURES):
            wrong = await client.post("/v1/session", json={"username": username, "password": "not-the-password"})
            assert wrong.status_code == 401 and SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
            assert wrong.headers["content-type"] == "application/problem+json"
        throttled = await client.post("/v1/session", json={"username": username, "password": password})
        assert throttled.status_code == 429, throttled.text
        retry_after = int(throttled.headers["retry-after"])
        assert 0 < retry_after <= settings.login_failure_window_seconds
    # The account is throttled from any address, not just the one that failed.
    async with browser(app) as elsewhere:
        assert (await elsewhere.post("/v1/session", json={"username": username, "password": password})
                ).status_code == 429
        # An unknown name is refused like a wrong password, not told apart.
        unknown = await elsewhere.post("/v1/session", json={"username": "nobody-" + uuid.uuid4().hex,
                                                            "password": password})
        assert unknown.status_code == 401 and unknown.json()["title"] == "Wrong name or password"


async def test_one_address_trying_many_accounts_is_throttled(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    username, password = new_user(monkeypatch, settings, ORG)
    async with browser(app) as client:
        for n in range(settings.login_max_failures_per_address):
            response = await client.post("/v1/session", json={"username": f"guess-{n}-{uuid.uuid4().hex[:6]}",
                                                              "password": "guess"})
            assert response.status_code == 401
        assert (await client.post("/v1/session", json={"username": username, "password": password})
                ).status_code == 429


async def test_disabling_a_user_ends_their_open_session(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    username, password = new_user(monkeypatch, settings, ORG)
    async with browser(app) as client:
        await sign_in(client, username, password)
        cli_with_password(monkeypatch, settings, ["user", "disable", username], "")
        assert (await client.get("/v1/cases")).status_code == 401
        assert (await client.post("/v1/session", json={"username": username, "password": password})
                ).status_code == 401


async def test_a_password_reset_ends_every_session_and_the_old_password(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    username, password = new_user(monkeypatch, settings, ORG)
    async with browser(app) as first, browser(app) as second:
        await sign_in(first, username, password)
        await sign_in(second, username, password)
        new_password = f"new-{uuid.uuid4().hex}"
        cli_with_password(monkeypatch, settings, ["user", "reset", username], new_password)
        for client in (first, second):
            assert (await client.get("/v1/session")).status_code == 401
        assert (await first.post("/v1/session", json={"username": username, "password": password})
                ).status_code == 401
        await sign_in(second, username, new_password)
        assert (await second.get("/v1/session")).status_code == 200


async def test_sessions_end_when_idle_and_at_their_absolute_limit(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine
) -> None:
    username, password = new_user(monkeypatch, settings, ORG)

    def set_back(client: httpx.AsyncClient, column: str, by: timedelta) -> None:
        token_hash = hash_token(client.cookies[SESSION_COOKIE])
        with Session(engine) as session:
            row = session.get(LoginSession, token_hash)
            assert row is not None
            values = {column: getattr(row, column) - by}
            session.execute(update(LoginSession).where(col(LoginSession.token_hash) == token_hash).values(**values))
            session.commit()

    async with browser(app) as idle, browser(app) as busy:
        await sign_in(idle, username, password)
        await sign_in(busy, username, password)
        set_back(idle, "last_seen_at", timedelta(minutes=IDLE_MINUTES - 1))
        assert (await idle.get("/v1/session")).status_code == 200  # inside the idle limit, and it restarts
        set_back(idle, "last_seen_at", timedelta(minutes=IDLE_MINUTES + 1))
        assert (await idle.get("/v1/session")).status_code == 401

        # Used a moment ago, but opened longer ago than the absolute limit.
        set_back(busy, "created_at", timedelta(hours=ABSOLUTE_HOURS, minutes=1))
        assert (await busy.get("/v1/session")).status_code == 401


async def test_a_cookie_session_needs_its_csrf_token_to_decide_and_the_decision_names_the_person(
    app: FastAPI, api: httpx.AsyncClient, api_keys: dict, monkeypatch: pytest.MonkeyPatch, settings: Settings,
    engine: Engine
) -> None:
    case_ref = await waiting_case(api, api_keys, ORG)
    username, password = new_user(monkeypatch, settings, ORG)
    user_id = account_id(engine, username)
    decision = {"case_number": 1, "incident_type": INCIDENT,
                "media": [{"media_id": "m1", "reported": True, "classification": "B1"}]}
    async with browser(app) as client:
        csrf = (await sign_in(client, username, password))["csrf_token"]
        for sent in ({}, {"X-CSRF-Token": "wrong-" + csrf[6:]}, {"X-CSRF-Token": ""}):
            refused = await client.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=sent)
            assert refused.status_code == 403, refused.text
            assert "CSRF" in refused.json()["title"]
        # Another session's token is no good either: the token is bound to its session.
        async with browser(app) as other:
            other_csrf = (await sign_in(other, username, password))["csrf_token"]
        assert (await client.post(f"/v1/cases/{case_ref}/decision", json=decision,
                                  headers={"X-CSRF-Token": other_csrf})).status_code == 403
        assert (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()[
            "decision"] is None

        case = (await client.get(f"/v1/cases/{case_ref}")).json()
        media = await client.get(case["media"][0]["content_url"])
        assert media.status_code == 200
        accepted = await client.post(f"/v1/cases/{case_ref}/decision", json=decision, headers={"X-CSRF-Token": csrf})
        assert accepted.status_code == 200, accepted.text

    with Session(engine) as session:
        views = session.exec(select(MediaView).where(MediaView.workflow_id == case_ref)).all()
    assert [(v.user_id, v.api_key_id) for v in views] == [(user_id, None)]
    decided = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()
    assert decided["decision"]["reviewer_id"] == f"user:{user_id}"

    def filed() -> FiledReport | None:
        with Session(engine) as session:
            return session.exec(select(FiledReport).where(FiledReport.workflow_id == case_ref)).first()

    async def report() -> FiledReport | None:
        return filed()

    assert (await eventually(report, what="the filed report")).submitted_by == f"user:{user_id}"


async def test_a_cookie_session_needs_its_csrf_token_to_dismiss_and_the_dismissal_names_the_person(
    app: FastAPI, api: httpx.AsyncClient, api_keys: dict, monkeypatch: pytest.MonkeyPatch, settings: Settings,
    engine: Engine
) -> None:
    case_ref = await waiting_case(api, api_keys, ORG)
    username, password = new_user(monkeypatch, settings, ORG)
    user_id = account_id(engine, username)
    dismissal = {"case_number": 1, "reason": "synthetic test image, nothing to report"}
    admin = headers(api_keys, Role.ADMIN)
    async with browser(app) as client:
        csrf = (await sign_in(client, username, password))["csrf_token"]
        refused = await client.post(f"/v1/cases/{case_ref}/dismissal", json=dismissal)
        assert refused.status_code == 403 and "CSRF" in refused.json()["title"], refused.text
        assert (await api.get(f"/v1/cases/{case_ref}", headers=admin)).json()["status"] == "awaiting_review"
        accepted = await client.post(f"/v1/cases/{case_ref}/dismissal", json=dismissal,
                                     headers={"X-CSRF-Token": csrf})
        assert accepted.status_code == 200, accepted.text

    async def dismissed() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1}, headers=admin)).json()
        return case if case.get("status") == "dismissed" else None

    case = await eventually(dismissed, what="the case dismissed")
    # The person, not the session or a key: the case and the audit log both name the account.
    assert case["dismissal"]["reviewer_id"] == f"user:{user_id}"
    assert case["dismissal"]["reason"] == dismissal["reason"]
    with Session(engine) as session:
        actors = session.exec(select(AuditRow.actor).where(AuditRow.subject == case_ref,
                                                           AuditRow.action == "case.dismissed")).all()
    assert list(actors) == [f"user:{user_id}"]


async def test_a_person_may_report_only_what_they_viewed_themselves_and_a_key_is_not_held_to_it(
    app: FastAPI, api: httpx.AsyncClient, api_keys: dict, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    case_ref = await waiting_case(api, api_keys, ORG)
    decision = {"case_number": 1, "incident_type": INCIDENT,
                "media": [{"media_id": "m1", "reported": True, "classification": "B1"}]}
    admin = headers(api_keys, Role.ADMIN)
    reviewer, colleague = new_user(monkeypatch, settings, ORG), new_user(monkeypatch, settings, ORG)
    async with browser(app) as client, browser(app) as other:
        csrf = {"X-CSRF-Token": (await sign_in(client, *reviewer))["csrf_token"]}
        await sign_in(other, *colleague)
        # A colleague's look is not this reviewer's: the view log shows the item viewed, but not by them.
        content_url = (await other.get(f"/v1/cases/{case_ref}")).json()["media"][0]["content_url"]
        assert (await other.get(content_url)).status_code == 200
        [shown] = (await client.get(f"/v1/cases/{case_ref}")).json()["media"]
        assert shown["viewed"] and not shown["viewed_by_you"]
        refused = await client.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=csrf)
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert problem["title"] == "Reveal each item before reporting it"
        assert [e["field"] for e in problem["errors"]] == ["media[0].media_id"]
        assert "not viewed media 'm1'" in problem["errors"][0]["message"]
        assert (await api.get(f"/v1/cases/{case_ref}", headers=admin)).json()["decision"] is None  # nothing changed

        assert (await client.get(content_url)).status_code == 200
        assert (await client.get(f"/v1/cases/{case_ref}")).json()["media"][0]["viewed_by_you"]
        accepted = await client.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=csrf)
        assert accepted.status_code == 200, accepted.text

    # Automation with an API key reports what nobody viewed; the CyberTip then says so (fileViewedByEsp false).
    unseen_ref = await waiting_case(api, api_keys, ORG)
    by_key = await api.post(f"/v1/cases/{unseen_ref}/decision", json=decision,
                            headers=headers(api_keys, Role.CHILD_SAFETY_MODERATOR))
    assert by_key.status_code == 200, by_key.text
    [decided] = (await api.get(f"/v1/cases/{unseen_ref}", headers=admin)).json()["decision"]["media"]
    assert decided["reported"] and decided["viewed"] is False


async def test_api_keys_work_as_before_without_csrf(app: FastAPI, api_keys: dict, engine: Engine) -> None:
    async with browser(app) as client:
        key = headers(api_keys, Role.ADMIN)
        me = (await client.get("/v1/session", headers=key)).json()
        with Session(engine) as session:
            from models.records import ApiKey
            row = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key["X-API-Key"]))).one()
        assert (me["api_key_id"], me["user_id"], me["csrf_token"]) == (row.id, None, None)
        upload = await client.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                                   data={"content_id": "k1", "creator_id": f"user-{uuid.uuid4().hex[:8]}"},
                                   files={"file": ("a.png", synthetic_image(99), "image/png")})
        assert upload.status_code == 202, upload.text
        assert (await client.get("/v1/cases")).status_code == 401  # neither key nor session


async def test_a_session_of_one_org_cannot_reach_another_orgs_case(
    app: FastAPI, api: httpx.AsyncClient, api_keys: dict, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    theirs = await waiting_case(api, api_keys, "acme-kids")
    username, password = new_user(monkeypatch, settings, "acme", "admin")
    async with browser(app) as client:
        csrf = (await sign_in(client, username, password))["csrf_token"]
        assert (await client.get(f"/v1/cases/{theirs}")).status_code == 404
        assert (await client.get(f"/v1/cases/{theirs}/media/m1/content")).status_code == 404
        dismissal = await client.post(f"/v1/cases/{theirs}/dismissal", json={"case_number": 1, "reason": "x"},
                                      headers={"X-CSRF-Token": csrf})
        assert dismissal.status_code == 404
        listed = (await client.get("/v1/cases", params={"limit": 500})).text
        assert theirs not in listed


def test_platform_is_not_a_role_for_people(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    with pytest.raises(SystemExit):
        new_user(monkeypatch, settings, ORG, "platform")
