"""A freshly started worker takes work at once; loading the banks and compiling the PDQ scan happen after it
polls, and detection waits for them, so an item screened the moment a worker starts still meets every bank.
``benchmarks/bench_worker_start.py`` prints the real figures; the bound here only has to survive a busy machine."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import case_index
from activities.case_index import CaseIndexActivities
from api.app import create_app
from detection.banks import BankRepository, NewEntry
from detection.media_hashes import hash_media
from models.records import Role
from tests.helpers import ORG, eventually, headers
from tipline.codec import data_converter
from tipline.settings import Settings
from tipline.synthetic import synthetic_image
from tipline.temporal import temporal_binary
from workflows import search_attributes as sa

# The benchmark's target is 1 s; six helpers' test runs share this machine's two cores.
FIRST_TASK_BOUND = 8.0
STOP_DEADLINE = 40.0


# What a worker needs only for its activities: it imports them once its workflows poll (worker.ACTIVITY_LIBRARIES).
NOT_ON_THE_START_PATH = ("sqlalchemy", "sqlmodel", "fastapi", "httpx", "lxml", "numpy", "PIL", "pdqhash",
                         "tipline.evidence", "tipline.db")


def test_the_worker_command_reaches_its_workflow_worker_without_the_activities_libraries() -> None:
    """What ``tipline worker`` imports before its workflows poll: the command line and the workflows, no more."""
    script = ("import json, sys\n"
              "from tipline.cli import build_parser\n"
              "build_parser().parse_args(['worker'])\n"
              "import worker\n"
              f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {NOT_ON_THE_START_PATH!r}"
              f" or m in {NOT_ON_THE_START_PATH!r})))\n")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert json.loads(loaded.stdout) == [], loaded.stdout


def worker_environment(settings: Settings, queue: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIPLINE_")}
    env.update(
        TIPLINE_DATA_DIR=str(settings.data_dir), TIPLINE_DATABASE_URL=settings.resolved_database_url,
        TIPLINE_ORGS_FILE=str(settings.resolved_orgs_file), TIPLINE_TEMPORAL_ADDRESS=settings.temporal_address,
        TIPLINE_TASK_QUEUE=queue,
    )
    return env


async def test_a_new_worker_takes_a_waiting_screening_at_once_and_matches_it_against_the_full_bank(
    settings: Settings, temporal_client: Client, engine: Engine, api_keys: dict, tmp_path: Path
) -> None:
    queue = f"tipline-start-{uuid.uuid4().hex[:8]}"  # its own queue: only the new worker polls it
    image = synthetic_image(7001, size=(128, 96))
    banks = BankRepository(engine)
    bank = banks.create_bank(ORG, f"at-start-{uuid.uuid4().hex[:6]}")
    banks.add_entries(bank, [NewEntry("pdq", hash_media(image).image.pdq, external_id="k-1", classification="A1")])
    app = create_app(settings.model_copy(update={"task_queue": queue}), temporal=temporal_client, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as api:
        name = uuid.uuid4().hex[:10]
        response = await api.post("/v1/screenings/upload", headers=headers(api_keys, Role.PLATFORM),
                                  data={"content_id": f"c-{name}", "creator_id": f"user-{name}"},
                                  files={"file": ("a.png", image, "image/png")})
        assert response.status_code == 202, response.text
        screening = temporal_client.get_workflow_handle(response.json()["screening_ref"])

        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "tipline"), "worker", env=worker_environment(settings, queue),
                stdout=out, stderr=out)
        try:
            async def picked_up() -> tuple[float, datetime] | None:
                assert process.returncode is None, "the worker exited"
                history = await screening.fetch_history()
                task = next((e for e in history.events
                             if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED), None)
                return (time.monotonic() - started, task.event_time.ToDatetime(UTC)) if task else None

            waited, task_started_at = await eventually(picked_up, timeout=60, interval=0.02,
                                                       what="the worker's first workflow task")
            assert waited < FIRST_TASK_BOUND, f"the first workflow task waited {waited:.2f} s"

            async def outcome() -> dict | None:
                answer = await api.get(f"/v1/screenings/{screening.id}", headers=headers(api_keys, Role.ADMIN))
                return answer.json() if answer.status_code == 200 and answer.json() else None

            routed = await eventually(outcome, timeout=60, what="the screening outcome")
            assert routed["route"] == "ncmec", routed
            assert [m["bank_name"] for m in routed["analysis"]["matches"]] == [bank.name]
            # The case it opened belongs to a queue no worker will poll once this one stops.
            await temporal_client.get_workflow_handle(routed["case_ref"]).terminate("test over")
            text = await asyncio.to_thread(log.read_text)
            [ready] = [json.loads(line) for line in text.splitlines() if "worker.detection_ready" in line]
            # Work was taken before detection was ready: preparing it is off the start path.
            assert task_started_at < datetime.fromisoformat(ready["timestamp"]), (task_started_at, ready)

            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), STOP_DEADLINE) == 0
            assert "Traceback" not in await asyncio.to_thread(log.read_text)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_worker_started_before_temporal_waits_for_it_and_then_takes_work(
    settings: Settings, engine: Engine, api_keys: dict, tmp_path: Path
) -> None:
    """A worker that starts while Temporal is down (restarting, or not up yet) waits instead of exiting."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    local = settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
    queue = f"tipline-late-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "tipline"), "worker", env=worker_environment(local, queue),
            stdout=out, stderr=out)
    try:
        async def waiting() -> bool:
            assert process.returncode is None, await asyncio.to_thread(log.read_text)
            return "worker.temporal_unreachable" in await asyncio.to_thread(log.read_text)

        await eventually(waiting, timeout=30, what="the worker to report Temporal unreachable")
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(), port=port, search_attributes=[key for key, _ in sa.ALL],
            data_converter=data_converter(local), dev_server_log_level="error")
        try:
            app = create_app(local.model_copy(update={"task_queue": queue}), temporal=env.client, engine=engine)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t.test") as api:
                name = uuid.uuid4().hex[:10]
                response = await api.post("/v1/screenings/upload", headers=headers(api_keys, Role.PLATFORM),
                                          data={"content_id": f"c-{name}", "creator_id": f"user-{name}"},
                                          files={"file": ("a.png", synthetic_image(7002), "image/png")})
                ref = response.json()["screening_ref"]

                async def screened() -> dict | None:
                    answer = await api.get(f"/v1/screenings/{ref}", headers=headers(api_keys, Role.ADMIN))
                    return answer.json() if answer.status_code == 200 and answer.json() else None

                assert (await eventually(screened, timeout=60, what="the screening outcome"))["route"]
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), STOP_DEADLINE) == 0
        finally:
            await env.shutdown()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_the_case_index_waits_for_the_database_the_worker_opens_after_its_workflows_poll(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its local activities run on the workflow worker, which polls before the database is open."""
    early = CaseIndexActivities()
    with ThreadPoolExecutor(max_workers=1) as local_activity:
        asked = local_activity.submit(early.user_history, f"case-never-{uuid.uuid4().hex}")
        with pytest.raises(FuturesTimeout):
            asked.result(timeout=0.2)  # waiting for the database, not failing
        early.attach(engine)
        assert asked.result(timeout=10).case_number == 1

    monkeypatch.setattr(case_index, "ATTACH_PATIENCE_SECONDS", 0.05)
    with pytest.raises(ApplicationError) as never:
        CaseIndexActivities().user_history("case-x")
    assert never.value.type == "DatabaseNotReady" and not never.value.non_retryable
