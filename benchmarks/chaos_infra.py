"""The parts ``chaos_filing.py`` breaks on purpose, all its own and all on loopback: a PostgreSQL cluster and a
Temporal dev server it can restart mid-run, the platform's callbacks that can go down, and an escalation webhook
that refuses every connection. Nothing here touches the machine's own PostgreSQL or Temporal."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request, Response
from temporalio.client import Client

from tipline.codec import converter_with
from tipline.http_server import serve_app
from tipline.payload_keys import LOCAL_KEY_FILE_NAME, StaticKeySource
from tipline.settings import signing_key
from tipline.signing import ANSWER_ID_HEADER, sign_answer
from tipline.temporal import temporal_binary
from workflows import search_attributes as sa


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait(probe: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(probe):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up within {timeout:.0f} s")
        await asyncio.sleep(0.1)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ---- PostgreSQL --------------------------------------------------------------------------------------------


class PostgresCluster:
    """A throwaway cluster (initdb into a temporary folder, trust auth, a free loopback port). ``restart`` stops it
    the way a crash does (``pg_ctl stop -m immediate``: no checkpoint, connections cut) and starts it again."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found and not shutil.which("pg_ctl"):
            raise SystemExit("PostgreSQL's server binaries (initdb, pg_ctl) are needed: apt-get install postgresql")
        self.bin = Path(found[-1]).parent if found else Path(shutil.which("pg_ctl") or "").parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tipline-chaos-pg-"))
        # initdb refuses to run as root: run the cluster as the postgres user, in a folder it owns.
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_owner, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def _start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
                   f"-c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "postgres.log"),
                  "-o", options, "-w", "start")

    async def start(self) -> None:
        await asyncio.to_thread(self._run, str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                                "-U", "postgres", "-E", "UTF8", "--no-sync")
        await asyncio.to_thread(self._start)

    async def restart(self, down_for: float) -> None:
        await asyncio.to_thread(self._run, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                "-w", "stop")
        await asyncio.sleep(down_for)
        await asyncio.to_thread(self._start)
        self.restarts += 1

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def postgres_cluster() -> AsyncIterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        await cluster.start()
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


# ---- Temporal ----------------------------------------------------------------------------------------------


class TemporalDevServer:
    """``temporal server start-dev`` persisting to a SQLite file, so a restart keeps every workflow."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.db_file = workdir / "temporal.db"
        # The workers run with TIPLINE_DATA_DIR=workdir and so find this same payload key.
        self.keys = StaticKeySource.load_or_create(workdir / LOCAL_KEY_FILE_NAME)
        self.log = workdir / "temporal.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _spawn(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
                 "--headless", "--db-filename", str(self.db_file), "--log-level", "error", *sa.dev_server_flags()],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    async def start(self) -> Client:
        self._spawn()
        await _wait(lambda: _accepts(self.port), "the Temporal dev server")
        deadline = time.monotonic() + 30
        while True:
            try:
                return await Client.connect(self.address, data_converter=converter_with(self.keys))
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def _stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    async def restart(self, down_for: float) -> None:
        await asyncio.to_thread(self._stop)
        await asyncio.sleep(down_for)
        self._spawn()
        await _wait(lambda: _accepts(self.port), "the restarted Temporal dev server")
        self.restarts += 1

    def stop(self) -> None:
        self._stop()


# ---- the platform --------------------------------------------------------------------------------------------


@dataclass
class PlatformCallbacks:
    """The org's enrichment and media-list endpoints; while ``down`` both answer 503. Answers are signed as a
    platform's Standard Webhooks library signs them: under the call's ``Tipline-Answer-Id``."""

    secret: str  # "whsec_…", as the org configures it
    url: str = ""
    down: bool = False
    answered: int = 0
    refused: int = 0
    outages: int = 0
    _app: FastAPI = field(default_factory=FastAPI)

    def _answer(self, request: Request, body: dict) -> Response:
        if self.down:
            self.refused += 1
            return Response(status_code=503)
        self.answered += 1
        data = json.dumps(body).encode()
        headers = sign_answer(signing_key(self.secret), request.headers[ANSWER_ID_HEADER], data)
        return Response(data, media_type="application/json", headers=headers)

    def app(self) -> FastAPI:
        @self._app.post("/enrich")
        async def enrich(request: Request) -> Response:
            asked = json.loads(await request.body())
            return self._answer(request, {"screen_name": f"screen-{asked['user_id']}"})

        @self._app.post("/media-list")
        async def media_list(request: Request) -> Response:
            return self._answer(request, {"items": [], "next_cursor": None})

        return self._app

    async def outage(self, seconds: float) -> None:
        self.down, self.outages = True, self.outages + 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self.down = False


@contextlib.asynccontextmanager
async def platform_callbacks(secret: str) -> AsyncIterator[PlatformCallbacks]:
    callbacks = PlatformCallbacks(secret=secret)
    async with serve_app(callbacks.app()) as url:
        callbacks.url = url
        yield callbacks


@contextlib.contextmanager
def dead_webhook() -> Iterator[str]:
    """A loopback URL whose port is held but never listened on: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/escalations"
