"""Urgency acted on: urgent cases first in the queue, escalated when overdue, and the reason as the reviewer left it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from lxml import etree
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from models.records import Role
from tests.helpers import OTHER_ORG, WebhookReceiver, eventually, headers
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
# A live session and a victim under 13: urgent on the default rules, before any reviewer has looked.
URGENT_INDICATORS = '{"live_session_active": true, "victim_age": 8}'


async def send(api: httpx.AsyncClient, api_keys: dict, *, urgent: bool, org: str = "acme") -> str:
    creator = f"user-{uuid.uuid4().hex[:10]}"
    data = {"content_id": "item-1", "creator_id": creator}
    if urgent:
        data |= {"indicators": URGENT_INDICATORS, "report_text": "It is still happening, he wants to meet tonight."}
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM, org=org), data=data,
                              files={"file": ("a.png", synthetic_image(5), "image/png")})
    assert response.status_code == 202, response.text
    return response.json()["case_ref"]


async def assessed(api: httpx.AsyncClient, api_keys: dict, case_ref: str, org: str = "acme") -> dict:
    async def ready() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN, org=org))).json()
        return case if case.get("media") and case.get("urgency") else None

    return await eventually(ready, what="the case's urgency assessment")


async def test_the_queue_returns_urgent_cases_first(api: httpx.AsyncClient, api_keys: dict) -> None:
    normal = await send(api, api_keys, urgent=False)
    urgent = await send(api, api_keys, urgent=True)
    assert (await assessed(api, api_keys, normal))["urgency"]["level"] == "normal"
    case = await assessed(api, api_keys, urgent)
    assert case["urgency"]["level"] == "urgent" and case["urgent"]
    assert {"platform.live_session", "platform.victim_age"} <= {
        evidence for reason in case["urgency"]["reasons"] for evidence in reason["evidence"]}

    async def ordered() -> list[str] | None:
        queue = [e["case_ref"] for e in (await api.get("/v1/cases", headers=headers(api_keys, Role.ADMIN))).json()]
        return queue if urgent in queue and normal in queue else None

    queue = await eventually(ordered, what="both cases in the queue")
    assert queue.index(urgent) < queue.index(normal)


@pytest.mark.parametrize(("choice", "outcome"), [("clear", "cleared"), ("edit", "edited"), ("confirm", "confirmed")])
async def test_the_reviewer_confirms_edits_or_clears_the_suggested_reason(
    api: httpx.AsyncClient, api_keys: dict, choice: str, outcome: str
) -> None:
    case_ref = await send(api, api_keys, urgent=True)
    suggestion = (await assessed(api, api_keys, case_ref))["urgency"]["suggested_reason"]
    assert suggestion
    sent = {"clear": None, "edit": suggestion + " Reviewer: victim appears to be in danger now.",
            "confirm": suggestion}[choice]
    decision = {"case_number": 1, "incident_type": INCIDENT, "media": [{"media_id": "item-1", "reported": True}],
                "escalate_to_high_priority": sent}
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER)
    assert (await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)).status_code == 200

    async def record() -> dict | None:
        reports = (await api.get("/v1/reports", headers=reviewer)).json()
        return next((r for r in reports if r["case_ref"] == case_ref and r["status"] == "finished"), None)

    report = await eventually(record, what="the filed report")
    xml = etree.fromstring((await api.get(f"/v1/reports/{report['id']}/xml", headers=reviewer)).content)
    assert xml.findtext("incidentSummary/escalateToHighPriority") == sent
    assert report["escalation_reason"] == sent
    assert report["urgency_suggestion"] == suggestion
    assert report["urgency_outcome"] == outcome
    assert report["submitted_by"].startswith("moderator_manager:")


async def filed_record(api: httpx.AsyncClient, reviewer: dict, case_ref: str) -> tuple[dict, etree._Element]:
    async def record() -> dict | None:
        reports = (await api.get("/v1/reports", headers=reviewer)).json()
        return next((r for r in reports if r["case_ref"] == case_ref and r["status"] == "finished"), None)

    report = await eventually(record, what="the filed report")
    xml = etree.fromstring((await api.get(f"/v1/reports/{report['id']}/xml", headers=reviewer)).content)
    return report, xml


async def test_sending_the_suggestion_shown_is_confirmed_though_it_changed_since(
    api: httpx.AsyncClient, api_keys: dict
) -> None:
    platform, reviewer = headers(api_keys, Role.PLATFORM), headers(api_keys, Role.MODERATOR_MANAGER)
    creator = f"user-{uuid.uuid4().hex[:10]}"
    first = await api.post("/v1/content/upload", headers=platform, files={"file": ("a.png", synthetic_image(7))},
                           data={"content_id": "item-1", "creator_id": creator, "indicators": URGENT_INDICATORS})
    case_ref = first.json()["case_ref"]
    shown = (await assessed(api, api_keys, case_ref))["urgency"]["suggested_reason"]
    assert shown
    # While the reviewer reads, more content arrives and the case's suggestion is recomputed.
    second = await api.post("/v1/content/upload", headers=platform, files={"file": ("b.png", synthetic_image(8))},
                            data={"content_id": "item-2", "creator_id": creator,
                                  "report_text": "He wrote: I'll leak your pics tonight"})
    assert second.json()["case_ref"] == case_ref

    async def recomputed() -> str | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        reason = case["urgency"]["suggested_reason"]
        return reason if reason != shown and len(case["media"]) == 2 else None

    assert "sextortion" in await eventually(recomputed, what="the recomputed suggestion")
    decision = {"case_number": 1, "incident_type": INCIDENT, "media": [{"media_id": "item-1", "reported": True},
                                                     {"media_id": "item-2", "reported": False}],
                "escalate_to_high_priority": shown, "urgency_suggestion_shown": shown}
    assert (await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)).status_code == 200

    report, xml = await filed_record(api, reviewer, case_ref)
    assert xml.findtext("incidentSummary/escalateToHighPriority") == shown
    assert (report["urgency_suggestion"], report["urgency_outcome"]) == (shown, "confirmed")


async def test_the_preview_adds_the_reasons_of_the_reviewers_choices_and_they_are_filed(
    api: httpx.AsyncClient, api_keys: dict
) -> None:
    reviewer = headers(api_keys, Role.MODERATOR_MANAGER)
    case_ref = await send(api, api_keys, urgent=False)
    assert (await assessed(api, api_keys, case_ref))["urgency"]["suggested_reason"] is None
    choices = {"incident_type": "Online Enticement of Children for Sexual Acts",
               "media": [{"media_id": "item-1", "annotations": ["liveStreaming"]}],
               "additional_info": "The user asked the child: are you home alone right now?"}
    preview = await api.post(f"/v1/cases/{case_ref}/urgency-preview", json=choices, headers=reviewer)
    assert preview.status_code == 200, preview.text
    urgency = preview.json()
    assert urgency["level"] == "urgent"
    assert {"incident.enticement", "file.live_streaming", "text.enticement"} <= {
        reason["rule_id"] for reason in urgency["reasons"]}
    suggestion = urgency["suggested_reason"]
    assert "live streamed" in suggestion and "enticement" in suggestion

    for bad, field in ((choices | {"media": [{"media_id": "nope"}]}, "body.media.0.media_id"),
                       (choices | {"incidnet_type": "x"}, "incidnet_type")):
        refused = await api.post(f"/v1/cases/{case_ref}/urgency-preview", json=bad, headers=reviewer)
        assert refused.status_code == 422 and field in refused.text
    assert (await api.post(f"/v1/cases/{case_ref}/urgency-preview", json=choices,
                           headers=headers(api_keys, Role.PLATFORM))).status_code in (401, 403)

    decision = {"case_number": 1, "incident_type": choices["incident_type"],
                "additional_info": choices["additional_info"],
                "media": [{"media_id": "item-1", "reported": True, "classification": "A1",
                           "annotations": ["liveStreaming"]}],
                "escalate_to_high_priority": suggestion, "urgency_suggestion_shown": suggestion}
    assert (await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)).status_code == 200
    report, xml = await filed_record(api, reviewer, case_ref)
    # NCMEC reads every reason, the ones the reviewer's own annotations added included.
    assert xml.findtext("incidentSummary/escalateToHighPriority") == suggestion
    assert (report["urgency_suggestion"], report["urgency_outcome"]) == (suggestion, "confirmed")


@pytest.fixture
async def impatient_api(settings: Settings, temporal_client: Client, engine: Engine
                        ) -> AsyncIterator[httpx.AsyncClient]:
    # The same worker, but cases started with a two-second review deadline for urgent cases.
    app = create_app(settings.model_copy(update={"urgent_review_minutes": 2 / 60}), temporal=temporal_client,
                     engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as client:
        yield client


async def test_an_urgent_case_overdue_for_review_is_raised_to_moderator_managers(
    impatient_api: httpx.AsyncClient, api_keys: dict, temporal_client: Client, webhook_receiver: WebhookReceiver
) -> None:
    case_ref = await send(impatient_api, api_keys, urgent=True, org=OTHER_ORG)
    manager = headers(api_keys, Role.MODERATOR_MANAGER, org=OTHER_ORG)

    async def escalated() -> dict | None:
        case = (await impatient_api.get(f"/v1/cases/{case_ref}", headers=manager)).json()
        return case if case.get("escalated_at") else None

    case = await eventually(escalated, what="the escalation at the review deadline")
    assert case["status"] == "awaiting_review"
    assert datetime.fromisoformat(case["escalated_at"]) >= datetime.fromisoformat(case["review_deadline"])

    async def escalated_in_queue() -> bool:
        queue = (await impatient_api.get("/v1/cases", headers=manager)).json()
        return next(e for e in queue if e["case_ref"] == case_ref)["escalated_at"] is not None

    await eventually(escalated_in_queue, what="the escalation in the queue")

    async def notified() -> list[dict]:
        return [n for n in webhook_receiver.received if n["case_ref"] == case_ref]

    [notice] = await eventually(notified, what="the signed escalation webhook")
    assert notice["urgency_level"] == "urgent" and notice["org_id"] == OTHER_ORG

    query = f'TiplineReviewOverdue = true AND TiplineUrgent = true AND WorkflowId = "{case_ref}"'

    async def overdue_in_temporal() -> list:
        return [w async for w in temporal_client.list_workflows(query)]

    assert await eventually(overdue_in_temporal, what="the overdue search attribute")
