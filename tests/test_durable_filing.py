"""Exactly one finished CyberTip per case, through worker crashes and reports NCMEC deletes mid-filing.

The crash tests run the worker as a separate process and kill it with SIGKILL at chosen points; a fresh
worker process then picks the case up from Temporal's history.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import Client

from api.app import create_app
from models.records import FiledReport, Role
from tests.helpers import Sandbox, eventually, headers
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

REPO = Path(__file__).resolve().parents[1]
INCIDENT = "Child Pornography (possession, manufacture, and distribution)"


class WorkerProcess:
    """``python -m worker`` with the test's settings, which a test can kill like a crashing machine."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        s = self.settings
        values = {
            "TIPLINE_DATA_DIR": s.data_dir, "TIPLINE_DATABASE_URL": s.database_url, "TIPLINE_ORGS_FILE": s.orgs_file,
            "TIPLINE_SANDBOX_URL": s.sandbox_url, "TIPLINE_NCMEC_XSD_PATH": s.ncmec_xsd_path,
            "TIPLINE_TASK_QUEUE": s.task_queue, "TIPLINE_TEMPORAL_ADDRESS": s.temporal_address,
        }
        return {**os.environ, **{key: str(value) for key, value in values.items()}}

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=self.environment(),
                                            stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def crash_settings(settings: Settings) -> Settings:
    # A queue of its own (the in-process test worker must not pick these cases up) and short timeouts, so
    # an activity lost with a killed worker is retried within seconds. One upload at a time makes
    # "between uploads" a real place.
    return settings.model_copy(update={
        "task_queue": f"tipline-crash-{uuid.uuid4().hex[:8]}", "ncmec_call_timeout_seconds": 3,
        "upload_heartbeat_timeout_seconds": 2, "upload_concurrency": 1,
    })


@pytest.fixture
def worker_process(crash_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(crash_settings, tmp_path / "worker.log")
    worker.start()
    yield worker
    if worker.process is not None:
        worker.kill()


@pytest.fixture
async def crash_api(crash_settings: Settings, temporal_client: Client, engine: Engine
                    ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(crash_settings, temporal=temporal_client, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as client:
        yield client


@pytest.fixture(autouse=True)
def calm_sandbox(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.state.faults.reset()


async def submitted_case(api: httpx.AsyncClient, api_keys: dict, files: int) -> tuple[str, str]:
    """A case with ``files`` uploaded items, all reported by the reviewer. Returns (case_ref, creator)."""
    creator = f"user-{uuid.uuid4().hex[:10]}"
    for n in range(files):
        response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                                  data={"content_id": f"item-{n}", "creator_id": creator},
                                  files={"file": (f"item-{n}.png", synthetic_image(100 + n), "image/png")})
        assert response.status_code == 202, response.text
    case_ref = response.json()["case_ref"]
    reviewer = headers(api_keys, Role.ADMIN)

    async def complete() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return len(case.get("media", [])) == files

    await eventually(complete, what="all media in the case")
    decision = {"case_number": 1, "incident_type": INCIDENT,
                "media": [{"media_id": f"item-{n}", "reported": True, "classification": "B1"} for n in range(files)]}
    response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)
    assert response.status_code == 200, response.text
    return case_ref, creator


async def reports_of(sandbox: Sandbox, creator: str) -> list[dict]:
    return [r for r in await sandbox.reports() if f"<espIdentifier>{creator}</espIdentifier>" in r["report_xml"]]


async def wait_until_filed(api: httpx.AsyncClient, api_keys: dict, case_ref: str) -> dict:
    reviewer = headers(api_keys, Role.ADMIN)

    async def filed() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        assert case["status"] != "needs_attention", case["attention_reason"]
        return case if case["status"] == "filed" else None

    return await eventually(filed, timeout=60, what="the case to be filed")


def assert_exactly_one_finished(reports: list[dict], files: int) -> dict:
    assert [r["status"] for r in reports] == ["finished"], [(r["report_id"], r["status"]) for r in reports]
    described = [f for f in reports[0]["files"] if f["file_details_xml"]]
    assert len(described) == files
    return reports[0]


async def test_a_worker_killed_after_submit_resumes_without_submitting_again(
    crash_api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox, worker_process: WorkerProcess
) -> None:
    sandbox.state.faults.configure(latency_ms=400)
    case_ref, creator = await submitted_case(crash_api, api_keys, files=2)

    async def opened() -> int | None:
        case = (await crash_api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()
        return case["filing"]["report_id"]

    report_id = await eventually(opened, what="the report id recorded by the workflow")
    worker_process.kill()
    sandbox.state.faults.configure(latency_ms=0)
    worker_process.start()

    case = await wait_until_filed(crash_api, api_keys, case_ref)
    assert case["filing"]["report_id"] == report_id
    assert_exactly_one_finished(await reports_of(sandbox, creator), files=2)


async def test_a_worker_killed_between_uploads_finishes_the_same_report(
    crash_api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox, worker_process: WorkerProcess
) -> None:
    sandbox.state.faults.configure(latency_ms=300)
    case_ref, creator = await submitted_case(crash_api, api_keys, files=3)

    async def some_uploaded() -> bool:
        reports = await reports_of(sandbox, creator)
        return bool(reports) and 1 <= len(reports[0]["files"]) < 3

    await eventually(some_uploaded, what="the first upload")
    worker_process.kill()
    sandbox.state.faults.configure(latency_ms=0)
    worker_process.start()

    case = await wait_until_filed(crash_api, api_keys, case_ref)
    report = assert_exactly_one_finished(await reports_of(sandbox, creator), files=3)
    assert report["report_id"] == case["filing"]["report_id"]
    assert sorted(f.get("media_id") or f["media_id"] for f in case["filing"]["files"]) == ["item-0", "item-1", "item-2"]


async def test_a_worker_killed_before_reading_the_finish_answer_does_not_file_twice(
    crash_api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox, worker_process: WorkerProcess,
    engine: Engine,
) -> None:
    case_ref, creator = await submitted_case(crash_api, api_keys, files=2)

    async def all_described() -> bool:
        reports = await reports_of(sandbox, creator)
        if reports and len([f for f in reports[0]["files"] if f["file_details_xml"]]) == 2:
            # Hold every answer from now on: NCMEC commits /finish, the worker never hears back.
            sandbox.state.faults.configure(answer_delay_ms=5000)
            return True
        return False

    await eventually(all_described, interval=0.01, what="both files described")

    async def finished_at_ncmec() -> bool:
        return any(r["status"] == "finished" for r in await reports_of(sandbox, creator))

    await eventually(finished_at_ncmec, interval=0.01, what="NCMEC to finish the report")
    worker_process.kill()
    sandbox.state.faults.configure(answer_delay_ms=0)
    worker_process.start()

    case = await wait_until_filed(crash_api, api_keys, case_ref)
    assert_exactly_one_finished(await reports_of(sandbox, creator), files=2)
    with Session(engine) as session:
        rows = session.exec(select(FiledReport).where(FiledReport.workflow_id == case_ref)).all()
    assert [(r.ncmec_report_id, r.status) for r in rows] == [(case["filing"]["report_id"], "finished")]


async def test_a_report_that_expires_mid_filing_is_filed_afresh(
    api: httpx.AsyncClient, api_keys: dict, sandbox: Sandbox, engine: Engine
) -> None:
    sandbox.state.faults.configure(latency_ms=300)
    case_ref, creator = await submitted_case(api, api_keys, files=2)

    async def opened() -> int | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=headers(api_keys, Role.ADMIN))).json()
        return case["filing"]["report_id"]

    expired_id = await eventually(opened, what="the first report")
    await sandbox.http.post(f"{sandbox.url}/_sandbox/clock", json={"advance_seconds": 25 * 3600})
    sandbox.state.faults.configure(latency_ms=0)

    case = await wait_until_filed(api, api_keys, case_ref)
    assert case["filing"]["abandoned_report_ids"] == [expired_id]
    assert case["filing"]["report_id"] != expired_id
    statuses = {r["report_id"]: r["status"] for r in await reports_of(sandbox, creator)}
    assert statuses == {expired_id: "expired", case["filing"]["report_id"]: "finished"}
    with Session(engine) as session:
        rows = {r.ncmec_report_id: r.status for r in session.exec(
            select(FiledReport).where(FiledReport.workflow_id == case_ref))}
    assert rows == {expired_id: "expired", case["filing"]["report_id"]: "finished"}


async def test_an_upload_retried_after_its_answer_was_recorded_succeeds(
    settings: Settings, engine: Engine, sandbox: Sandbox
) -> None:
    """A worker that dies after recording an upload, before Temporal hears of it, retries the upload: the
    retry must succeed and the record follow the file id the workflow goes on with."""
    from datetime import UTC, datetime

    from temporalio.testing import ActivityEnvironment

    from activities.filing import FilingActivities
    from models.case import ReviewDecision
    from models.filing import OpenReportInput, UploadFileInput
    from models.records import FiledFile
    from tipline.evidence import EvidenceStore

    store = EvidenceStore.from_settings(settings)
    filing = FilingActivities(settings, engine, store)
    env = ActivityEnvironment()
    opened = await env.run(filing.open_report, OpenReportInput(
        org_id="acme", workflow_id=f"case-acme-{uuid.uuid4().hex}", case_number=1, user_id="user-retry",
        decision=ReviewDecision(reviewer_id="admin:1", incident_type=INCIDENT), incident_at=datetime.now(UTC)))
    upload = UploadFileInput(org_id="acme", report_id=opened.report_id, media_id="item-1",
                             evidence=store.put_bytes(synthetic_image(500)), file_name="item-1.png")
    first = await env.run(filing.upload_file, upload)
    second = await env.run(filing.upload_file, upload)

    assert first.file_id != second.file_id
    with Session(engine) as session:
        rows = session.exec(select(FiledFile).where(FiledFile.media_id == "item-1",
                                                    FiledFile.ncmec_file_id.in_([first.file_id, second.file_id]))).all()
    assert [row.ncmec_file_id for row in rows] == [second.file_id]


async def test_a_batch_retried_after_some_files_were_recorded_sends_only_the_rest(
    settings: Settings, engine: Engine, sandbox: Sandbox
) -> None:
    """Files go to NCMEC in batches, one activity each; each upload and description is recorded as NCMEC answers,
    so a retried batch neither uploads a recorded file again nor describes a described one again."""
    from datetime import UTC, datetime

    from temporalio.testing import ActivityEnvironment

    from activities.filing import FilingActivities
    from models.case import ContentItem, MediaDecision, MediaItem, MediaSource, ReviewDecision
    from models.filing import FileDetailsInput, FileToSend, OpenReportInput, SendFilesInput, UploadFileInput
    from models.records import FiledFile
    from tipline.evidence import EvidenceStore

    store = EvidenceStore.from_settings(settings)
    filing = FilingActivities(settings, engine, store)
    env = ActivityEnvironment()
    opened = await env.run(filing.open_report, OpenReportInput(
        org_id="acme", workflow_id=f"case-acme-{uuid.uuid4().hex}", case_number=1, user_id="user-batch",
        decision=ReviewDecision(reviewer_id="admin:1", incident_type=INCIDENT), incident_at=datetime.now(UTC)))

    def to_send(n: int) -> FileToSend:
        evidence = store.put_bytes(synthetic_image(600 + n))
        content = ContentItem(content_id=f"item-{n}", org_id="acme", user_id="user-batch",
                              media=MediaSource(evidence=evidence), received_at=datetime.now(UTC))
        media = MediaItem(media_id=f"item-{n}", content=content, evidence=evidence)
        return FileToSend(media=media, decision=MediaDecision(media_id=f"item-{n}", reported=True,
                                                              classification="B1"), file_name=f"item-{n}.png")

    files = [to_send(n) for n in range(3)]
    # A try that died mid-batch: item-0 uploaded and described, item-1 uploaded only.
    first = await env.run(filing.upload_file, UploadFileInput(
        org_id="acme", report_id=opened.report_id, media_id="item-0", evidence=files[0].media.evidence,
        file_name="item-0.png"))
    await env.run(filing.send_file_details, FileDetailsInput(
        org_id="acme", report_id=opened.report_id, file_id=first.file_id, media=files[0].media,
        decision=files[0].decision))
    second = await env.run(filing.upload_file, UploadFileInput(
        org_id="acme", report_id=opened.report_id, media_id="item-1", evidence=files[1].media.evidence,
        file_name="item-1.png"))

    sent = await env.run(filing.send_files, SendFilesInput(org_id="acme", report_id=opened.report_id, files=files))
    by_media = {f.media_id: f.file_id for f in sent.files}
    assert by_media["item-0"] == first.file_id and by_media["item-1"] == second.file_id
    [report] = [r for r in await sandbox.reports() if r["report_id"] == opened.report_id]
    assert len(report["files"]) == 3  # nothing uploaded twice
    assert all(f["file_details_xml"] for f in report["files"])
    with Session(engine) as session:
        rows = session.exec(select(FiledFile).where(FiledFile.ncmec_file_id.in_(list(by_media.values())))).all()
    assert sorted(r.media_id for r in rows if r.file_details_xml) == ["item-0", "item-1", "item-2"]
    await filing.aclose()
