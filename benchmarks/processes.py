"""Starting, waiting for and stopping the processes a benchmark measures: each part of Tipline as its own process,
the way a deployment runs them (README, "Running the parts separately")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from subprocess import PIPE
from typing import Any

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
        the dev server, and the load generator: this process and the generator processes it has waited for."""
        by_session: dict[int, float] = {}
        dev_server = 0.0
        for command, session, parent, seconds in _processes():
            by_session[session] = by_session.get(session, 0.0) + seconds
            if command == "temporal" and parent == os.getpid():
                dev_server += seconds
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        generator = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return {**{name: by_session.get(process.pid, 0.0) for name, process in self.running.items()},
                "dev server": dev_server, "load generator": generator}

    async def generate(self, specs: Sequence[dict[str, object]]) -> tuple[list[dict[str, Any]], float]:
        """Run one ``intake_generator.py`` per spec: each gets its spec, says it is ready, is told to go at once with
        the others, and answers one JSON line. Returns the answers and when (perf_counter) they were told to go."""
        processes = []
        for n, spec in enumerate(specs):
            with (self.log_dir / f"generator-{n}.log").open("ab") as log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "benchmarks/intake_generator.py", cwd=ROOT, env=self.env, stdin=PIPE,
                    stdout=PIPE, stderr=log, limit=1 << 26)  # the answer is one line: every call's seconds
            assert process.stdin is not None
            process.stdin.write(json.dumps(spec).encode() + b"\n")
            processes.append(process)
        try:
            for process in processes:
                assert process.stdout is not None
                line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT)
                if line.strip() != b"ready":
                    raise RuntimeError(f"a generator did not get ready; see {self.log_dir}/generator-*.log")
            started = time.perf_counter()
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(b"go\n")
                await process.stdin.drain()
            answers = [json.loads(await process.stdout.readline()) for process in processes if process.stdout]
            return answers, started
        finally:
            for process in processes:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.terminate()
                await process.wait()

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _processes() -> Iterator[tuple[str, int, int, float]]:
    """(command, session, parent pid, CPU seconds) of every process /proc shows."""
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
        command = text[text.index("(") + 1:text.rindex(")")]
        yield command, int(fields[3]), int(fields[1]), sum(int(value) for value in fields[11:15]) / tick


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
