"""An auditor's trail of one user's cases: a case refiled (a permanent NCMEC error, then a retry) while the user's
workflow continued as new, then the user's next case dismissed. Its timeline covers every run and both cases;
its histories were exported at each close and replay on today's code, and diverge on code changed without
``workflow.patched``; its signed bundle verifies, and fails with one byte changed; the purge deletes the exports.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner

from models.audit import AuditRow
from models.case import CaseStart, CaseState, ContentItem, MediaSource, PlatformIndicators
from models.history_export import HistoryExport
from models.records import FiledFile, FiledReport, Role
from models.retention import CaseTombstone, EvidenceLink
from models.retention_messages import CaseKey
from tests.helpers import ORG, OTHER_ORG, Sandbox, eventually, headers
from tests.test_cli import use_settings
from tipline.audit_bundle import verify_bundle, write_bundle
from tipline.audit_cases import export_bundle, replay_case
from tipline.audit_log import AuditLog
from tipline.audit_signing import parse_public_key, public_key_text, signing_key
from tipline.case_histories import fetch_case_histories
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
    # The user's next item, sent while case 1 files (the user's workflow is open then: once case 1 is filed it
    # closes, its history export going on in a workflow of its own): it is the user's case 2.
    await temporal_client.get_workflow_handle(case_ref).signal("add_content", item(ITEMS))
    await eventually(lambda: _status(api, api_keys, case_ref, 1, "filed"), timeout=60, what="case 1 filed")

    # The user's next case: one more item, dismissed.

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


async def test_the_export_command_writes_a_bundle_holding_the_whole_case_and_records_the_export(
    trail: TrailCase, settings: Settings, engine: Engine, temporal_client: Client, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    use_settings(monkeypatch, settings)
    monkeypatch.setenv("TIPLINE_TEMPORAL_ADDRESS", settings.temporal_address)
    out = tmp_path / "cli.bundle"
    await asyncio.to_thread(main, ["audit", "export", trail.case_ref, "--out", str(out)])
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.stat().st_mode & 0o777 == 0o600
    # On the deployment, verify checks against the public half of its own key file.
    await asyncio.to_thread(main, ["audit", "verify", str(out)])
    assert "the bundle is intact" in capsys.readouterr().out
    data = out.read_bytes()
    files = json.loads(data.partition(b"\n")[2])["files"]

    # Every run: the user's workflow (each continue-as-new run) and both filing attempts, as Temporal has them.
    live = await fetch_case_histories(temporal_client, trail.case_ref)
    histories = {(h["workflow_id"], h["run_id"]): h for h in
                 (json.loads(text) for name, text in files.items() if name.startswith("histories/"))}
    assert {(r.workflow_id, r.run_id) for r in live.runs} <= set(histories)
    assert len({k for k, h in histories.items() if h["workflow_type"] == "CaseWorkflow"}) >= 2
    assert {w for w, _ in histories if "/filing/" in w} == {f"{trail.case_ref}/filing/1/1",
                                                             f"{trail.case_ref}/filing/1/2"}
    assert all(h["history"]["events"] for h in histories.values())

    with Session(engine) as session:
        reports = list(session.exec(select(FiledReport).where(FiledReport.workflow_id == trail.case_ref)).all())
        filed = list(session.exec(select(FiledFile).where(
            col(FiledFile.report_pk).in_([r.id for r in reports]))).all())
        links = session.exec(select(EvidenceLink).where(EvidenceLink.case_ref == trail.case_ref)).all()
        exports = session.exec(select(HistoryExport).where(HistoryExport.case_ref == trail.case_ref)).all()
        [recorded] = session.exec(select(AuditRow).where(AuditRow.subject == trail.case_ref,
                                                         AuditRow.action == "case.bundle_exported")
                                  .order_by(AuditRow.seq.desc()).limit(1)).all()
        before = list(session.exec(select(AuditRow).where(AuditRow.subject == trail.case_ref,
                                                          AuditRow.seq < recorded.seq).order_by(AuditRow.seq)).all())
    # Each report's XML and NCMEC's receipt; each file's details.
    assert reports and all(r.finish_receipt_xml for r in reports)
    for report in reports:
        stem = f"{report.case_number}-{report.attempt}-{report.ncmec_report_id}"
        assert files[f"reports/{stem}.xml"] == report.report_xml
        assert files[f"receipts/{stem}.xml"] == report.finish_receipt_xml
    by_pk = {r.id: r for r in reports}
    assert filed and all(f.file_details_xml for f in filed)
    for file in filed:
        assert files[f"file_details/{by_pk[file.report_pk].ncmec_report_id}-{file.media_id}.xml"] == \
            file.file_details_xml
    assert sorted((f["sha256"], f["md5"]) for f in json.loads(files["files.json"])) == sorted(
        (f.evidence_sha256, f.md5) for f in filed)
    # The evidence digests: every object the case preserved, each export of its histories, what was filed.
    evidence = json.loads(files["evidence.json"])
    assert sorted(evidence["preserved_sha256"]) == sorted(link.sha256 for link in links)
    assert len(evidence["preserved_sha256"]) == ITEMS + 1
    assert sorted(e["sha256"] for e in evidence["history_exports"]) == sorted(e.sha256 for e in exports)
    assert {e["case_number"] for e in evidence["history_exports"]} == {1, 2}
    assert evidence["filed_sha256"] == sorted({f.evidence_sha256 for f in filed})
    # The case's audit-log rows up to the export, seals and all, in order.
    audit = json.loads(files["audit_log.json"])
    assert [(a["seq"], a["action"], a["seal"]) for a in audit] == [(r.seq, r.action, r.seal) for r in before]
    assert {"media.viewed", "case.decided", "case.filing_retried", "case.dismissed",
            "case.history_exported"} <= {a["action"] for a in audit}

    # The export itself is an audit row: what the bundle holds, counted, and its digest; no contents.
    assert (recorded.actor, recorded.org_id) == ("cli", ORG)
    assert json.loads(recorded.detail) == {
        "bundle_sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "files": len(files),
        "histories": len(histories), "reports": len(reports), "receipts": len(reports), "file_details": len(filed),
        "audit_rows": len(audit)}
    await asyncio.to_thread(main, ["audit", "verify-log"])
    assert "the audit log is intact" in capsys.readouterr().out


def test_verify_never_makes_a_key_and_without_one_names_the_option(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """On an auditor's machine: no deployment key file. Verify must not make one (a new key, that signed
    nothing), and must say what to give it."""
    signer = Ed25519PrivateKey.generate()
    bundle = tmp_path / "case.bundle"
    bundle.write_bytes(write_bundle("case-x", {"evidence.json": "{}"}, signer, datetime.now(UTC)))
    auditor = tmp_path / "auditor"
    use_settings(monkeypatch, settings)
    monkeypatch.setenv("TIPLINE_DATA_DIR", str(auditor))
    monkeypatch.delenv("TIPLINE_AUDIT_SIGNING_KEY_FILE", raising=False)
    with pytest.raises(SystemExit) as failed:
        main(["audit", "verify", str(bundle)])
    assert failed.value.code not in (0, None)
    assert "--public-key" in str(failed.value.code) and "tipline audit public-key" in str(failed.value.code)
    assert not auditor.exists(), "verify made a key (or its folder) on the auditor's machine"

    public = public_key_text(signer.public_key())
    main(["audit", "verify", str(bundle), "--public-key", public])
    assert "the bundle is intact" in capsys.readouterr().out
    key_file = tmp_path / "public.key"
    key_file.write_text(public + "\n")
    main(["audit", "verify", str(bundle), "--public-key", str(key_file)])
    assert "the bundle is intact" in capsys.readouterr().out

    # A key file settings name, when there is one: the deployment's own, or another that signed nothing here.
    private = tmp_path / "signing.key"
    private.write_text(base64.b64encode(signer.private_bytes_raw()).decode() + "\n")
    monkeypatch.setenv("TIPLINE_AUDIT_SIGNING_KEY_FILE", str(private))
    main(["audit", "verify", str(bundle)])
    assert "the bundle is intact" in capsys.readouterr().out
    private.write_text(base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode() + "\n")
    with pytest.raises(SystemExit) as other:
        main(["audit", "verify", str(bundle)])
    assert "fails verification" in str(other.value.code)
    assert "signature: does not verify" in capsys.readouterr().err
    private.write_text("not a key\n")
    with pytest.raises(SystemExit) as unreadable:
        main(["audit", "verify", str(bundle)])
    assert "--public-key" in str(unreadable.value.code)


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
