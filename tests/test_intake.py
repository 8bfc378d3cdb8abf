"""One case per user: concurrent arrivals, follow-up cases after a filing, and cases with long lives."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from lxml import etree
from sqlalchemy import Engine
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from models.records import Role
from tests.helpers import Sandbox, eventually, fake_platform, headers
from tipline.codec import data_converter
from tipline.settings import Settings
from tipline.synthetic import synthetic_image
from tipline.temporal import temporal_binary
from worker import case_worker
from workflows import search_attributes as sa

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"


async def upload(api: httpx.AsyncClient, api_keys: dict, creator: str, content_id: str, seed: int) -> str:
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": content_id, "creator_id": creator},
                              files={"file": (f"{content_id}.png", synthetic_image(seed, size=(64, 48)), "image/png")})
    assert response.status_code == 202, response.text
    return response.json()["case_ref"]


async def media_count(api: httpx.AsyncClient, api_keys: dict, case_ref: str, expected: int) -> dict | None:
    case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()
    return case if len(case.get("media", [])) == expected else None


async def file_case(api: httpx.AsyncClient, api_keys: dict, case_ref: str, media_ids: list[str],
                    case_number: int = 1) -> dict:
    decision = {"case_number": case_number, "incident_type": INCIDENT,
                "media": [{"media_id": m, "reported": True} for m in media_ids]}
    response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=headers(api_keys, Role.ADMIN))
    assert response.status_code == 200, response.text

    async def filed() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", params={"case_number": case_number},
                              headers=headers(api_keys, Role.ADMIN))).json()
        assert case["status"] != "needs_attention", case["attention_reason"]
        return case if case["status"] == "filed" else None

    return await eventually(filed, timeout=60, what="the filed case")


async def test_fifty_concurrent_items_for_one_user_make_one_case(
    api: httpx.AsyncClient, api_keys: dict, temporal_client: Client
) -> None:
    creator = f"user-{uuid.uuid4().hex[:10]}"
    refs = await asyncio.gather(*(upload(api, api_keys, creator, f"item-{n}", n) for n in range(50)))
    assert len(set(refs)) == 1
    case = await eventually(lambda: media_count(api, api_keys, refs[0], 50), what="all 50 items in the case")
    assert sorted(m["media_id"] for m in case["media"]) == sorted(f"item-{n}" for n in range(50))
    runs = [w async for w in temporal_client.list_workflows(f'WorkflowId = "{refs[0]}"')]
    assert [r.status for r in runs] == [WorkflowExecutionStatus.RUNNING]


async def test_content_after_a_filing_opens_a_follow_up_case_naming_the_earlier_report(
    api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox
) -> None:
    creator = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = await upload(api, api_keys, creator, "first", 1)
    await eventually(lambda: media_count(api, api_keys, case_ref, 1), what="the first item")
    first = await file_case(api, api_keys, case_ref, ["first"])

    assert await upload(api, api_keys, creator, "second", 2) == case_ref

    async def follow_up() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()
        return case if case["case_number"] == 2 and case["media"] else None

    case = await eventually(follow_up, what="the follow-up case")
    assert case["prior_report_ids"] == [first["filing"]["report_id"]]
    assert [m["media_id"] for m in case["media"]] == ["second"]
    second = await file_case(api, api_keys, case_ref, ["second"], case_number=2)
    [report] = [r for r in await sandbox.reports() if r["report_id"] == second["filing"]["report_id"]]
    prior = etree.fromstring(report["report_xml"].encode()).findtext("personOrUserReported/priorCTReports")
    assert prior == str(first["filing"]["report_id"])


@pytest.fixture
async def low_history_limit(settings: Settings, engine: Engine) -> AsyncIterator[tuple[httpx.AsyncClient, Client]]:
    """A dev server of its own that suggests continue-as-new after 40 events, with a worker and an API."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=[key for key, _ in sa.ALL], data_converter=data_converter(settings),
        dev_server_log_level="error",
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"],
    )
    local = settings.model_copy(update={"task_queue": f"tipline-long-{uuid.uuid4().hex[:8]}"})
    app = create_app(local, temporal=env.client, engine=engine)
    try:
        async with case_worker(env.client, local, engine), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tipline.test"
        ) as api:
            yield api, env.client
    finally:
        await env.shutdown()


async def test_a_long_lived_case_continues_as_new_and_keeps_every_item(
    low_history_limit: tuple[httpx.AsyncClient, Client], api_keys: dict
) -> None:
    api, client = low_history_limit
    creator = f"user-{uuid.uuid4().hex[:10]}"
    items = [f"item-{n}" for n in range(60)]
    for n, content_id in enumerate(items):
        case_ref = await upload(api, api_keys, creator, content_id, n)
    case = await eventually(lambda: media_count(api, api_keys, case_ref, len(items)), what="every item")
    assert sorted(m["media_id"] for m in case["media"]) == sorted(items)
    assert case["case_number"] == 1

    async def continued() -> list | None:
        # Visibility is eventually consistent: a run that just continued may still be listed as running.
        runs = [w async for w in client.list_workflows(f'WorkflowId = "{case_ref}"')]
        statuses = sorted(r.status == WorkflowExecutionStatus.RUNNING for r in runs)
        return runs if len(runs) > 1 and statuses.count(True) == 1 else None

    runs = await eventually(continued, what="continue-as-new, one run left running")
    assert all(r.status == WorkflowExecutionStatus.CONTINUED_AS_NEW for r in runs
               if r.status != WorkflowExecutionStatus.RUNNING)

    again = await upload(api, api_keys, creator, "item-0", 0)  # a repeat after continue-as-new is still a repeat
    assert again == case_ref

    async def all_analysed() -> dict | None:
        # Items not yet hashed when the reviewer decides move to the user's next case; here all belong to case 1.
        current = await media_count(api, api_keys, case_ref, len(items))
        return current if current and all(m["analysis"] for m in current["media"]) else None

    await eventually(all_analysed, what="every item hashed and matched")
    filed = await file_case(api, api_keys, case_ref, items[:2])
    assert len(filed["media"]) == len(items) and len(filed["filing"]["files"]) == 2


def test_a_replayed_first_step_numbers_the_case_as_before(engine: Engine) -> None:
    """The run's own queue row, written before a crash, must not make the replay call the case number 2."""
    from datetime import UTC, datetime

    from activities.case_index import CaseIndexActivities
    from models.case import CaseStatus
    from models.filing import CaseSummaryUpdate

    index = CaseIndexActivities(engine)
    workflow_id = f"case-acme-{uuid.uuid4().hex}"
    assert index.user_history(workflow_id).case_number == 1
    now = datetime.now(UTC)
    row = CaseSummaryUpdate(workflow_id=workflow_id, case_number=1, org_id="acme", status=CaseStatus.AWAITING_REVIEW,
                            urgent=False, urgency_level="normal", urgency_score=0, review_deadline=None,
                            escalated_at=None, media_count=1, ncmec_report_id=None, ncmec_deadline=None,
                            opened_at=now, updated_at=now)
    index.publish_case_summary(row)
    assert index.user_history(workflow_id).case_number == 1
    index.publish_case_summary(row.model_copy(update={"status": CaseStatus.FILED}))
    assert index.user_history(workflow_id).case_number == 2


async def test_evidence_survives_the_platform_deleting_the_original(
    api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox
) -> None:
    creator = f"user-{uuid.uuid4().hex[:10]}"
    async with fake_platform() as platform:
        url = platform.add("original", 4242)
        original = platform.media["original"]
        response = await api.post("/v1/content", headers=headers(api_keys, Role.PLATFORM),
                                  json={"content_id": "doomed", "creator_id": creator, "media_url": url})
        case_ref = response.json()["case_ref"]

        async def preserved() -> dict | None:
            case = await media_count(api, api_keys, case_ref, 1)
            return case if case and case["media"][0]["evidence"] else None

        await eventually(preserved, what="the item preserved")
        del platform.media["original"]  # the platform deletes it, as platforms do with reported content
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 404

    case = await file_case(api, api_keys, case_ref, ["doomed"])
    [report] = [r for r in await sandbox.reports() if r["report_id"] == case["filing"]["report_id"]]
    assert [f["md5"] for f in report["files"]] == [hashlib.md5(original).hexdigest()]
