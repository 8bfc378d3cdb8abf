"""Operators find cases in Temporal by search attribute; nothing there or in the logs names the user."""

from __future__ import annotations

import io
import logging
import uuid

import httpx
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from models.records import Role
from tests.helpers import ORG, eventually, headers
from tipline.logging import configure_logging
from tipline.synthetic import synthetic_image


async def send_one(api: httpx.AsyncClient, api_keys: dict, creator: str) -> str:
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": f"{creator}-1", "creator_id": creator},
                              files={"file": ("private-name.png", synthetic_image(3), "image/png")})
    assert response.status_code == 202, response.text
    return response.json()["case_ref"]


async def test_an_operator_finds_cases_waiting_for_review_in_an_org(
    api: httpx.AsyncClient, api_keys: dict, temporal_client: Client
) -> None:
    creator = f"jane.doe+{uuid.uuid4().hex[:6]}@example.com"
    case_ref = await send_one(api, api_keys, creator)
    query = f'TiplineCaseStatus = "awaiting_review" AND TiplineOrg = "{ORG}" AND WorkflowId = "{case_ref}"'

    async def listed() -> list:
        return [w async for w in temporal_client.list_workflows(query)]

    [execution] = await eventually(listed, what="the case in Temporal's visibility")
    assert creator not in execution.id
    for value in execution.typed_search_attributes:
        assert creator not in str(value.value)
    handle = temporal_client.get_workflow_handle(case_ref)
    assert await (await handle.describe()).static_summary() == f"NCMEC case · org {ORG}"

    async def details() -> str:
        # The UI shows these "current details"; the SDK serves them through a built-in query.
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        return metadata.current_details if "awaiting review" in metadata.current_details else ""

    assert "Media: 1" in await eventually(details, what="current details")


async def test_logs_carry_ids_but_not_user_identifiers(api: httpx.AsyncClient, api_keys: dict) -> None:
    stream = io.StringIO()
    previous = logging.getLogger().handlers[:], logging.getLogger().level
    configure_logging("INFO")
    logging.getLogger().handlers[0].stream = stream  # type: ignore[attr-defined]
    try:
        creator = f"john.roe+{uuid.uuid4().hex[:6]}@example.com"
        case_ref = await send_one(api, api_keys, creator)

        async def logged() -> str:
            return stream.getvalue() if case_ref in stream.getvalue() else ""

        output = await eventually(logged, what="a log line about the case")
    finally:
        logging.getLogger().handlers[:], level = previous
        logging.getLogger().setLevel(level)
    assert '"org_id": "acme"' in output
    assert creator not in output and "private-name" not in output
