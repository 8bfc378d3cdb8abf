"""Every closed case of a user stays readable by its number, from its record in the database: the user's
workflow keeps only the latest one closed, and may itself be gone from Temporal long after."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine
from sqlmodel import Session

from activities.case_index import CaseIndexActivities
from models.case import CaseState, CaseStatus, Dismissal
from models.filing import CaseSummaryUpdate
from models.records import ClosedCase, Role
from tests.helpers import ORG, OTHER_ORG, headers
from tipline.registry import RefRegistry
from tipline.settings import Settings


def update_for(case: CaseState, *, with_case: bool = True) -> CaseSummaryUpdate:
    now = datetime.now(UTC)
    return CaseSummaryUpdate(workflow_id=case.workflow_id, case_number=case.case_number, org_id=case.org_id,
                             status=case.status, urgent=False, urgency_level="normal", urgency_score=0,
                             review_deadline=None, escalated_at=None, media_count=0,
                             ncmec_report_id=case.filing.report_id, ncmec_deadline=None, opened_at=case.opened_at,
                             updated_at=now, case=case if with_case else None)


async def test_any_closed_case_of_the_user_is_read_by_its_number_and_only_by_its_org(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, engine: Engine
) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = RefRegistry.from_settings(settings, engine).case_ref_for(ORG, user)
    index = CaseIndexActivities(engine)
    opened = datetime.now(UTC)
    first = CaseState(workflow_id=case_ref, case_number=1, org_id=ORG, user_id=user, opened_at=opened,
                      status=CaseStatus.DISMISSED,
                      dismissal=Dismissal(reviewer_id="admin:1", case_number=1, reason="not apparent CSAM"))
    second = CaseState(workflow_id=case_ref, case_number=2, org_id=ORG, user_id=user, opened_at=opened,
                       status=CaseStatus.FILED)
    second.filing.report_id = 4242
    third = CaseState(workflow_id=case_ref, case_number=3, org_id=ORG, user_id=user, opened_at=opened)
    for case in (first, second):
        index.publish_case_summary(update_for(case))
    index.publish_case_summary(update_for(third))  # open: the workflow holds it, nothing is recorded
    index.publish_case_summary(update_for(second.model_copy(update={"case_number": 4}), with_case=False))

    reviewer = headers(api_keys, Role.ADMIN)
    one = await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1}, headers=reviewer)
    assert one.status_code == 200, one.text
    assert one.json()["status"] == "dismissed" and one.json()["dismissal"]["reason"] == "not apparent CSAM"
    two = await api.get(f"/v1/cases/{case_ref}", params={"case_number": 2}, headers=reviewer)
    assert two.status_code == 200 and two.json()["filing"]["report_id"] == 4242
    for missing in (3, 4, 5):
        answer = await api.get(f"/v1/cases/{case_ref}", params={"case_number": missing}, headers=reviewer)
        assert answer.status_code == 404, (missing, answer.text)
    for org in (OTHER_ORG, "a", "acme-kids"):  # orgs whose ids prefix one another, and an unrelated one
        for role in (Role.ADMIN, Role.CHILD_SAFETY_MODERATOR):
            answer = await api.get(f"/v1/cases/{case_ref}", params={"case_number": 2},
                                   headers=headers(api_keys, role, org))
            assert answer.status_code == 404, (org, role, answer.text)


async def test_a_closed_case_recorded_under_another_org_is_not_shown_under_this_one(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, engine: Engine
) -> None:
    """The row's own org is checked, not only the case ref's: a record can never leak across orgs."""
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = RefRegistry.from_settings(settings, engine).case_ref_for(ORG, user)
    stray = CaseState(workflow_id=case_ref, case_number=1, org_id=OTHER_ORG, user_id=user,
                      opened_at=datetime.now(UTC), status=CaseStatus.FILED)
    with Session(engine) as session:
        session.add(ClosedCase(workflow_id=case_ref, case_number=1, org_id=OTHER_ORG, status="filed",
                               closed_at=datetime.now(UTC), state_json=stray.model_dump_json()))
        session.commit()
    answer = await api.get(f"/v1/cases/{case_ref}", params={"case_number": 1}, headers=headers(api_keys, Role.ADMIN))
    assert answer.status_code == 404, answer.text
