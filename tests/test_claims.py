"""Claiming cases: one holder at a time, others see who holds it, only a manager or admin reassigns or decides over
the holder, and the opened, claimed and decided times are kept and sorted on."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from api.app import create_app
from models.accounts import ReviewerAccount
from models.claims import ClaimEvent
from models.records import Role
from tests.accounts_helpers import new_user
from tests.claims_helpers import new_case, signed_in
from tests.helpers import ORG, OTHER_ORG
from tipline.settings import Settings

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(scope="module")
def app(settings: Settings, temporal_client: Client, engine: Engine) -> FastAPI:
    return create_app(settings, temporal=temporal_client, engine=engine)


def dismissal(case_number: int = 1) -> dict:
    return {"case_number": case_number, "reason": "synthetic test image"}


async def test_one_holder_others_see_them_a_manager_reassigns_and_decides_over_them(
    api: httpx.AsyncClient, api_keys: dict, app: FastAPI, settings: Settings, engine: Engine,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    case_ref = await new_case(api, api_keys, ORG, 81_001)
    claim = f"/v1/cases/{case_ref}/claim"
    async with (signed_in(app, monkeypatch, settings, ORG, "child_safety_moderator") as first,
                signed_in(app, monkeypatch, settings, ORG, "child_safety_moderator") as second,
                signed_in(app, monkeypatch, settings, ORG, "moderator_manager") as manager,
                signed_in(app, monkeypatch, settings, OTHER_ORG, "child_safety_moderator") as foreigner):
        taken = await first.send("POST", claim)
        assert taken.status_code == 200, taken.text
        assert taken.json()["case_ref"] == case_ref and taken.json()["claimed_by"] == first.actor
        assert taken.json()["claimed_by_name"] == first.username  # the page shows the person, not user:<id>
        again = await first.send("POST", claim)  # the holder claiming again gets the same claim
        assert again.status_code == 200 and again.json() == taken.json()

        refused = await second.send("POST", claim)
        assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
        assert first.actor in refused.json()["detail"]
        seen = (await second.client.get(f"/v1/cases/{case_ref}")).json()
        assert seen["claim"] == {"claimed_by": first.actor, "claimed_by_name": first.username,
                                 "claimed_at": taken.json()["claimed_at"]}
        listed = {c["case_ref"]: c for c in (await second.client.get("/v1/cases?limit=500")).json()}
        assert listed[case_ref]["claim"]["claimed_by"] == first.actor
        assert listed[case_ref]["claim"]["claimed_by_name"] == first.username
        assert listed[case_ref]["claimed_at"] == taken.json()["claimed_at"] and listed[case_ref]["decided_at"] is None
        names = {r["actor"]: r["username"] for r in (await second.client.get("/v1/reviewers")).json()}
        assert names[first.actor] == first.username and foreigner.actor not in names

        # Not the holder, not a manager: may not release, reassign, or decide it.
        assert (await second.send("DELETE", claim)).status_code == 409
        assert (await second.send("PUT", claim, {"user_id": second.user_id})).status_code == 403
        over = await second.send("POST", f"/v1/cases/{case_ref}/dismissal", dismissal())
        assert over.status_code == 409 and first.actor in over.json()["detail"]

        # The target must be an active reviewer of this org.
        auditor_name, _ = new_user(monkeypatch, settings, ORG, Role.AUDITOR.value)
        for target in (foreigner.user_id, _account_id(engine, auditor_name), 2**31 - 1):
            wrong = await manager.send("PUT", claim, {"user_id": target})
            assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "user_id", wrong.text
        assert (await manager.send("PUT", claim, {"user_id": "x"})).status_code == 422

        moved = await manager.send("PUT", claim, {"user_id": second.user_id})
        assert moved.status_code == 200 and moved.json()["claimed_by"] == second.actor
        assert moved.json()["claimed_by_name"] == second.username  # the new holder's name, not the manager's
        case = (await first.client.get(f"/v1/cases/{case_ref}")).json()
        assert case["claim"]["claimed_by"] == second.actor and case["claim"]["claimed_by_name"] == second.username
        assert case["claimed_at"] == taken.json()["claimed_at"]  # first pick-up, kept through the reassignment

        assert (await second.send("DELETE", claim)).status_code == 204
        assert (await second.client.get(f"/v1/cases/{case_ref}")).json()["claim"] is None
        assert (await second.send("DELETE", claim)).status_code == 204  # nothing held: nothing to do
        assert (await first.send("POST", claim)).status_code == 200

        # A manager decides over the holder.
        decided = await manager.send("POST", f"/v1/cases/{case_ref}/dismissal", dismissal())
        assert decided.status_code == 200, decided.text
        closed = (await manager.client.get(f"/v1/cases/{case_ref}?case_number=1")).json()
        assert closed["decided_at"] is not None and closed["opened_at"] <= closed["decided_at"]
        assert (await first.send("POST", claim)).status_code in (404, 409)  # no open case left to claim

    with Session(engine) as session:
        events = session.exec(select(ClaimEvent).where(ClaimEvent.workflow_id == case_ref)
                              .order_by(col(ClaimEvent.id))).all()
    assert [(e.action, e.actor, e.holder) for e in events] == [
        ("claim", first.actor, first.actor), ("reassign", manager.actor, second.actor),
        ("release", second.actor, None), ("claim", first.actor, first.actor)]


async def test_two_reviewers_claiming_at_once_get_one_holder(
    api: httpx.AsyncClient, api_keys: dict, app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_ref = await new_case(api, api_keys, ORG, 81_002)
    async with (signed_in(app, monkeypatch, settings, ORG, "child_safety_moderator") as one,
                signed_in(app, monkeypatch, settings, ORG, "admin") as other):
        results = await asyncio.gather(one.send("POST", f"/v1/cases/{case_ref}/claim"),
                                       other.send("POST", f"/v1/cases/{case_ref}/claim"))
    assert sorted(r.status_code for r in results) == [200, 409]


async def test_the_queue_sorts_by_opened_claimed_and_decided_times(
    api: httpx.AsyncClient, api_keys: dict, app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = await new_case(api, api_keys, ORG, 81_003)
    newer = await new_case(api, api_keys, ORG, 81_004)
    mine = {older, newer}
    async with signed_in(app, monkeypatch, settings, ORG, "moderator_manager") as reviewer:
        async def order(**params: str) -> list[str]:
            response = await reviewer.client.get("/v1/cases", params={"limit": 500, **params})
            assert response.status_code == 200, response.text
            return [c["case_ref"] for c in response.json() if c["case_ref"] in mine]

        assert await order(sort="opened_at") == [older, newer]
        assert (await reviewer.send("POST", f"/v1/cases/{newer}/claim")).status_code == 200
        assert (await reviewer.send("POST", f"/v1/cases/{older}/claim")).status_code == 200
        assert await order(sort="claimed_at") == [newer, older]  # the longest-held first
        for ref in (older, newer):
            assert (await reviewer.send("POST", f"/v1/cases/{ref}/dismissal", dismissal())).status_code == 200
        assert await order(sort="decided_at", status="dismissed") == [newer, older]  # the latest decision first
        bad = await reviewer.client.get("/v1/cases", params={"sort": "name"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"].endswith("sort")


def _account_id(engine: Engine, username: str) -> int:
    with Session(engine) as session:
        account = session.exec(select(ReviewerAccount).where(ReviewerAccount.username == username)).one()
    assert account.id is not None
    return account.id
