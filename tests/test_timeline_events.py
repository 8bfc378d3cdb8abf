"""Timeline entries the audit-trail case does not reach: media the worker fetched and preserved from the
platform's URL, and the claims reviewers made on the case (who took it, who let it go)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from models.records import Role
from tests.helpers import FakePlatform, eventually, fake_platform, headers
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
