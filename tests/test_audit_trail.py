"""An auditor's trail of one user's cases: a case refiled (a permanent NCMEC error, then a retry) while the user's
workflow continued as new, then the user's next case dismissed. Its timeline covers every run and both cases;
its histories were exported at each close and replay on today's code, and diverge on code changed without
``workflow.patched``; its signed bundle verifies, and fails with one byte changed; the purge deletes the exports.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner

from models.case import CaseStart, CaseState, ContentItem, MediaSource, PlatformIndicators
from models.history_export import HistoryExport
from models.records import Role
from models.retention import CaseTombstone
from models.retention_messages import CaseKey
from tests.helpers import ORG, OTHER_ORG, Sandbox, eventually, headers
from tests.test_cli import use_settings
from tipline.audit_bundle import verify_bundle
from tipline.audit_cases import export_bundle, replay_case
from tipline.audit_log import AuditLog
from tipline.audit_signing import parse_public_key, public_key_text, signing_key
from tipline.cli import main
from tipline.evidence import EvidenceStore
from tipline.purge import Purger
from tipline.registry import RefRegistry
from tipline.settings import Settings
from tipline.synthetic import synthetic_image
from workflows.case import CaseWorkflow
from workflows.case_filing_workflow import CaseFilingWorkflow

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
ITEMS = 24


@dataclass
class TrailCase:
    case_ref: str
    user: str
    timeline: dict


async def _case(api: httpx.AsyncClient, api_keys: dict, case_ref: str, number: int) -> dict:
    response = await api.get(f"/v1/cases/{case_ref}", params={"case_number": number},
                             headers=headers(api_keys, Role.ADMIN))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
async def trail(api: httpx.AsyncClient, api_keys: dict, settings: Settings, engine: Engine,
                temporal_client: Client, sandbox: Sandbox) -> TrailCase:
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = RefRegistry.from_settings(settings, engine).case_ref_for(ORG, user)
    store = EvidenceStore.from_settings(settings)
    reviewer = headers(api_keys, Role.ADMIN)

    def item(n: int) -> ContentItem:
        return ContentItem(content_id=f"item-{n}", org_id=ORG, user_id=user, received_at=datetime.now(UTC),
                           media=MediaSource(evidence=store.put_bytes(synthetic_image(6_100_000 + n, size=(32, 24)))))

    # A short history limit: the user's workflow continues as new while the case gathers and while it files.
    await temporal_client.start_workflow("CaseWorkflow", CaseStart(org_id=ORG, user_id=user, history_event_limit=100),
                                         id=case_ref, task_queue=settings.task_queue, start_signal="add_content",
                                         start_signal_args=[item(0)])
    for n in range(1, ITEMS):
        await temporal_client.get_workflow_handle(case_ref).signal("add_content", item(n))

    async def analysed() -> dict | None:
        case = await _case(api, api_keys, case_ref, 1)
        return case if sum(1 for m in case["media"] if m["analysis"]) == ITEMS else None

    await eventually(analysed, timeout=90, what="every item hashed and matched")
    viewed = await api.get(f"/v1/cases/{case_ref}/media/item-0/content", headers=reviewer)
    assert viewed.status_code == 200, viewed.text

    # NCMEC refuses the submit permanently (3100): the case needs attention; a retry files it as attempt 2.
    sandbox.state.faults.configure(error_rate=1.0, error_codes=[3100], error_count=1)
    try:
        decision = {"case_number": 1, "incident_type": INCIDENT,
                    "media": [{"media_id": "item-0", "reported": True, "classification": "B1"}]}
        response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)
        assert response.status_code == 200, response.text
        await eventually(lambda: _status(api, api_keys, case_ref, 1, "needs_attention"), timeout=60,
                         what="case 1 needing attention")
    finally:
        sandbox.state.faults.reset()
    response = await api.post(f"/v1/cases/{case_ref}/retry", json={"case_number": 1}, headers=reviewer)
    assert response.status_code == 200, response.text
    await eventually(lambda: _status(api, api_keys, case_ref, 1, "filed"), timeout=60, what="case 1 filed")

    # The user's next case: one more item, dismissed.
    # Signal-with-start, as intake sends it: the user's workflow may have closed with case 1 (its history export
    # goes on in a workflow of its own), and the next item then starts the user's next run.
    await temporal_client.start_workflow("CaseWorkflow", CaseStart(org_id=ORG, user_id=user, history_event_limit=100),
                                         id=case_ref, task_queue=settings.task_queue, start_signal="add_content",
                                         start_signal_args=[item(ITEMS)])

    async def second_ready() -> bool:
        case = await _case(api, api_keys, case_ref, 2)
        return any(m["analysis"] for m in case["media"])

    await eventually(second_ready, timeout=60, what="case 2 holding the new item")
    response = await api.post(f"/v1/cases/{case_ref}/dismissal", json={"case_number": 2, "reason": "not CSAM"},
                              headers=reviewer)
    assert response.status_code == 200, response.text

    def exported() -> list[HistoryExport]:
        with Session(engine) as session:
            return list(session.exec(select(HistoryExport).where(HistoryExport.case_ref == case_ref)).all())

    async def both_exported() -> list[HistoryExport] | None:
        rows = await asyncio.to_thread(exported)
        return rows if sorted(r.case_number for r in rows) == [1, 2] else None

    await eventually(both_exported, timeout=60, what="both closed cases' histories exported")
    response = await api.get(f"/v1/cases/{case_ref}/timeline", headers=headers(api_keys, Role.AUDITOR))
    assert response.status_code == 200, response.text
    return TrailCase(case_ref=case_ref, user=user, timeline=response.json())


async def _status(api: httpx.AsyncClient, api_keys: dict, case_ref: str, number: int, status: str) -> bool:
    return (await _case(api, api_keys, case_ref, number))["status"] == status


def kinds(timeline: dict, kind: str, case_number: int | None = None) -> list[dict]:
    return [e for e in timeline["entries"]
            if e["kind"] == kind and (case_number is None or e["case_number"] == case_number)]


async def test_the_timeline_covers_every_run_and_both_cases_of_a_refiled_case_that_continued_as_new(
    trail: TrailCase
) -> None:
    timeline = trail.timeline
    runs = [r for r in timeline["runs"] if r["workflow_type"] == "CaseWorkflow"]
    assert len(runs) >= 2 and kinds(timeline, "run.continued_as_new")
    assert {r["workflow_id"] for r in timeline["runs"] if r["workflow_type"] == "CaseFilingWorkflow"} == {
        f"{trail.case_ref}/filing/1/1", f"{trail.case_ref}/filing/1/2"}
    assert sorted(e["detail"]["media_id"] for e in kinds(timeline, "content.arrived")) == sorted(
        f"item-{n}" for n in range(ITEMS + 1))
    assert all(e["detail"]["reason"] == "platform_signal" for e in kinds(timeline, "content.arrived"))
    hashed = {e["detail"].get("media_id") for e in kinds(timeline, "media.hashed")}
    assert {f"item-{n}" for n in range(ITEMS + 1)} <= hashed
    assert kinds(timeline, "urgency.assessed", 1)
    [decided] = kinds(timeline, "case.decided", 1)
    assert decided["actor"].startswith("admin:") and decided["detail"]["reported"] == ["item-0"]
    [dismissed] = kinds(timeline, "case.dismissed", 2)
    assert dismissed["actor"].startswith("admin:")
    assert kinds(timeline, "filing.retry_requested", 1) and kinds(timeline, "filing.refiled", 1)
    [refused] = kinds(timeline, "ncmec.open_report_failed")
    assert "3100" in refused["detail"]["error"]
    [opened] = kinds(timeline, "ncmec.report_opened")
    assert kinds(timeline, "ncmec.file_uploaded") and kinds(timeline, "ncmec.report_finished")
    [recorded] = kinds(timeline, "report.recorded", 1)
    assert recorded["detail"]["report_id"] == opened["detail"]["report_id"]
    assert kinds(timeline, "report.receipt", 1)
    [view] = kinds(timeline, "media.viewed")
    assert view["actor"].startswith("key:") and view["detail"]["media_id"] == "item-0"
    assert {e["case_number"] for e in kinds(timeline, "history.export_started")} == {1, 2}
    assert {e["case_number"] for e in kinds(timeline, "history.export_recorded")} == {1, 2}
    assert kinds(timeline, "audit.case.decided") and kinds(timeline, "audit.case.filing_retried")
    moments = [e["at"] for e in timeline["entries"]]
    assert moments == sorted(moments)
    assert timeline["missing_runs"] == []


async def test_the_timeline_is_for_auditors_and_moderator_managers_of_the_case_org_only(
    trail: TrailCase, api: httpx.AsyncClient, api_keys: dict
) -> None:
    path = f"/v1/cases/{trail.case_ref}/timeline"
    assert (await api.get(path, headers=headers(api_keys, Role.MODERATOR_MANAGER))).status_code == 200
    for role in (Role.MODERATOR, Role.CHILD_SAFETY_MODERATOR, Role.PLATFORM):
        assert (await api.get(path, headers=headers(api_keys, role))).status_code == 403, role
    other = await api.get(path, headers=headers(api_keys, Role.AUDITOR, OTHER_ORG))
    assert other.status_code == 404
    unknown = await api.get(f"/v1/cases/case-{uuid.uuid4().hex}/timeline", headers=headers(api_keys, Role.AUDITOR))
    assert (unknown.status_code, unknown.json()["title"]) == (404, other.json()["title"])  # nothing learnt


@workflow.defn(name="CaseWorkflow")
class CaseWorkflowChangedWithoutPatch(CaseWorkflow):
    """Today's code with one change and no ``workflow.patched``: a timer before the close's export."""

    @workflow.run
    async def run(self, start: CaseStart) -> CaseState:
        return await super().run(start)

    async def _start_history_export(self, case: CaseState) -> None:
        await workflow.sleep(timedelta(seconds=1))
        await super()._start_history_export(case)


async def test_the_exported_histories_replay_on_todays_code_and_diverge_on_code_changed_without_a_patch(
    trail: TrailCase, settings: Settings, engine: Engine
) -> None:
    results, missing = await replay_case(settings, engine, None, trail.case_ref, from_export=True)
    assert missing == []
    assert {r.workflow_type for r in results} == {"CaseWorkflow", "CaseFilingWorkflow"}
    assert all(r.from_export for r in results) and len(results) >= 4
    assert [r.line() for r in results if not r.replays] == []

    changed, _ = await replay_case(settings, engine, None, trail.case_ref, from_export=True,
                                   workflows=[CaseWorkflowChangedWithoutPatch, CaseFilingWorkflow],
                                   runner=UnsandboxedWorkflowRunner())
    diverged = [r for r in changed if not r.replays]
    assert diverged and all(r.workflow_type == "CaseWorkflow" for r in diverged)
    assert all("Nondeterminism" in (r.divergence or "") for r in diverged), [r.divergence for r in diverged]
    assert any(r.replays for r in changed)  # the runs that closed no case still replay: the divergence is named


async def test_audit_replay_command_replays_from_temporal_and_exits_zero(
    trail: TrailCase, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    use_settings(monkeypatch, settings)
    monkeypatch.setenv("TIPLINE_TEMPORAL_ADDRESS", settings.temporal_address)
    await asyncio.to_thread(main, ["audit", "replay", trail.case_ref])
    out = capsys.readouterr().out
    assert "DIVERGES" not in out and "run(s) replay on today's code" in out
    assert f"{trail.case_ref}/filing/1/2" in out


async def test_a_signed_bundle_verifies_offline_and_one_byte_changed_fails(
    trail: TrailCase, settings: Settings, engine: Engine, temporal_client: Client, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    data = await export_bundle(settings, engine, temporal_client, trail.case_ref)
    public = parse_public_key(public_key_text(signing_key(settings).public_key()))
    verified = verify_bundle(data, public)
    assert verified.ok, verified.problems
    assert trail.user.encode() in data  # histories decoded: an auditor reads them without the payload key
    bundle = tmp_path / "case.bundle"
    bundle.write_bytes(data)
    use_settings(monkeypatch, settings)
    await asyncio.to_thread(main, ["audit", "verify", str(bundle)])
    assert "the bundle is intact" in capsys.readouterr().out

    # One byte of one report's XML changed: the signature fails and the file is named.
    at = data.index(b"<espIdentifier>") + len(b"<espIdentifier>")
    changed = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
    problems = verify_bundle(changed, public).problems
    assert any(p.startswith("reports/") and "altered" in p for p in problems), problems
    assert any(p.startswith("signature:") for p in problems)
    # Any byte: the header's too.
    flipped = bytearray(data)
    flipped[20] ^= 0x01
    assert not verify_bundle(bytes(flipped), public).ok
    bundle.write_bytes(changed)
    with pytest.raises(SystemExit) as failed:
        await asyncio.to_thread(main, ["audit", "verify", str(bundle),
                                       "--public-key", public_key_text(signing_key(settings).public_key())])
    assert failed.value.code != 0
    assert "altered" in capsys.readouterr().err


async def test_the_purge_deletes_the_exported_histories_and_the_tombstone_keeps_their_digests(
    trail: TrailCase, settings: Settings, engine: Engine
) -> None:
    store = EvidenceStore.from_settings(settings)
    with Session(engine) as session:
        rows = list(session.exec(select(HistoryExport).where(HistoryExport.case_ref == trail.case_ref)).all())
    assert all(store.exists(r.sha256) for r in rows)
    purger = Purger(engine, store, AuditLog.from_settings(settings, engine), settings.orgs)
    far = datetime.now(UTC) + timedelta(days=3 * 366)
    dismissed = next(r for r in rows if r.case_number == 2)
    outcome = await asyncio.to_thread(purger.purge, CaseKey(case_ref=trail.case_ref, case_number=2), far)
    assert outcome.purged, outcome
    assert not store.exists(dismissed.sha256)
    with Session(engine) as session:
        row = session.get(HistoryExport, dismissed.id)
        tombstone = session.exec(select(CaseTombstone).where(CaseTombstone.case_ref == trail.case_ref,
                                                             CaseTombstone.case_number == 2)).one()
    assert row is not None and row.purged_at is not None and row.sha256 == dismissed.sha256
    assert dismissed.sha256 in tombstone.history_sha256
    assert store.exists(next(r for r in rows if r.case_number == 1).sha256)  # case 1 is not purged


async def test_every_change_of_urgency_during_a_run_is_on_the_timeline(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, engine: Engine, temporal_client: Client
) -> None:
    """A reassessment mid-run carries no payload of its own in the history: the row the workflow publishes keeps it."""
    user = f"user-{uuid.uuid4().hex[:10]}"
    case_ref = RefRegistry.from_settings(settings, engine).case_ref_for(ORG, user)
    store = EvidenceStore.from_settings(settings)

    def item(n: int, indicators: PlatformIndicators | None = None) -> ContentItem:
        return ContentItem(content_id=f"item-{n}", org_id=ORG, user_id=user, received_at=datetime.now(UTC),
                           indicators=indicators,
                           media=MediaSource(evidence=store.put_bytes(synthetic_image(6_200_000 + n, size=(32, 24)))))

    await temporal_client.start_workflow("CaseWorkflow", CaseStart(org_id=ORG, user_id=user), id=case_ref,
                                         task_queue=settings.task_queue, start_signal="add_content",
                                         start_signal_args=[item(0)])
    auditor = headers(api_keys, Role.AUDITOR)

    async def assessed(count: int) -> list[dict] | None:
        response = await api.get(f"/v1/cases/{case_ref}/timeline", headers=auditor)
        assert response.status_code == 200, response.text
        found = kinds(response.json(), "urgency.assessed", 1)
        return found if len(found) >= count else None

    [first] = await eventually(lambda: assessed(1), what="the first assessment on the timeline")
    assert (first["source"], first["detail"]["level"]) == ("database", "normal")
    # The platform says the user is live with a child now: the same run reassesses the case.
    live = PlatformIndicators(live_session_active=True, victim_age=9)
    await temporal_client.get_workflow_handle(case_ref).signal("add_content", item(1, live))
    entries = await eventually(lambda: assessed(2), what="the reassessment on the timeline")
    assert [e["detail"]["level"] for e in entries][0] == "normal"
    raised = entries[-1]
    assert raised["detail"]["level"] != "normal" and raised["detail"]["score"] > first["detail"]["score"]
    assert raised["detail"]["rules"] and any("platform.live_session" in ids for ids in raised["detail"]["evidence"])
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
