"""Prometheus metrics of the API and the worker, scraped over HTTP after real cases, calls and failures."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notifications import NotificationActivities
from activities.platform_callbacks import PlatformCallbackActivities
from api.app import create_app
from cybertipline.client import CyberTiplineClient, CyberTiplineError
from models.filing import EnrichUserInput, EscalationNotice
from models.records import CaseSummary, Role
from tests.helpers import ORG, OTHER_ORG, PlatformCallbacks, Sandbox, eventually, fake_platform, headers
from tipline.codec import data_converter
from tipline.egress import EgressClient
from tipline.metrics import CaseMetrics
from tipline.settings import Settings
from tipline.temporal import metrics_runtime
from worker import case_worker, egress_client, worker_metrics

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(exposition: str) -> Samples:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(exposition) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str) -> tuple[str, Samples]:
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, parse(response.text)


@asynccontextmanager
async def api_metrics(settings: Settings, temporal: Client, engine: Engine) -> AsyncIterator[str]:
    """The API's metrics listener, started by the app's own lifespan as a server would."""
    app = create_app(settings.model_copy(update={"api_metrics_address": "127.0.0.1:0"}), temporal=temporal,
                     engine=engine)
    async with app.router.lifespan_context(app):
        yield app.state.metrics_server.url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def file_one_case(api: httpx.AsyncClient, api_keys: dict, creator: str) -> str:
    platform_key, reviewer_key = headers(api_keys, Role.PLATFORM), headers(api_keys, Role.CHILD_SAFETY_MODERATOR)
    async with fake_platform() as platform:
        # Evidence is content-addressed: bytes of their own, so this case stores a new object whatever ran before.
        media_url = platform.add(creator, uuid.uuid4().int % 10_000_000)
        item = {"content_id": f"{creator}-post", "creator_id": creator, "media_url": media_url,
                "file_name": "upload.png", "content_type": "image/png", "upload_ip": "192.0.2.77",
                "uploaded_at": "2026-01-01T10:00:00+00:00"}
        accepted = await api.post("/v1/content/batch", json={"items": [item]}, headers=platform_key)
        assert accepted.status_code == 202, accepted.text
        case_ref = accepted.json()["accepted"][0]["case_ref"]

        async def queued() -> bool:
            queue = (await api.get("/v1/cases", headers=reviewer_key)).json()
            return any(entry["case_ref"] == case_ref and entry["media_count"] == 1 for entry in queue)

        await eventually(queued, what="the case in the reviewer queue")
    decision = {"case_number": 1, "incident_type": INCIDENT,
                "media": [{"media_id": item["content_id"], "reported": True, "classification": "A1"}]}
    decided = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer_key)
    assert decided.status_code == 200, decided.text

    async def filed() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer_key)).json()
        return case if case["status"] in ("filed", "needs_attention") else None

    case = await eventually(filed, what="the case to be filed")
    assert case["status"] == "filed", case.get("attention_reason")
    return case_ref


def cases_by_status(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(select(CaseSummary.status, func.count()).group_by(CaseSummary.status)).all()
    return {status: count for status, count in rows}


async def test_api_metrics_count_a_filed_case_ncmec_answers_callback_failures_and_evidence(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client, engine: Engine,
    sandbox: Sandbox, platform_callbacks: PlatformCallbacks,
) -> None:
    creator = f"metrics-user-{uuid.uuid4().hex[:8]}"
    async with api_metrics(settings, temporal_client, engine) as url:
        _, before = await scrape(url)
        case_ref = await file_one_case(api, api_keys, creator)

        # An answer with a non-zero code: the sandbox refuses a wrong password with 401, reported as code 2000.
        async with CyberTiplineClient(settings.resolved_sandbox_url, "acme-esp", "wrong-password") as ncmec:
            with pytest.raises(CyberTiplineError):
                await ncmec.status()

        # Failed callbacks: the platform's enrichment endpoint down, and an escalation webhook the egress guard
        # refuses (its loopback address is not exempt for this client).
        platform_callbacks.mode = "down"
        try:
            async with egress_client(settings) as egress:
                with pytest.raises(ApplicationError):
                    await ActivityEnvironment().run(PlatformCallbackActivities(settings, engine, egress).enrich_user,
                                                    EnrichUserInput(org_id=OTHER_ORG, case_ref="c", user_id="u"))
        finally:
            platform_callbacks.mode = "up"
        now = datetime.now(UTC)
        notice = EscalationNotice(org_id=OTHER_ORG, case_ref="c", case_number=1, urgency_level="normal",
                                  review_deadline=now, escalated_at=now)
        async with EgressClient(exemptions=[]) as guarded:
            with pytest.raises(ApplicationError):
                await ActivityEnvironment().run(NotificationActivities(settings, guarded).notify_escalation, notice)

        _, after = await scrape(url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    for endpoint in ("submit", "upload", "fileinfo", "finish"):
        assert delta("tipline_ncmec_answers_total", endpoint=endpoint, code="0") >= 1, endpoint
    assert delta("tipline_ncmec_answers_total", endpoint="status", code="2000") == 1
    assert delta("tipline_filing_duration_seconds_count") >= 1
    assert delta("tipline_filing_duration_seconds_sum") > 0
    assert delta("tipline_callback_failures_total", callback="enrichment", kind="http_error") == 1
    assert delta("tipline_callback_failures_total", callback="escalation", kind="unreachable") == 1
    # The worker runs in this process, so its preserved media counts here too: the PNG, encrypted.
    assert delta("tipline_evidence_stored_objects_total") >= 1
    assert delta("tipline_evidence_stored_bytes_total") > 100

    # The case gauges are the database's own counts at the moment of the scrape. Cases of earlier tests may still
    # move between a scrape and the count, so a pair is read again until both agree (the metric has no cache).
    statuses = ("awaiting_review", "filing", "needs_attention", "filed", "dismissed")

    async def gauges_match_the_database() -> dict[str, int] | None:
        _, samples = await scrape(url)
        in_db = cases_by_status(engine)
        gauges = {status: value(samples, "tipline_cases", status=status) for status in statuses}
        return in_db if gauges == {status: in_db.get(status, 0) for status in statuses} else None

    async with api_metrics(settings, temporal_client, engine) as url:
        in_db = await eventually(gauges_match_the_database, what="case gauges equal to the database's counts")
    assert in_db.get("filed", 0) >= 1
    assert value(after, "tipline_case_metrics_up") == 1

    # No personal data, org or case in any label value (Python's own metrics carry only version strings).
    label_values = {v for _, labels in after for _, v in labels}
    for secret in (creator, case_ref, ORG, OTHER_ORG, "192.0.2.77", "@", "upload.png"):
        assert not any(secret in label for label in label_values), secret
    assert all(re.fullmatch(r"[A-Za-z0-9_.+-]*", label) for label in label_values), label_values


async def test_queue_age_and_overdue_deadlines_are_read_from_the_queue_at_scrape_time(
    settings: Settings, temporal_client: Client, engine: Engine, worker: None,
) -> None:
    now = datetime.now(UTC)
    workflow_id = f"metrics-queue-{uuid.uuid4().hex[:8]}"
    # Two waiting cases opened well before any other in this session: one past its review deadline.
    rows = [CaseSummary(workflow_id=workflow_id, case_number=n, org_id=ORG, status="awaiting_review",
                        review_deadline=now + timedelta(hours=2 * n - 3), opened_at=now - timedelta(days=30 - n),
                        updated_at=now) for n in (1, 2)]
    async with api_metrics(settings, temporal_client, engine) as url:
        _, before = await scrape(url)
        with Session(engine) as session:
            session.add_all(rows)
            session.commit()
        try:
            _, after = await scrape(url)
        finally:
            with Session(engine) as session:
                for row in session.exec(select(CaseSummary).where(CaseSummary.workflow_id == workflow_id)):
                    session.delete(row)
                session.commit()
        _, cleaned = await scrape(url)

    age = value(after, "tipline_review_queue_oldest_age_seconds")
    assert 29 * 86400 <= age <= 29 * 86400 + 120
    assert value(after, "tipline_review_deadlines_overdue") - value(before, "tipline_review_deadlines_overdue") == 1
    assert value(after, "tipline_cases", status="awaiting_review") - \
        value(before, "tipline_cases", status="awaiting_review") == 2
    assert value(cleaned, "tipline_review_queue_oldest_age_seconds") < 29 * 86400


def test_case_gauges_say_so_when_the_database_is_down() -> None:
    from tipline.db import make_engine

    collected = {family.name: family for family in CaseMetrics(
        make_engine(f"postgresql://127.0.0.1:{free_port()}/none")).collect()}
    assert set(collected) == {"tipline_case_metrics_up"}
    assert collected["tipline_case_metrics_up"].samples[0].value == 0


async def test_worker_serves_tipline_and_temporal_sdk_metrics(
    temporal_env: object, settings: Settings, engine: Engine,
) -> None:
    sdk_address = f"127.0.0.1:{free_port()}"
    worker_settings = settings.model_copy(update={"task_queue": f"metrics-{uuid.uuid4().hex[:8]}",
                                                  "worker_metrics_address": "127.0.0.1:0",
                                                  "temporal_sdk_metrics_address": sdk_address})
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                  data_converter=data_converter(settings), runtime=metrics_runtime(sdk_address))
    with worker_metrics(worker_settings, engine) as server:
        assert server is not None
        async with case_worker(client, worker_settings, engine):
            async def sdk_metrics() -> Samples | None:
                try:
                    _, samples = await scrape(f"http://{sdk_address}/metrics")
                except httpx.HTTPError:
                    return None
                polling = [labels for (name, labels) in samples if name == "temporal_num_pollers"
                           and ("task_queue", worker_settings.task_queue) in labels]
                return samples if polling else None

            sdk = await eventually(sdk_metrics, what="the worker's pollers in the Temporal SDK metrics")
            _, tipline = await scrape(server.url)

    assert any(name == "temporal_worker_task_slots_available" for name, _ in sdk)
    assert any(name.startswith("temporal_request") for name, _ in sdk)
    assert value(tipline, "tipline_case_metrics_up") == 1
    assert ("tipline_cases", frozenset({("status", "filed")})) in tipline
    # The listener stopped with the worker.
    with pytest.raises(httpx.HTTPError):
        await scrape(server.url)
