"""A user's workflow continues as new at any safe point: while the platform's media list is gathered, while a
case awaits review, while a case files; and on its own history length even if Temporal never suggests it.
Every item is accounted for: in exactly one case, preserved, hashed and matched.

Set ``TIPLINE_RECORD_HISTORIES=1`` to export a run that continued as new while a case filed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.deps import create_api_key
from models.case import CaseStart, ContentItem, MediaSource
from models.records import Role
from tests.conftest import make_org
from tests.helpers import ORG, PlatformCallbacks, Sandbox, WebhookReceiver, eventually, headers
from tipline.codec import data_converter
from tipline.evidence import EvidenceStore
from tipline.registry import RefRegistry
from tipline.settings import Settings, orgs_toml
from tipline.synthetic import synthetic_image
from tipline.temporal import temporal_binary
from worker import case_worker
from workflows import search_attributes as sa

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
HISTORIES = Path(__file__).parent / "fixtures" / "histories"
LONG_LIFE_ORG = "longlife"
# How many items the platform lists for the user. The issue asks for 20,000; see the README for the gap.
PLATFORM_ITEMS = int(os.environ.get("TIPLINE_CAN_PLATFORM_ITEMS", "600"))
PAGE = 50
SUGGEST_AFTER_EVENTS = int(os.environ.get("TIPLINE_CAN_SUGGEST_EVENTS", "100"))
# Polling a case of thousands of items costs the worker too: poll such a case less often, and wait longer. Each
# poll of 20,000 items is seconds of this one process's time (the query's 20 MB, the API's view of it).
POLL = 1.0 if PLATFORM_ITEMS <= 1000 else max(5.0, PLATFORM_ITEMS / 2000)
SLACK = max(1.0, PLATFORM_ITEMS / 1000)
FAILED_ENDINGS = {WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.TERMINATED,
                  WorkflowExecutionStatus.TIMED_OUT}


@contextlib.asynccontextmanager
async def own_dev_server(settings: Settings, engine: Engine, *extra_args: str, orgs_file: Path | None = None
                         ) -> AsyncIterator[tuple[httpx.AsyncClient, Client, Settings]]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), search_attributes=[key for key, _ in sa.ALL],
        data_converter=data_converter(settings), dev_server_log_level="error", dev_server_extra_args=list(extra_args))
    local = settings.model_copy(update={"task_queue": f"tipline-can-{uuid.uuid4().hex[:8]}",
                                        "orgs_file": orgs_file or settings.orgs_file})
    local.__dict__.pop("orgs", None)  # a copy keeps the cached org directory: read the orgs file given here
    app = create_app(local, temporal=env.client, engine=engine)
    try:
        async with case_worker(env.client, local, engine), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tipline.test"
        ) as api:
            yield api, env.client, local
    finally:
        await env.shutdown()


async def runs_of(client: Client, workflow_id: str) -> list:
    return [w async for w in client.list_workflows(f'WorkflowId = "{workflow_id}"')]


async def continued_inputs(client: Client, workflow_id: str) -> list[tuple[str, CaseStart]]:
    """Each run that continued as new, with what it carried over."""
    carried = []
    for run in await runs_of(client, workflow_id):
        if run.status is not WorkflowExecutionStatus.CONTINUED_AS_NEW:
            continue
        history = await client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history()
        last = history.events[-1].workflow_execution_continued_as_new_event_attributes
        [start] = await client.data_converter.decode(last.input.payloads, [CaseStart])
        carried.append((run.run_id, start))
    return carried


async def test_one_user_with_many_platform_items_and_a_steady_inflow_is_gathered_reviewed_and_filed(
    settings: Settings, engine: Engine, sandbox: Sandbox, platform_callbacks: PlatformCallbacks,
    webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    # An org of its own: what this case reports joins that org's bank, not one other tests match against.
    orgs_file = tmp_path / "orgs.toml"
    orgs_file.write_text(orgs_toml([make_org(LONG_LIFE_ORG, webhook_receiver, platform_callbacks)]))
    keys = {role: create_api_key(engine, LONG_LIFE_ORG, role, f"test {role}") for role in (Role.PLATFORM, Role.ADMIN)}
    user = f"user-{uuid.uuid4().hex[:10]}"
    listed = [f"p-{n}" for n in range(PLATFORM_ITEMS)]
    for n, name in enumerate(listed):
        platform_callbacks.files[f"{user}-{name}"] = synthetic_image(3_000_000 + n, size=(32, 24))
    platform_callbacks.user_media[user] = [
        [{"content_id": name, "media_url": f"{platform_callbacks.files_url}/{user}-{name}"}
         for name in listed[start:start + PAGE]] for start in range(0, len(listed), PAGE)]
    platform = {"X-API-Key": keys[Role.PLATFORM]}
    reviewer = {"X-API-Key": keys[Role.ADMIN]}
    uploaded: list[str] = []
    began = time.monotonic()

    suggest = f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER_EVENTS}"
    async with own_dev_server(settings, engine, "--dynamic-config-value", suggest,
                              orgs_file=orgs_file) as (api, client, _):
        async def upload(content_id: str) -> str:
            response = await api.post("/v1/content/upload", headers=platform,
                                      data={"content_id": content_id, "creator_id": user},
                                      files={"file": (f"{content_id}.png", synthetic_image(
                                          4_000_000 + len(uploaded), size=(32, 24)), "image/png")})
            assert response.status_code == 202, response.text
            uploaded.append(content_id)
            return response.json()["case_ref"]

        async def case(number: int) -> dict:
            response = await api.get(f"/v1/cases/{case_ref}", params={"case_number": number}, headers=reviewer)
            assert response.status_code == 200, response.text
            return response.json()

        inflow_stopped = asyncio.Event()

        async def steady_inflow() -> None:
            # Stopped between uploads, never cancelled mid-request: an upload the API accepted is always counted.
            while not inflow_stopped.is_set():
                await upload(f"u-{len(uploaded)}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inflow_stopped.wait(), 0.2)

        case_ref = await upload("u-0")
        inflow = asyncio.create_task(steady_inflow())
        try:
            async def gathered() -> dict | None:
                current = await case(1)
                analysed = {m["media_id"] for m in current["media"] if m["analysis"] is not None}
                return current if current["media_listed"] and analysed >= set(listed) else None

            await eventually(gathered, timeout=240 * SLACK, interval=POLL, what="the platform's items gathered")
            sandbox.state.faults.configure(latency_ms=500)  # filing takes seconds, while content keeps arriving
            decision = {"case_number": 1, "incident_type": INCIDENT,
                        "media": [{"media_id": m, "reported": True, "classification": "B1"} for m in listed[:3]]}
            response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)
            assert response.status_code == 200, response.text

            async def first_filed() -> dict | None:
                current = await case(1)
                assert current["status"] != "needs_attention", current["attention_reason"]
                return current if current["status"] == "filed" else None

            first = await eventually(first_filed, timeout=120 * SLACK, interval=POLL, what="case 1 filed")
        finally:
            inflow_stopped.set()
            await inflow
            sandbox.state.faults.reset()

        async def second_settled() -> dict | None:
            current = await case(2)
            in_first = {m["media_id"] for m in first["media"]}
            expected = (set(listed) | set(uploaded)) - in_first
            analysed = {m["media_id"] for m in current["media"] if m["analysis"] is not None}
            return current if analysed == expected else None

        second = await eventually(second_settled, timeout=60 * SLACK, interval=POLL, what="case 2 holding the rest")
        response = await api.post(f"/v1/cases/{case_ref}/decision", headers=reviewer, json={
            "case_number": 2, "incident_type": INCIDENT,
            "media": [{"media_id": second["media"][0]["media_id"], "reported": True, "classification": "B1"}]})
        assert response.status_code == 200, response.text

        async def second_filed() -> dict | None:
            current = await case(2)
            return current if current["status"] == "filed" else None

        await eventually(second_filed, timeout=60 * SLACK, interval=POLL, what="case 2 filed")
        elapsed = time.monotonic() - began

        first_ids = [m["media_id"] for m in first["media"]]
        second_ids = [m["media_id"] for m in second["media"]]
        assert len(first_ids) + len(second_ids) == len(set(first_ids) | set(second_ids))  # no item in both
        assert set(first_ids) | set(second_ids) == set(listed) | set(uploaded)  # and none lost
        assert all(m["evidence"] and m["analysis"] for m in first["media"] + second["media"])
        assert second["prior_report_ids"] == [first["filing"]["report_id"]]

        runs = await runs_of(client, case_ref)
        assert not {r.status for r in runs} & FAILED_ENDINGS
        carried = await continued_inputs(client, case_ref)
        assert any(start.listing_media for _, start in carried), "continued as new while gathering"
        while_filing = [(run_id, start) for run_id, start in carried
                        if any(c.filing_running for c in start.decided_cases)]
        assert while_filing, "continued as new while a case filed"
        assert any(start.state and start.state.media for _, start in carried if not start.listing_media)
        if os.environ.get("TIPLINE_RECORD_HISTORIES") == "1":
            run_id, _ = while_filing[0]
            history = await client.get_workflow_handle(case_ref, run_id=run_id).fetch_history()
            (HISTORIES / "continued_as_new_while_filing.json").write_text(history.to_json())
        print(f"\n{PLATFORM_ITEMS} platform items + {len(uploaded)} uploads, {len(runs)} runs, {elapsed:.0f} s")


async def test_a_long_history_continues_as_new_even_when_temporal_never_suggests_it(
    settings: Settings, engine: Engine, api_keys: dict
) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = RefRegistry.from_settings(settings, engine).case_ref_for(ORG, user)
    store = EvidenceStore.from_settings(settings)

    def item(n: int) -> ContentItem:
        return ContentItem(content_id=f"item-{n}", org_id=ORG, user_id=user, received_at=datetime.now(UTC),
                           media=MediaSource(evidence=store.put_bytes(synthetic_image(5_000_000 + n, size=(32, 24)))))

    # Temporal's own suggestion is far away: only the workflow's own limit can make it continue as new.
    async with own_dev_server(settings, engine, "--dynamic-config-value",
                              "limit.historyCount.suggestContinueAsNew=1000000") as (api, client, local):
        await client.start_workflow("CaseWorkflow", CaseStart(org_id=ORG, user_id=user, history_event_limit=150),
                                    id=case_ref, task_queue=local.task_queue, start_signal="add_content",
                                    start_signal_args=[item(0)])
        for n in range(1, 60):
            await client.get_workflow_handle(case_ref).signal("add_content", item(n))

        async def every_item() -> dict | None:
            response = await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))
            current = response.json()
            return current if sum(1 for m in current["media"] if m["analysis"]) == 60 else None

        current = await eventually(every_item, timeout=60, what="all 60 items hashed and matched")
        assert sorted(m["media_id"] for m in current["media"]) == sorted(f"item-{n}" for n in range(60))
        statuses = [r.status for r in await runs_of(client, case_ref)]
        assert WorkflowExecutionStatus.CONTINUED_AS_NEW in statuses
        assert not set(statuses) & FAILED_ENDINGS
