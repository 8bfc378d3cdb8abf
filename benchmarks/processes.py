"""Starting, waiting for and stopping the processes a benchmark measures: each part of Tipline as its own process,
the way a deployment runs them (README, "Running the parts separately")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0
STOP_GRACE = 20.0
WORKFLOW_QUEUE = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY_QUEUE = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Children:
    """Child processes of this benchmark, each logging to its own file; stopped with SIGTERM (as ``docker stop``
    would), then killed if they outstay the grace period."""

    def __init__(self, log_dir: Path, env: Mapping[str, str]) -> None:
        self.log_dir = log_dir
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.running[name] = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env={**self.env, **(env or {})},
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()  # the child holds its own descriptor

    def tipline(self, name: str, command: str, env: Mapping[str, str] | None = None) -> None:
        # The checkout's CLI, not an installed one: `-m tipline.cli` from ROOT runs this worktree's code.
        self.start(name, ["-m", "tipline.cli", command], env)

    def check(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir / name}.log")

    def stop(self, names: Sequence[str] | None = None) -> None:
        chosen = [name for name in (names if names is not None else list(self.running)) if name in self.running]
        for name in chosen:
            with contextlib.suppress(ProcessLookupError):
                self.running[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for name in chosen:
            process = self.running.pop(name)
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each child with its own subprocesses (a session each: hashing pools included),
        the dev server (a child of this process that is not one of them), and this load generator."""
        by_session: dict[int, float] = {}
        for session, _, seconds in _processes():
            by_session[session] = by_session.get(session, 0.0) + seconds
        ours = {name: by_session.get(process.pid, 0.0) for name, process in self.running.items()}
        own = {process.pid for process in self.running.values()}
        dev_server = sum(seconds for session, parent, seconds in _processes()
                         if parent == os.getpid() and session not in own)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {**ours, "dev server": dev_server, "load generator": usage.ru_utime + usage.ru_stime}

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _processes() -> Iterator[tuple[int, int, float]]:
    """(session, parent pid, CPU seconds) of every process /proc shows."""
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
        yield int(fields[3]), int(fields[1]), sum(int(value) for value in fields[11:15]) / tick


@contextlib.contextmanager
def children(log_dir: Path, env: Mapping[str, str]) -> Iterator[Children]:
    group = Children(log_dir, env)
    try:
        yield group
    finally:
        group.stop()


async def wait_until_serving(group: Children, urls: Sequence[str], timeout: float = READY_TIMEOUT) -> None:
    """Until every API process answers ``/healthz``; fails at once if one has exited."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    async with httpx.AsyncClient(timeout=2.0) as http:
        while pending:
            group.check()
            for url in list(pending):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        pending.remove(url)
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not serving after {timeout:.0f}s: {', '.join(pending)}")
                await asyncio.sleep(0.1)


async def wait_until_polling(group: Children, client: Client,
                             queues: Sequence[tuple[str, TaskQueueType.ValueType, int]],
                             timeout: float = READY_TIMEOUT) -> None:
    """Until each (task queue, kind, processes) has that many distinct pollers; the queue names are fresh per run,
    so no poller of an earlier run is counted."""
    deadline = time.monotonic() + timeout
    pending = list(queues)
    while pending:
        group.check()
        for entry in list(pending):
            name, kind, count = entry
            request = DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=name),
                                               task_queue_type=kind)
            with contextlib.suppress(RPCError):
                pollers = (await client.workflow_service.describe_task_queue(request)).pollers
                if len({poller.identity for poller in pollers}) >= count:
                    pending.remove(entry)
        if pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not polling after {timeout:.0f}s: {', '.join(name for name, _, _ in pending)}")
            await asyncio.sleep(0.1)
