"""Parts the benchmarks share: a dev server, a scratch database, the load average, and counting the SDK core's
slow workflow tasks. Kept from ``bench_intake.py`` when it moved to separate processes (``bench_filing.py``
still runs everything in its own process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

# Run as a script, a benchmark has its own folder on the path: the checkout goes there too, for the project's modules.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tipline.codec import throwaway_converter  # noqa: E402
from tipline.db import upgrade  # noqa: E402
from tipline.temporal import temporal_binary  # noqa: E402
from workflows import search_attributes as sa  # noqa: E402


@contextlib.asynccontextmanager
async def scratch_database(postgres: str | None, workdir: Path) -> AsyncIterator[tuple[str, str]]:
    """A migrated, empty database and how to describe it; with ``postgres`` created there and dropped after."""
    if postgres is None:
        url = f"sqlite:///{workdir / 'tipline.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url, "SQLite, a temporary file (deleted afterwards)"
        return
    name = f"tipline_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = postgres.rsplit("/", 1)[0] + "/" + name
    try:
        await asyncio.to_thread(upgrade, url)
        server = conninfo_to_dict(postgres)  # named without its credentials
        where = f"{server.get('host', 'localhost')}:{server.get('port', 5432)}"
        yield url, f"PostgreSQL, scratch database {name} on {where} (dropped afterwards)"
    finally:
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class SlowTaskCounter(logging.Handler):
    """Counts the SDK core's "workflow task took over 5 seconds" warnings (TMPRL1104), per workflow type."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "TMPRL1104" in message:
            kind = "CaseWorkflow" if "CaseWorkflow" in message else "other"
            self.counts[kind] = self.counts.get(kind, 0) + 1


def core_runtime(slow_tasks: SlowTaskCounter) -> Runtime:
    """A runtime whose core logs go to Python logging (stderr, and the counter) instead of straight to stdout."""
    core_logger = logging.getLogger("temporalio.core")
    core_logger.addHandler(slow_tasks)
    forwarding = LogForwardingConfig(logger=core_logger)
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarding)))


@contextlib.asynccontextmanager
async def temporal_server(runtime: Runtime | None = None) -> AsyncIterator[WorkflowEnvironment]:
    """A dev server (in memory, the search attributes registered) for this run only."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), search_attributes=[key for key, _ in sa.ALL],
        data_converter=throwaway_converter(), dev_server_log_level="error", runtime=runtime,
    )
    try:
        yield env
    finally:
        await env.shutdown()


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
