"""The audit log finds any row altered, removed, reordered or cut off, and records who did what, by id only.

The tampering tests work on a PostgreSQL database of their own, so the shared one's log stays intact.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from models.audit import AuditRow
from models.history_export import HistoryExport
from models.records import ClosedCase, Role
from tests.accounts_helpers import browser, cli_with_password, new_user, sign_in
from tests.claims_helpers import new_case, signed_in
from tests.conftest import POSTGRES_URL
from tests.helpers import ORG, eventually, headers
from tests.test_cli import use_settings
from tipline.audit_log import AuditLog
from tipline.cli import main
from tipline.db import make_engine, upgrade
from tipline.ids import IdMinter
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

MINTER = IdMinter(b"k" * 48)


@pytest.fixture
def own_engine() -> Iterator[Engine]:
    name = f"tipline_audit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def filled(engine: Engine, rows: int = 6) -> AuditLog:
    log = AuditLog(engine, MINTER)
    for n in range(rows):
        log.append("case.decided", actor=f"user:{n}", org_id=ORG, subject=f"case-{n}", case_number=1)
    return log


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), params)


def problems_of(log: AuditLog, head: tuple[int, str] | None = None) -> list[str]:
    return [str(p) for p in log.verify(head)]


def test_an_untouched_log_verifies_and_its_head_is_the_newest_row(own_engine: Engine) -> None:
    log = filled(own_engine)
    assert problems_of(log) == []
    seq, seal = log.head()
    assert seq == 6 and problems_of(log, (seq, seal)) == []
    assert AuditLog(own_engine, IdMinter(b"x" * 48)).verify(), "another deployment's key must not verify it"


def test_an_edited_row_is_named(own_engine: Engine) -> None:
    log = filled(own_engine)
    sql(own_engine, "UPDATE audit_log SET actor = 'user:999' WHERE seq = 3")
    assert problems_of(log) == ["row 3: altered: its contents do not match its seal"]


def test_a_row_resealed_without_the_key_is_still_caught(own_engine: Engine) -> None:
    """Recomputing a plain hash is not enough: the seal is keyed."""
    import hashlib

    log = filled(own_engine)
    sql(own_engine, "UPDATE audit_log SET detail = '{}', seal = :seal WHERE seq = 4",
        seal=hashlib.sha256(b"forged").hexdigest())
    problems = problems_of(log)
    assert problems[0] == "row 4: altered: its contents do not match its seal"


def test_a_deleted_row_is_named(own_engine: Engine) -> None:
    log = filled(own_engine)
    sql(own_engine, "DELETE FROM audit_log WHERE seq = 2")
    assert "row 2: row 2 removed (the numbering jumps to 3)" in problems_of(log)


def test_swapped_rows_are_caught(own_engine: Engine) -> None:
    log = filled(own_engine)
    with Session(own_engine) as session:
        third, fourth = (session.get(AuditRow, n) for n in (3, 4))
        assert third is not None and fourth is not None
        swapped = {n: (row.actor, row.subject, row.prev_seal, row.seal) for n, row in ((4, third), (3, fourth))}
    for seq, (actor, subject, prev_seal, seal) in swapped.items():
        sql(own_engine, "UPDATE audit_log SET actor = :actor, subject = :subject, prev_seal = :prev, seal = :seal "
            "WHERE seq = :seq", actor=actor, subject=subject, prev=prev_seal, seal=seal, seq=seq)
    problems = problems_of(log)
    assert any(p.startswith("row 3:") for p in problems) and any(p.startswith("row 4:") for p in problems)


def test_rows_cut_off_the_end_are_caught_against_a_kept_head(own_engine: Engine) -> None:
    log = filled(own_engine)
    kept = log.head()
    sql(own_engine, "DELETE FROM audit_log WHERE seq > 4")
    assert problems_of(log) == [], "a shorter chain is valid on its own"
    assert problems_of(log, kept) == ["row 6: missing: the log was cut short"]


def test_concurrent_writers_keep_one_unbroken_chain(own_engine: Engine) -> None:
    log = AuditLog(own_engine, MINTER)

    def write(worker: int) -> None:
        for n in range(15):
            log.append("media.viewed", actor=f"user:{worker}", org_id=ORG, subject=f"case-{worker}-{n}")

    with ThreadPoolExecutor(max_workers=6) as pool:
        for done in [pool.submit(write, w) for w in range(6)]:
            done.result()  # an append that failed fails the test here
    assert log.head()[0] == 90 and problems_of(log) == []


def test_verify_log_command_says_intact_then_names_the_row(
        monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    use_settings(monkeypatch, settings)
    main(["apikey", "create", "--org", ORG, "--role", "auditor", "--label", "audit cli"])
    main(["audit", "head"])
    head = capsys.readouterr().out.strip().splitlines()[-1]
    main(["audit", "verify-log", "--head", head])
    assert "the audit log is intact" in capsys.readouterr().out
    # The command reads the deployment's own database: alter its newest row, check, and put the row back.
    seq = int(head.split(":")[0])
    with Session(engine) as session:
        row = session.get(AuditRow, seq)
        assert row is not None and row.action == "api_key.created" and row.actor == "cli"
        original = row.detail
    sql(engine, "UPDATE audit_log SET detail = :d WHERE seq = :seq", d='{"role": "admin"}', seq=seq)
    try:
        with pytest.raises(SystemExit) as failed:
            main(["audit", "verify-log"])
        assert "problem" in str(failed.value)
        assert f"row {seq}: altered" in capsys.readouterr().out
    finally:
        sql(engine, "UPDATE audit_log SET detail = :d WHERE seq = :seq", d=original, seq=seq)
    with pytest.raises(SystemExit):
        main(["audit", "verify-log", "--head", "12:short"])


async def test_sign_ins_decisions_and_views_are_recorded_by_id_without_names(
        monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine, api: httpx.AsyncClient) -> None:
    app: FastAPI = api._transport.app  # type: ignore[attr-defined]
    username, password = new_user(monkeypatch, settings, ORG)
    async with browser(app) as person:
        await sign_in(person, username, password)
        refused = await person.post("/v1/session", json={"username": username, "password": "wrong " * 3})
        assert refused.status_code == 401
    with Session(engine) as session:
        rows = list(session.exec(select(AuditRow).order_by(AuditRow.seq.desc()).limit(10)).all())
    actions = [row.action for row in rows]
    assert "session.signed_in" in actions and "session.sign_in_refused" in actions
    assert "account.created" in actions
    assert all(username not in json.dumps([r.actor, r.subject, r.detail]) for r in rows), "names stay out"


async def test_a_view_and_a_dismissal_are_recorded_against_the_case(
        api: httpx.AsyncClient, api_keys: dict, engine: Engine) -> None:
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": "audited-1", "creator_id": f"user-{uuid.uuid4().hex[:8]}"},
                              files={"file": ("a.png", synthetic_image(uuid.uuid4().int % 10_000), "image/png")})
    case_ref = response.json()["case_ref"]
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER)

    async def ready() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return bool(case.get("media")) and case["media"][0]["analysis"] is not None

    await eventually(ready, what="the case")
    viewed = await api.get(f"/v1/cases/{case_ref}/media/audited-1/content", headers=reviewer)
    assert viewed.status_code == 200
    dismissed = await api.post(f"/v1/cases/{case_ref}/dismissal", headers=reviewer,
                               json={"case_number": 1, "reason": "synthetic test pattern"})
    assert dismissed.status_code == 200, dismissed.text
    with Session(engine) as session:
        rows = [r for r in session.exec(select(AuditRow).where(AuditRow.subject == case_ref).order_by(AuditRow.seq))
                if r.action != "case.history_exported"]  # the close's export, below, may or may not be in yet
    assert [(r.action, r.org_id) for r in rows] == [("media.viewed", ORG), ("case.dismissed", ORG)]
    assert all(r.actor.startswith("moderator_manager:") for r in rows)
    assert json.loads(rows[0].detail) == {"media_id": "audited-1"}
    assert "synthetic test pattern" not in rows[1].detail, "the reason is the case's, not the log's"

    async def recorded() -> ClosedCase | None:
        with Session(engine) as session:
            return session.get(ClosedCase, (case_ref, 1))

    # The closed case is kept whole, so it stays readable by number after the workflow lets it go.
    closed = await eventually(recorded, what="the closed case's record")
    assert closed.status == "dismissed" and closed.org_id == ORG

    # The close exports the case's histories, and the export is an audit row: what was stored, by digest.
    async def exported() -> tuple[HistoryExport, AuditRow] | None:
        with Session(engine) as session:
            export = session.exec(select(HistoryExport).where(HistoryExport.case_ref == case_ref)).first()
            row = session.exec(select(AuditRow).where(AuditRow.subject == case_ref,
                                                      AuditRow.action == "case.history_exported")).first()
        return (export, row) if export is not None and row is not None else None

    export, row = await eventually(exported, what="the history export and its audit row")
    assert (row.actor, row.org_id) == ("history_export", ORG)
    assert json.loads(row.detail) == {"case_number": 1, "sha256": export.sha256, "size": export.size,
                                      "runs": export.runs, "filing_attempts": 0, "missing_runs": 0}


def _rows(engine: Engine, action: str, subject: str) -> list[AuditRow]:
    with Session(engine) as session:
        return list(session.exec(select(AuditRow).where(AuditRow.action == action, AuditRow.subject == subject)
                                 .order_by(AuditRow.seq)).all())


def _verify_log_intact(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    main(["audit", "verify-log"])
    assert "the audit log is intact" in capsys.readouterr().out


def test_an_operator_revoking_a_key_is_recorded_against_the_key(
        monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    use_settings(monkeypatch, settings)
    main(["apikey", "create", "--org", ORG, "--role", "moderator", "--label", "to revoke"])
    created = capsys.readouterr().out.strip().splitlines()[-1]
    main(["apikey", "list", "--org", ORG])
    [listed] = [line for line in capsys.readouterr().out.splitlines() if "to revoke" in line][-1:]
    key_id = int(listed.split()[0])
    main(["apikey", "revoke", str(key_id)])
    assert f"API key {key_id}" in capsys.readouterr().out
    [revoked] = _rows(engine, "api_key.revoked", f"key:{key_id}")
    assert (revoked.actor, revoked.org_id, json.loads(revoked.detail)) == ("cli", ORG, {})
    assert created not in json.dumps([revoked.subject, revoked.detail]), "the key itself stays out"
    with pytest.raises(SystemExit):
        main(["apikey", "revoke", str(2**31 - 1)])  # no such key: nothing revoked, nothing recorded
    assert _rows(engine, "api_key.revoked", f"key:{2**31 - 1}") == []
    _verify_log_intact(capsys)


async def test_an_operator_resetting_a_password_and_disabling_an_account_is_recorded_by_id(
        monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine, api: httpx.AsyncClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    app: FastAPI = api._transport.app  # type: ignore[attr-defined]
    username, password = new_user(monkeypatch, settings, ORG)
    async with browser(app) as person:
        user_id = (await sign_in(person, username, password))["user_id"]
        new_password = f"pw-{uuid.uuid4().hex}"
        cli_with_password(monkeypatch, settings, ["user", "reset", username], new_password)
        assert "1 session(s) ended" in capsys.readouterr().out
        assert (await person.get("/v1/session")).status_code == 401, "the reset ends the session"
        await sign_in(person, username, new_password)
        main(["user", "disable", username])
        assert "1 session(s) ended" in capsys.readouterr().out
        refused = await person.post("/v1/session", json={"username": username, "password": new_password})
        assert refused.status_code == 401
    [reset] = _rows(engine, "account.password_reset", f"user:{user_id}")
    [disabled] = _rows(engine, "account.disabled", f"user:{user_id}")
    assert reset.seq < disabled.seq
    for row in (reset, disabled):
        assert (row.actor, row.org_id, json.loads(row.detail)) == ("cli", ORG, {"sessions_ended": 1})
        assert username not in json.dumps([row.actor, row.subject, row.detail]), "names stay out"
        assert password not in row.detail and new_password not in row.detail
    _verify_log_intact(capsys)


async def test_claims_releases_and_reassignments_are_recorded_against_the_case(
        monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine, api: httpx.AsyncClient,
        api_keys: dict, capsys: pytest.CaptureFixture[str]) -> None:
    app: FastAPI = api._transport.app  # type: ignore[attr-defined]
    case_ref = await new_case(api, api_keys, ORG, 82_001)
    claim = f"/v1/cases/{case_ref}/claim"
    async with (signed_in(app, monkeypatch, settings, ORG, "child_safety_moderator") as first,
                signed_in(app, monkeypatch, settings, ORG, "child_safety_moderator") as second,
                signed_in(app, monkeypatch, settings, ORG, "moderator_manager") as manager):
        assert (await first.send("POST", claim)).status_code == 200
        assert (await first.send("POST", claim)).status_code == 200  # the holder again: nothing changes
        assert (await second.send("POST", claim)).status_code == 409  # refused: nothing changes
        assert (await first.send("DELETE", claim)).status_code == 204
        assert (await first.send("DELETE", claim)).status_code == 204  # nobody holds it: nothing changes
        assert (await first.send("POST", claim)).status_code == 200
        assert (await manager.send("PUT", claim, {"user_id": second.user_id})).status_code == 200
        assert (await manager.send("DELETE", claim)).status_code == 204  # a manager takes it from its holder
        people = [first, second, manager]
    with Session(engine) as session:
        rows = list(session.exec(select(AuditRow).where(AuditRow.subject == case_ref).order_by(AuditRow.seq)).all())
    assert [(r.action, r.actor, json.loads(r.detail)) for r in rows] == [
        ("case.claimed", first.actor, {"case_number": 1}),
        ("case.released", first.actor, {"case_number": 1, "released_from": first.actor}),
        ("case.claimed", first.actor, {"case_number": 1}),
        ("case.reassigned", manager.actor, {"case_number": 1, "holder": second.actor,
                                            "previous_holder": first.actor}),
        ("case.released", manager.actor, {"case_number": 1, "released_from": second.actor}),
    ]
    assert all(r.org_id == ORG for r in rows)
    assert not any(p.username in json.dumps([r.actor, r.detail]) for p in people for r in rows), "names stay out"
    use_settings(monkeypatch, settings)
    _verify_log_intact(capsys)
