"""A case filed through NCMEC's own error codes, injected by the sandbox: a transient refusal (1xxx) is retried
and the case files once; a permanent one (3xxx) stops the filing with the code for a reviewer, and a retry
after the cause is fixed files exactly one report."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from models.records import Role
from tests.helpers import Sandbox, eventually, headers
from tipline.synthetic import synthetic_image

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"


@pytest.fixture(autouse=True)
def calm_sandbox(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.state.faults.reset()


async def decided_case(api: httpx.AsyncClient, api_keys: dict) -> tuple[str, str]:
    creator = f"user-{uuid.uuid4().hex[:10]}"
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": "item-0", "creator_id": creator},
                              files={"file": ("item-0.png", synthetic_image(77), "image/png")})
    assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]
    reviewer = headers(api_keys, Role.ADMIN)

    async def preserved() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return bool(case.get("media")) and case["media"][0]["evidence"] is not None

    await eventually(preserved, what="the preserved media")
    decision = {"case_number": 1, "incident_type": INCIDENT,
                "media": [{"media_id": "item-0", "reported": True, "classification": "B1"}]}
    response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)
    assert response.status_code == 200, response.text
    return case_ref, creator


async def case_in(api: httpx.AsyncClient, api_keys: dict, case_ref: str, status: str) -> dict:
    async def reached() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()
        return case if case["status"] == status else None

    return await eventually(reached, timeout=60, what=f"the case {status}")


async def reports_of(sandbox: Sandbox, creator: str) -> list[dict]:
    return [r for r in await sandbox.reports() if f"<espIdentifier>{creator}</espIdentifier>" in r["report_xml"]]


async def test_a_transient_ncmec_error_is_retried_and_the_case_files_once(
    api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox
) -> None:
    # The next NCMEC call (the submit) answers 1100 "Save failed", as NCMEC does, and commits nothing.
    sandbox.state.faults.configure(error_rate=1.0, error_codes=[1100], error_count=1)
    case_ref, creator = await decided_case(api, api_keys)
    await case_in(api, api_keys, case_ref, "filed")
    assert sandbox.state.faults.settings.error_count == 0  # the error was injected, and retried past
    assert [r["status"] for r in await reports_of(sandbox, creator)] == ["finished"]


async def test_a_permanent_ncmec_error_needs_attention_and_a_retry_files_once(
    api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox
) -> None:
    sandbox.state.faults.configure(error_rate=1.0, error_codes=[3100], error_count=1)
    case_ref, creator = await decided_case(api, api_keys)
    case = await case_in(api, api_keys, case_ref, "needs_attention")
    assert "3100" in case["attention_reason"]
    assert await reports_of(sandbox, creator) == []  # refused: nothing was opened at NCMEC

    # Once NCMEC grants the account its submission rights, a reviewer retries.
    response = await api.post(f"/v1/cases/{case_ref}/retry", json={"case_number": 1},
                              headers=headers(api_keys, Role.ADMIN))
    assert response.status_code == 200, response.text
    await case_in(api, api_keys, case_ref, "filed")
    assert [r["status"] for r in await reports_of(sandbox, creator)] == ["finished"]
