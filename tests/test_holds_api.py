"""Holds through the API (who may, what must be said, renewals), the retention policy's floor, and the links
from a user's cases to the evidence they preserved."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, select

from models.audit import AuditRow
from models.records import IssuedRef, RefKind, Role
from models.retention import EvidenceLink
from tests.helpers import ORG, OTHER_ORG, eventually, headers
from tipline.retention import add_years
from tipline.settings import OrgDirectory, OrgSettings, RetentionSettings, Settings, orgs_toml
from tipline.synthetic import synthetic_image


def new_case_ref(engine: Engine, org: str = ORG) -> str:
    case_ref = f"case-{uuid.uuid4().hex[:12]}"
    with Session(engine) as session:
        session.add(IssuedRef(ref=case_ref, kind=RefKind.CASE, org_id=org))
        session.commit()
    return case_ref


async def test_managers_place_renew_list_and_release_holds(api: httpx.AsyncClient, api_keys: dict,
                                                           engine: Engine) -> None:
    case_ref = new_case_ref(engine)
    manager = headers(api_keys, Role.MODERATOR_MANAGER)
    url = f"/v1/cases/{case_ref}/holds"

    legal = await api.post(url, json={"kind": "legal", "reason": "matter 2026-4 (synthetic)"}, headers=manager)
    assert legal.status_code == 201, legal.text
    assert legal.json()["expires_at"] is None and legal.json()["in_force"] and not legal.json()["renewed"]

    first = await api.post(url, json={"kind": "preservation_2703f", "reason": "agency request 1"}, headers=manager)
    assert first.status_code == 201, first.text
    placed = first.json()
    again = await api.post(url, json={"kind": "preservation_2703f", "reason": "agency renewal"},
                           headers=headers(api_keys, Role.ADMIN))
    assert again.status_code == 200 and again.json()["renewed"] and again.json()["hold_id"] == placed["hold_id"]
    # A renewal is 90 more days from the end of the request in force (§2703(f)(2)), not from today.
    assert _parse(again.json()["expires_at"]) == _parse(placed["expires_at"]) + timedelta(days=90)
    assert _parse(placed["expires_at"]) - _parse(placed["placed_at"]) == timedelta(days=90)

    listed = await api.get(url, headers=manager)
    assert [h["kind"] for h in listed.json()] == ["legal", "preservation_2703f"]

    one = await api.delete(url, params={"hold_id": legal.json()["hold_id"]}, headers=manager)
    assert [h["hold_id"] for h in one.json()] == [legal.json()["hold_id"]] and one.json()[0]["released_by"]
    rest = await api.delete(url, headers=manager)
    assert [h["hold_id"] for h in rest.json()] == [placed["hold_id"]]
    assert not any(h["in_force"] for h in (await api.get(url, headers=manager)).json())

    with Session(engine) as session:
        rows = session.exec(select(AuditRow).where(AuditRow.subject == case_ref).order_by(AuditRow.seq)).all()
    assert [r.action for r in rows] == ["retention.hold_placed", "retention.hold_placed", "retention.hold_renewed",
                                        "retention.hold_released", "retention.hold_released"]
    assert all("agency" not in r.detail and "matter" not in r.detail for r in rows)
    assert json.loads(rows[2].detail)["kind"] == "preservation_2703f"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("role", [Role.MODERATOR, Role.CHILD_SAFETY_MODERATOR, Role.AUDITOR, Role.PLATFORM])
async def test_other_roles_may_not_hold(api: httpx.AsyncClient, api_keys: dict, engine: Engine, role: Role) -> None:
    response = await api.post(f"/v1/cases/{new_case_ref(engine)}/holds", json={"reason": "x"},
                              headers=headers(api_keys, role))
    assert response.status_code == 403


async def test_a_hold_needs_a_reason_and_a_case_of_ones_own(api: httpx.AsyncClient, api_keys: dict,
                                                            engine: Engine) -> None:
    manager = headers(api_keys, Role.MODERATOR_MANAGER)
    case_ref = new_case_ref(engine)
    blank = await api.post(f"/v1/cases/{case_ref}/holds", json={"kind": "legal", "reason": "  "}, headers=manager)
    assert blank.status_code == 422 and "reason" in blank.text
    bad_kind = await api.post(f"/v1/cases/{case_ref}/holds", json={"kind": "forever", "reason": "x"},
                              headers=manager)
    assert bad_kind.status_code == 422 and "kind" in bad_kind.text
    theirs = new_case_ref(engine, OTHER_ORG)
    assert (await api.post(f"/v1/cases/{theirs}/holds", json={"reason": "x"}, headers=manager)).status_code == 404
    missing = await api.delete(f"/v1/cases/{case_ref}/holds", params={"hold_id": 2**31 - 1}, headers=manager)
    assert missing.status_code == 404 and "hold_id" in missing.text


def test_filed_cases_are_kept_at_least_the_law_s_year(settings: Settings) -> None:
    acme = settings.orgs.get(ORG)
    with pytest.raises(ValidationError) as refused:
        OrgSettings.model_validate({**acme.model_dump(), "retention": {"filed_case_years": 0}})
    assert "retention.filed_case_years" in str(refused.value)
    with pytest.raises(ValidationError, match="dismissed_case_days"):
        RetentionSettings(dismissed_case_days=0)
    longer = acme.model_copy(update={"retention": RetentionSettings(filed_case_years=3, dismissed_case_days=14)})
    reread = OrgDirectory.model_validate({"orgs": {ORG: longer}})
    assert reread.get(ORG).retention.filed_case_years == 3
    assert "[orgs.acme.retention]\nfiled_case_years = 3\ndismissed_case_days = 14" in orgs_toml([longer])


def test_a_year_is_a_calendar_year_and_29_february_never_shortens_it() -> None:
    assert add_years(datetime(2027, 3, 5, 10, tzinfo=UTC), 1) == datetime(2028, 3, 5, 10, tzinfo=UTC)
    assert add_years(datetime(2028, 2, 29, 10, tzinfo=UTC), 1) == datetime(2029, 3, 1, 10, tzinfo=UTC)


async def test_a_case_links_the_evidence_it_preserved(api: httpx.AsyncClient, api_keys: dict,
                                                      engine: Engine) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": "linked-1", "creator_id": user},
                              files={"file": ("linked-1.png", synthetic_image(4242, size=(64, 48)), "image/png")})
    assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]

    def links() -> list[EvidenceLink]:
        with Session(engine) as session:
            return list(session.exec(select(EvidenceLink).where(EvidenceLink.case_ref == case_ref)).all())

    async def linked() -> list[EvidenceLink] | None:
        return links() or None

    found = await eventually(linked, timeout=60, what="the evidence link")
    case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()
    assert [link.sha256 for link in found] == [case["media"][0]["evidence"]["sha256"]]
    assert found[0].org_id == ORG
