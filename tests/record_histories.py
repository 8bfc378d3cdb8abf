"""Records the replay fixtures in ``tests/fixtures/histories``: one real run on the dev server per workflow path.

    .venv/bin/python -m pytest tests/record_histories.py -q -p no:cacheprovider [-k NAME]

Not part of the suite (pytest collects only ``test_*.py``): each function below drives one path through the API
with the session's real parts (dev server, PostgreSQL, sandbox, worker), waits until the run has taken that
path, checks the history shows it, and writes the run's history as ``<name>.json``. ``tests/test_replay.py``
then replays every file on the code of the day. Record on the code whose histories must keep replaying (the
code before a workflow change), and add a function here for each new path. The data is synthetic.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from detection.banks import BankRepository, NewEntry
from detection.classifier import Priority, make_sandbox_image
from detection.media_hashes import hash_media
from models.records import Role
from tests.helpers import (
    OTHER_ORG,
    REVIEW_PAGE_ORG,
    FakePlatform,
    PlatformCallbacks,
    Sandbox,
    eventually,
    fake_platform,
    headers,
)
from tests.history_payloads import decrypt_in_place
from tipline import intake
from tipline.codec import data_converter
from tipline.settings import Settings
from tipline.synthetic import synthetic_image
from tipline.temporal import temporal_binary
from worker import case_worker
from workflows import search_attributes as sa

# TIPLINE_RECORD_HISTORIES_TO writes elsewhere, e.g. to try the recorder without touching the fixtures.
HISTORIES = Path(os.environ.get("TIPLINE_RECORD_HISTORIES_TO") or Path(__file__).parent / "fixtures" / "histories")
ORG = "acme"
INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
URGENT_INDICATORS = '{"live_session_active": true, "victim_age": 8}'


# ---- writing a history ----------------------------------------------------------------------------------------


async def save(client: Client, name: str, workflow_id: str, run_id: str | None = None, *,
               expect: tuple[EventType.ValueType, ...] = ()) -> WorkflowHistory:
    """Write the run's history as ``<name>.json`` once it holds every event type in ``expect``."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)

    async def complete() -> WorkflowHistory | None:
        history = await handle.fetch_history()
        seen = {event.event_type for event in history.events}
        return history if all(kind in seen for kind in expect) else None

    history = await eventually(complete, timeout=60, what=f"the history of {name}")
    assert client.data_converter.payload_codec is not None
    history = await decrypt_in_place(history, client.data_converter.payload_codec)
    await asyncio.to_thread(HISTORIES.mkdir, parents=True, exist_ok=True)
    # Compact: the fixtures are read by the replayer, not by people, and stay small in the repository.
    text = json.dumps(history.to_json_dict(), separators=(",", ":"))
    await asyncio.to_thread((HISTORIES / f"{name}.json").write_text, text + "\n")
    return history


COMPLETED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
CONTINUED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
TIMER_FIRED = EventType.EVENT_TYPE_TIMER_FIRED
UPDATE_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED


async def runs_of(client: Client, workflow_id: str, count: int) -> list[str]:
    """Run ids of the workflow, oldest first, once ``count`` runs exist and only the last may be open."""

    async def listed() -> list[Any] | None:
        runs = [w async for w in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
        closed = [r for r in runs if r.status != WorkflowExecutionStatus.RUNNING]
        return runs if len(runs) >= count and len(closed) >= count - 1 else None

    runs = await eventually(listed, timeout=60, what=f"{count} runs of {workflow_id}")
    return [r.run_id for r in sorted(runs, key=lambda r: r.start_time)]


# ---- playing the platform and the reviewer --------------------------------------------------------------------


async def case_of(api: httpx.AsyncClient, api_keys: dict, case_ref: str, org: str = ORG) -> dict:
    return (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN, org=org))).json()


async def case_when(api: httpx.AsyncClient, api_keys: dict, case_ref: str, ready: Callable[[dict], bool],
                    what: str, org: str = ORG) -> dict:
    async def probe() -> dict | None:
        case = await case_of(api, api_keys, case_ref, org)
        return case if "status" in case and ready(case) else None

    return await eventually(probe, timeout=60, what=what)


def settled(count: int) -> Callable[[dict], bool]:
    """Every one of ``count`` items is in the case and has been preserved (or failed to be) and analysed."""
    return lambda case: len(case["media"]) == count and all(
        m["preservation_error"] or (m["evidence"] and m["analysis"]) for m in case["media"])


async def upload(api: httpx.AsyncClient, api_keys: dict, creator: str, content_id: str, seed: int,
                 org: str = ORG, **form: str) -> str:
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM, org=org),
                              data={"content_id": content_id, "creator_id": creator, **form},
                              files={"file": (f"{content_id}.png", synthetic_image(seed, size=(64, 48)), "image/png")})
    assert response.status_code == 202, response.text
    return response.json()["case_ref"]


async def decide(api: httpx.AsyncClient, api_keys: dict, case_ref: str, media_ids: list[str], org: str = ORG,
                 **extra: object) -> None:
    decision = {"incident_type": INCIDENT,
                "media": [{"media_id": m, "reported": True, "classification": "B1"} for m in media_ids], **extra}
    response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision,
                              headers=headers(api_keys, Role.ADMIN, org=org))
    assert response.status_code == 200, response.text


def status_is(*statuses: str) -> Callable[[dict], bool]:
    return lambda case: case["status"] in statuses


def creator() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[FakePlatform]:
    async with fake_platform() as served:
        yield served


@pytest.fixture(autouse=True)
def calm(sandbox: Sandbox, platform_callbacks: PlatformCallbacks) -> Iterator[None]:
    yield
    sandbox.state.faults.reset()
    platform_callbacks.mode = "up"


@pytest.fixture
async def api_with(settings: Settings, temporal_client: Client, engine: Engine, worker: None
                   ) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """An API on the session's worker whose cases start with other settings (a short review window, …)."""
    clients: list[httpx.AsyncClient] = []

    async def make(**changes: Any) -> httpx.AsyncClient:
        app = create_app(settings.model_copy(update=changes), temporal=temporal_client, engine=engine)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


# ---- CaseWorkflow -------------------------------------------------------------------------------------------


async def test_uploaded_media_filed(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client) -> None:
    """Two uploaded (already preserved) items, both reported: one CyberTip, then banked."""
    user = creator()
    case_ref = await upload(api, api_keys, user, "item-1", 1)
    await upload(api, api_keys, user, "item-2", 2)
    await case_when(api, api_keys, case_ref, settled(2), "both items analysed")
    await decide(api, api_keys, case_ref, ["item-1", "item-2"])
    await save(temporal_client, "uploaded_media_filed", case_ref, expect=(COMPLETED,))


async def test_url_preservation(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                platform: FakePlatform) -> None:
    """Media sent by URL is fetched and preserved by the workflow; a link that is gone is kept with its reason."""
    user = creator()
    for content_id, seed in (("by-url-1", 11), ("by-url-2", 12)):
        body = {"content_id": content_id, "creator_id": user, "media_url": platform.add(f"{user}-{content_id}", seed)}
        response = await api.post("/v1/content", json=body, headers=headers(api_keys, Role.PLATFORM))
        assert response.status_code == 202, response.text
    gone = {"content_id": "by-url-gone", "creator_id": user, "media_url": f"{platform.url}/media/{user}-gone"}
    response = await api.post("/v1/content", json=gone, headers=headers(api_keys, Role.PLATFORM))
    case_ref = response.json()["case_ref"]
    case = await case_when(api, api_keys, case_ref, settled(3), "every link preserved or failed")
    assert [m["media_id"] for m in case["media"] if m["preservation_error"]] == ["by-url-gone"]
    await decide(api, api_keys, case_ref, ["by-url-1", "by-url-2"])
    await save(temporal_client, "url_preservation", case_ref, expect=(COMPLETED,))


async def test_platform_media_list(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                   platform_callbacks: PlatformCallbacks) -> None:
    """A new case lists the user's media at the platform page by page and preserves each item by its URL."""
    user = creator()
    for name, seed in (("old-1", 31), ("old-2", 32)):
        platform_callbacks.files[f"{user}-{name}"] = synthetic_image(seed, size=(64, 48))

    def listed(name: str) -> dict:
        return {"content_id": name, "media_url": f"{platform_callbacks.files_url}/{user}-{name}",
                "file_name": f"{name}.png", "content_type": "image/png"}

    platform_callbacks.user_media[user] = [[listed("old-1"), listed("item-1")], [listed("old-2"), listed("old-3")]]
    case_ref = await upload(api, api_keys, user, "item-1", 21, org=OTHER_ORG)
    await case_when(api, api_keys, case_ref, lambda c: c["media_listed"] and settled(4)(c), "the listed media",
                    org=OTHER_ORG)
    response = await api.post(f"/v1/cases/{case_ref}/dismissal", json={"reason": "Recorded path"},
                              headers=headers(api_keys, Role.ADMIN, org=OTHER_ORG))
    assert response.status_code == 200, response.text
    await save(temporal_client, "platform_media_list", case_ref, expect=(COMPLETED,))


async def test_conversation_attached(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client) -> None:
    """A conversation thread (sent twice, the second copy replacing the first) filed as a supplemental CSV."""
    user = creator()
    case_ref = await upload(api, api_keys, user, "item-1", 41)
    messages = [{"message_id": "m1", "sent_at": "2026-01-02T10:00:00+00:00", "sender": "friend-1",
                 "recipient": user, "content": "synthetic message one"}]
    for more in ([], [{"message_id": "m2", "sent_at": "2026-01-02T10:05:00+00:00", "sender": user,
                       "recipient": "friend-1", "content": "synthetic message two"}]):
        sent = await api.post("/v1/content/conversations", headers=headers(api_keys, Role.PLATFORM),
                              json={"creator_id": user, "thread_id": "thread-1", "messages": messages + more})
        assert sent.status_code == 202, sent.text
    await case_when(api, api_keys, case_ref,
                    lambda c: settled(1)(c) and len(c["conversations"]) == 1
                    and len(c["conversations"][0]["messages"]) == 2, "the thread in the case")
    await decide(api, api_keys, case_ref, ["item-1"], attach_conversations=["thread-1"])
    await save(temporal_client, "conversation_attached", case_ref, expect=(COMPLETED,))


async def test_dismissal(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client) -> None:
    user = creator()
    case_ref = await upload(api, api_keys, user, "item-1", 51)
    await case_when(api, api_keys, case_ref, settled(1), "the item analysed")
    response = await api.post(f"/v1/cases/{case_ref}/dismissal", json={"reason": "Benign synthetic pattern"},
                              headers=headers(api_keys, Role.ADMIN))
    assert response.status_code == 200, response.text
    await save(temporal_client, "dismissal", case_ref, expect=(COMPLETED,))


async def test_enrichment_retries(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                  platform_callbacks: PlatformCallbacks) -> None:
    """The platform's enrichment callback fails a few times: filing waits, visibly, then goes on."""
    user = creator()
    case_ref = await upload(api, api_keys, user, "item-1", 61, org=OTHER_ORG)
    await case_when(api, api_keys, case_ref, settled(1), "the item analysed", org=OTHER_ORG)
    platform_callbacks.mode = "down"
    before = platform_callbacks.verified_requests
    await decide(api, api_keys, case_ref, ["item-1"], org=OTHER_ORG)
    await eventually(lambda: _async(platform_callbacks.verified_requests >= before + 3), what="three refused calls")
    platform_callbacks.mode = "up"
    await case_when(api, api_keys, case_ref, status_is("filed"), "the filing", org=OTHER_ORG)
    await save(temporal_client, "enrichment_retries", case_ref, expect=(COMPLETED, TIMER_FIRED))


async def test_needs_attention_then_retry(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                          platform_callbacks: PlatformCallbacks,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Enrichment fails past the policy's patience: the case needs attention; a reviewer retries; it is filed."""
    short = intake.filing_policy

    def impatient(settings: Settings) -> Any:
        return short(settings).model_copy(update={"enrichment_patience": timedelta(seconds=1)})

    monkeypatch.setattr(intake, "filing_policy", impatient)
    user = creator()
    case_ref = await upload(api, api_keys, user, "item-1", 71, org=OTHER_ORG)
    await case_when(api, api_keys, case_ref, settled(1), "the item analysed", org=OTHER_ORG)
    platform_callbacks.mode = "down"
    await decide(api, api_keys, case_ref, ["item-1"], org=OTHER_ORG)
    await case_when(api, api_keys, case_ref, status_is("needs_attention"), "needs attention", org=OTHER_ORG)
    platform_callbacks.mode = "up"
    response = await api.post(f"/v1/cases/{case_ref}/retry", headers=headers(api_keys, Role.ADMIN, org=OTHER_ORG))
    assert response.status_code == 200, response.text
    await case_when(api, api_keys, case_ref, status_is("filed"), "the filing after the retry", org=OTHER_ORG)
    await save(temporal_client, "needs_attention_then_retry", case_ref, expect=(COMPLETED,))


async def test_refile_after_report_deleted(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                           sandbox: Sandbox) -> None:
    """NCMEC deletes the unfinished report (its 24 h expired): it is abandoned and the CyberTip filed afresh."""
    user = creator()
    case_ref = await upload(api, api_keys, user, "item-1", 81)
    await upload(api, api_keys, user, "item-2", 82)
    await case_when(api, api_keys, case_ref, settled(2), "both items analysed")
    sandbox.state.faults.configure(latency_ms=300)
    await decide(api, api_keys, case_ref, ["item-1", "item-2"])
    first = await case_when(api, api_keys, case_ref, lambda c: c["filing"]["report_id"] is not None, "a report")
    await sandbox.http.post(f"{sandbox.url}/_sandbox/clock", json={"advance_seconds": 25 * 3600})
    sandbox.state.faults.configure(latency_ms=0)
    case = await case_when(api, api_keys, case_ref, status_is("filed"), "the refiled case")
    assert case["filing"]["abandoned_report_ids"] == [first["filing"]["report_id"]]
    await save(temporal_client, "refile_after_report_deleted", case_ref, expect=(COMPLETED,))


async def test_review_timer_fires(api_with: Callable[..., Awaitable[httpx.AsyncClient]], api_keys: dict,
                                  temporal_client: Client) -> None:
    """Nobody reviews an urgent case within its (two-second) window: it is escalated, then dismissed."""
    api = await api_with(urgent_review_minutes=2 / 60)
    user = creator()
    case_ref = await upload(api, api_keys, user, "item-1", 91, org=OTHER_ORG, indicators=URGENT_INDICATORS,
                            report_text="It is still happening, he wants to meet tonight.")
    await case_when(api, api_keys, case_ref, lambda c: c["escalated_at"] is not None, "the escalation",
                    org=OTHER_ORG)
    response = await api.post(f"/v1/cases/{case_ref}/dismissal", json={"reason": "Recorded path"},
                              headers=headers(api_keys, Role.ADMIN, org=OTHER_ORG))
    assert response.status_code == 200, response.text
    await save(temporal_client, "review_timer_fires", case_ref, expect=(COMPLETED, TIMER_FIRED))


async def test_next_case_after_filing(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                      sandbox: Sandbox) -> None:
    """Content that arrives while a case is filed waits, and opens the user's next case (continue-as-new)."""
    user = creator()
    case_ref = await upload(api, api_keys, user, "first", 101)
    await case_when(api, api_keys, case_ref, settled(1), "the first item analysed")
    sandbox.state.faults.configure(latency_ms=300)  # so the next item surely arrives mid-filing
    await decide(api, api_keys, case_ref, ["first"])
    await upload(api, api_keys, user, "second", 102)
    sandbox.state.faults.configure(latency_ms=0)
    await case_when(api, api_keys, case_ref, lambda c: c["case_number"] == 2 and settled(1)(c), "the next case")
    response = await api.post(f"/v1/cases/{case_ref}/dismissal", json={"reason": "Recorded path"},
                              headers=headers(api_keys, Role.ADMIN))
    assert response.status_code == 200, response.text
    first, second = await runs_of(temporal_client, case_ref, 2)
    await save(temporal_client, "next_case_after_filing", case_ref, first, expect=(CONTINUED,))
    await save(temporal_client, "next_case_opened", case_ref, second, expect=(COMPLETED,))


@pytest.fixture
async def short_history(settings: Settings, engine: Engine) -> AsyncIterator[tuple[httpx.AsyncClient, Client]]:
    """A dev server of its own that suggests continue-as-new after 40 events, with a worker and an API."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), search_attributes=[key for key, _ in sa.ALL],
        data_converter=data_converter(settings), dev_server_log_level="error",
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


async def test_continue_as_new_awaiting_review(short_history: tuple[httpx.AsyncClient, Client],
                                               api_keys: dict) -> None:
    """A case too long for one history continues as new while awaiting review, carrying its state."""
    api, client = short_history
    user = creator()
    items = [f"item-{n}" for n in range(16)]
    for n, content_id in enumerate(items):
        case_ref = await upload(api, api_keys, user, content_id, 200 + n)
    await case_when(api, api_keys, case_ref, settled(len(items)), "every item analysed")
    first, *_ = await runs_of(client, case_ref, 2)
    await decide(api, api_keys, case_ref, items[:2])
    await case_when(api, api_keys, case_ref, status_is("filed"), "the filing")
    runs = await runs_of(client, case_ref, 2)
    await save(client, "continue_as_new_awaiting_review", case_ref, first, expect=(CONTINUED,))
    # The run that starts from the carried state (``start.state``), then files.
    await save(client, "continue_as_new_carried_state", case_ref, runs[-1], expect=(COMPLETED,))


# ---- ScreeningWorkflow --------------------------------------------------------------------------------------

# No case of this org is filed here, so its own bank stays empty: the classifier alone routes these items.
UNBANKED_ORG = REVIEW_PAGE_ORG


def screened_item(platform: FakePlatform, data: bytes) -> dict:
    name = uuid.uuid4().hex[:12]
    return {"content_id": f"c-{name}", "creator_id": f"user-{name}", "media_url": platform.add_bytes(name, data)}


async def screen(api: httpx.AsyncClient, api_keys: dict, body: dict, org: str = ORG) -> str:
    response = await api.post("/v1/screenings", json=body, headers=headers(api_keys, Role.PLATFORM, org=org))
    assert response.status_code == 202, response.text
    return response.json()["screening_ref"]


async def outcome_of(api: httpx.AsyncClient, api_keys: dict, screening_ref: str, org: str = ORG) -> dict:
    async def done() -> dict | None:
        response = await api.get(f"/v1/screenings/{screening_ref}", headers=headers(api_keys, Role.ADMIN, org=org))
        return response.json() if response.status_code == 200 and response.json() else None

    return await eventually(done, timeout=30, what="the screening outcome")


async def test_screening_bank_match(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                    engine: Engine, platform: FakePlatform) -> None:
    original = synthetic_image(9101, size=(256, 192))
    banks = BankRepository(engine)
    bank = banks.create_bank(ORG, f"recorded-{uuid.uuid4().hex[:6]}")
    banks.add_entries(bank, [NewEntry("pdq", hash_media(original).image.pdq, external_id="k-1", classification="A1")])
    smaller = io.BytesIO()
    Image.open(io.BytesIO(original)).convert("RGB").resize((128, 96)).save(smaller, format="JPEG", quality=80)
    ref = await screen(api, api_keys, screened_item(platform, smaller.getvalue()))
    assert (await outcome_of(api, api_keys, ref))["route"] == "ncmec"
    await save(temporal_client, "screening_bank_match", ref, expect=(COMPLETED,))


@pytest.mark.parametrize("action", ["escalation", "dismissal"])
async def test_screening_triage(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                platform: FakePlatform, action: str) -> None:
    seed = {"escalation": 2, "dismissal": 3}[action]
    image = make_sandbox_image(Priority.HIGH, seed=seed)
    ref = await screen(api, api_keys, screened_item(platform, image), org=UNBANKED_ORG)
    assert (await outcome_of(api, api_keys, ref, org=UNBANKED_ORG))["route"] == "triage"
    response = await api.post(f"/v1/triage/{ref}/{action}", json={"reason": "recorded path"},
                              headers=headers(api_keys, Role.CHILD_SAFETY_MODERATOR, org=UNBANKED_ORG))
    assert response.status_code == 200, response.text
    name = {"escalation": "screening_triage_escalated", "dismissal": "screening_triage_dismissed"}[action]
    await save(temporal_client, name, ref, expect=(COMPLETED, UPDATE_ACCEPTED))


async def test_screening_clear(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                               platform: FakePlatform) -> None:
    image = make_sandbox_image(Priority.LOW, seed=8)
    ref = await screen(api, api_keys, screened_item(platform, image), org=UNBANKED_ORG)
    assert (await outcome_of(api, api_keys, ref, org=UNBANKED_ORG))["route"] == "clear"
    await save(temporal_client, "screening_clear", ref, expect=(COMPLETED,))


async def _async(value: bool) -> bool:
    return value


async def test_screening_unfetchable(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                     platform: FakePlatform) -> None:
    """The media link is already gone: nothing to screen, cleared with the reason."""
    name = uuid.uuid4().hex[:12]
    body = {"content_id": f"c-{name}", "creator_id": f"user-{name}", "media_url": f"{platform.url}/media/{name}"}
    ref = await screen(api, api_keys, body, org=UNBANKED_ORG)
    outcome = await outcome_of(api, api_keys, ref, org=UNBANKED_ORG)
    assert outcome["route"] == "clear" and outcome["error"], outcome
    await save(temporal_client, "screening_unfetchable", ref, expect=(COMPLETED,))


async def test_screening_classifier_unavailable(api: httpx.AsyncClient, api_keys: dict, temporal_client: Client,
                                               platform: FakePlatform) -> None:
    """The classifier stays unavailable through every retry (about 15 s): cleared with the reason."""
    image = make_sandbox_image(None, seed=9, outage=True)
    ref = await screen(api, api_keys, screened_item(platform, image), org=UNBANKED_ORG)
    outcome = await eventually(lambda: _cleared(api, api_keys, ref), timeout=90, what="the cleared screening")
    assert "classifier" in outcome["error"], outcome
    await save(temporal_client, "screening_classifier_unavailable", ref, expect=(COMPLETED,))


async def _cleared(api: httpx.AsyncClient, api_keys: dict, ref: str) -> dict | None:
    response = await api.get(f"/v1/screenings/{ref}", headers=headers(api_keys, Role.ADMIN, org=UNBANKED_ORG))
    return response.json() if response.status_code == 200 and response.json() else None
