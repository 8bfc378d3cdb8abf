"""`tipline up`, the README's first command, run the way a newcomer runs it: on the embedded defaults (the
Temporal dev server, SQLite, the sandbox) it says where each part listens, serves, and SIGTERM stops every
part, the Temporal dev server in its own session included."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tipline.settings import Settings

DEMO_DEADLINE = 120
STARTUP_DEADLINE = 90.0
STOP_DEADLINE = 40.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_tipline_up_serves_and_sigterm_stops_every_part(tmp_path: Path) -> None:
    ports = {name: _free_port() for name in ("temporal", "ui", "api", "sandbox")}
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIPLINE_")}
    env.update(
        TIPLINE_DATA_DIR=str(tmp_path / "data"),
        TIPLINE_TEMPORAL_ADDRESS=f"127.0.0.1:{ports['temporal']}",
        TIPLINE_TEMPORAL_UI_URL=f"http://127.0.0.1:{ports['ui']}",
        TIPLINE_API_PORT=str(ports["api"]),
        TIPLINE_SANDBOX_PORT=str(ports["sandbox"]),
    )
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "tipline"), "up"], cwd=tmp_path, env=env, stdout=out, stderr=out,
            umask=0o022,  # a usual permissive umask: private files must come from the stack, not the caller
        )
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while "Tipline is running" not in log.read_text():
            assert process.poll() is None, f"tipline up exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"tipline up did not start:\n{log.read_text()}"
            time.sleep(0.2)
        banner = log.read_text()
        for port in ports.values():
            assert str(port) in banner, f"port {port} missing from the banner:\n{banner}"
        assert httpx.get(f"http://127.0.0.1:{ports['api']}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports['sandbox']}/ispws/status").status_code == 401  # asks for login
        assert _accepts_connections(ports["temporal"])
        assert (tmp_path / "data" / "tipline.db").exists()  # the SQLite default
        # A key lookup reads the database, so its WAL files exist (the worker no longer opens it at start).
        assert httpx.get(f"http://127.0.0.1:{ports['api']}/v1/cases",
                         headers={"X-API-Key": "tpl_not-a-key"}).status_code == 401
        assert_only_the_owner_can_read(tmp_path / "data")
        # The Web UI was started pointing at the API's codec server.
        ui_settings = httpx.get(f"http://127.0.0.1:{ports['ui']}/api/v1/settings").json()
        assert ui_settings["Codec"]["Endpoint"] == f"http://127.0.0.1:{ports['api']}/codec", ui_settings
        # The README's second step: the demo plays a platform and a reviewer, and both CyberTips are filed.
        demo = subprocess.run([str(Path(sys.executable).parent / "tipline"), "demo"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=DEMO_DEADLINE)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert demo.stdout.count("filed, NCMEC report") == 2, demo.stdout

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_DEADLINE) == 0, log.read_text()
        assert "Tipline stopped." in log.read_text()
        # The dev server is waited for before `up` exits: nothing of the stack is left listening.
        for name, port in ports.items():
            assert not _accepts_connections(port), f"{name} still listening on {port} after SIGTERM"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_only_the_owner_can_read(data_dir: Path) -> None:
    """The database and its WAL, Temporal's files, the evidence store and the keys: 0700 folders, 0600 files."""
    found = {}
    for path in [data_dir, *data_dir.rglob("*")]:
        try:
            found[path.relative_to(data_dir).as_posix()] = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue  # a transient file (SQLite's rollback journal) removed between listing and reading it
    for expected in ("tipline.db", "tipline.db-wal", "tipline.db-shm", "temporal.db", "temporal.log", "orgs.toml",
                     "evidence-keys.json", "payload-keys.json", "evidence", "evidence/incoming"):
        assert expected in found, f"{expected} not in the data folder: {sorted(found)}"
    shared = {name: oct(mode) for name, mode in found.items() if mode & (stat.S_IRWXG | stat.S_IRWXO)}
    assert not shared, f"readable by others: {shared}"
    assert found["."] == 0o700 and found["evidence"] == 0o700 and found["tipline.db"] == 0o600


async def test_worker_exits_cleanly_on_sigterm(settings: Settings, temporal_client: Client) -> None:
    # docker stop and systemd send SIGTERM: the worker must drain and exit 0, not die mid-activity.
    queue = f"tipline-sigterm-{uuid.uuid4().hex[:8]}"  # its own queue: it must take no work from the tests
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIPLINE_")}
    env.update(
        TIPLINE_DATA_DIR=str(settings.data_dir),
        TIPLINE_DATABASE_URL=settings.resolved_database_url,
        TIPLINE_ORGS_FILE=str(settings.resolved_orgs_file),
        TIPLINE_TEMPORAL_ADDRESS=settings.temporal_address,
        TIPLINE_TASK_QUEUE=queue,
    )
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "tipline"), "worker", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        request = DescribeTaskQueueRequest(
            namespace=temporal_client.namespace, task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        while not await _has_pollers(temporal_client, request):
            assert process.returncode is None, "the worker exited before it polled"
            assert time.monotonic() < deadline, "the worker never polled its task queue"
            await asyncio.sleep(0.2)

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), STOP_DEADLINE) == 0
        output = (await process.stdout.read()).decode() if process.stdout else ""
        assert "Traceback" not in output, output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _has_pollers(client: Client, request: DescribeTaskQueueRequest) -> bool:
    """Whether the queue has a poller; a call the loaded dev server cancels is asked again, within the deadline."""
    try:
        return bool((await client.workflow_service.describe_task_queue(request)).pollers)
    except RPCError:
        return False
