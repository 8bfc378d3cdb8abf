"""Timeline entries the audit-trail case does not reach: media the worker fetched and preserved from the
platform's URL, the claims reviewers made on the case (who took it, who let it go), and both lives of a user whose
workflow closed and started again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from models.records import Role
from tests.helpers import FakePlatform, eventually, fake_platform, headers
from tipline.case_histories import fetch_case_histories
from tipline.synthetic import synthetic_image

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def platform() -> AsyncIterator[FakePlatform]:
    async with fake_platform() as served:
        yield served


async def test_media_preserved_from_a_url_and_each_claim_are_on_the_timeline(
    api: httpx.AsyncClient, api_keys: dict, platform: FakePlatform
) -> None:
    name = uuid.uuid4().hex[:12]
    url = platform.add_bytes(name, synthetic_image(9_100_001, size=(48, 40)))
    response = await api.post("/v1/content", headers=headers(api_keys, Role.PLATFORM),
                              json={"content_id": f"c-{name}", "creator_id": f"user-{name}", "media_url": url})
    assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]
    moderator = headers(api_keys, Role.CHILD_SAFETY_MODERATOR)
    manager = headers(api_keys, Role.MODERATOR_MANAGER)

    async def analysed() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=manager)).json()
        return bool(case["media"]) and case["media"][0]["analysis"] is not None

    await eventually(analysed, what="the item fetched, preserved and hashed")
    claimed = await api.post(f"/v1/cases/{case_ref}/claim", json={"case_number": 1}, headers=moderator)
    assert claimed.status_code == 200, claimed.text
    released = await api.delete(f"/v1/cases/{case_ref}/claim", params={"case_number": 1}, headers=moderator)
    assert released.status_code == 204, released.text

    timeline = (await api.get(f"/v1/cases/{case_ref}/timeline", headers=manager)).json()
    [preserved] = [e for e in timeline["entries"] if e["kind"] == "media.preserved"]
    assert preserved["detail"]["media_id"] == f"c-{name}" and preserved["detail"]["sha256"]
    claims = [e for e in timeline["entries"] if e["kind"].startswith("claim.")]
    assert [e["kind"] for e in claims] == ["claim.claim", "claim.release"], claims
    assert all(e["actor"] == claims[0]["actor"] and e["source"] == "database" for e in claims)
    kinds = [e["kind"] for e in timeline["entries"]]
    assert kinds.index("content.arrived") < kinds.index("media.preserved") < kinds.index("claim.claim")


async def test_the_histories_of_a_user_whose_workflow_closed_and_started_again_hold_both_lives(
    api: httpx.AsyncClient, api_keys: dict, temporal_client: Client
) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"

    async def upload(seed: int) -> str:
        response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                                  data={"content_id": f"m-{uuid.uuid4().hex[:8]}", "creator_id": user},
                                  files={"file": ("a.png", synthetic_image(seed), "image/png")})
        assert response.status_code == 202, response.text
        return response.json()["case_ref"]

    case_ref = await upload(9_100_101)
    admin = headers(api_keys, Role.ADMIN)

    async def analysed() -> bool:
        media = (await api.get(f"/v1/cases/{case_ref}", headers=admin)).json().get("media")
        return bool(media) and media[0]["analysis"] is not None

    await eventually(analysed, what="the first case's item hashed")  # else it would move on to the next case
    dismissed = await api.post(f"/v1/cases/{case_ref}/dismissal", headers=admin,
                               json={"case_number": 1, "reason": "not apparent CSAM"})
    assert dismissed.status_code == 200, dismissed.text
    first_life = await asyncio.wait_for(temporal_client.get_workflow_handle(case_ref).result(), 30)
    assert first_life["status"] == "dismissed"  # the user had nothing else open: the workflow closed
    first_run = (await temporal_client.get_workflow_handle(case_ref).describe()).run_id

    # The user's next content starts the workflow again under the same id, with no link back to the first life.
    assert await upload(9_100_102) == case_ref

    async def both_lives() -> list[str] | None:
        runs = [r.run_id for r in (await fetch_case_histories(temporal_client, case_ref)).runs
                if r.workflow_type == "CaseWorkflow"]
        return runs if len(runs) >= 2 else None

    runs = await eventually(both_lives, timeout=30, what="both lives of the user's workflow")
    assert runs[0] == first_run and len(set(runs)) == len(runs)  # oldest first, each run once
