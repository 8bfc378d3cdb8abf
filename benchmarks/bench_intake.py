"""Benchmark intake: content items per second from the API into cases, beside a bare signal-with-start loop.
A script, not a test:

    .venv/bin/python benchmarks/bench_intake.py [--items 1000] [--users 100] [--concurrency 20] [--postgres URL]

One run starts one Temporal dev server (in-memory, search attributes registered) and measures two paths
against it, one after the other, each with its own worker in this process:

1. **API into cases.** A database (a temporary SQLite file migrated with ``tipline.db.upgrade``, or with
   ``--postgres URL`` a scratch database created on that server and dropped afterwards), a temporary
   evidence store, the case worker (``worker.case_worker``) and the API (``api.app.create_app``) served on
   loopback HTTP. ``--items`` small synthetic images (64x48 PNG, so the run measures intake rather than
   hashing), spread round-robin over ``--users`` made-up users, are posted to ``POST /v1/content/upload``
   by ``--concurrency`` clients at once. Two clocks, both started before the first request:
   *accepted* stops at the last ``202``; *visible in cases* stops once ``GET /v1/cases/{case_ref}`` for
   every user lists all of that user's items (cases are polled only after the last upload was accepted,
   so polling never competes with uploads). It then waits, on the same clock, until every item shows its
   hashes (``analyze_media``), so the case worker stops idle rather than in the middle of activities.
2. **Bare signal-with-start.** A trivial workflow defined here (its signal handler appends to a list) on a
   task queue of its own with a worker of its own. The same number of signal-with-starts over the same
   number of workflow ids, with the same concurrency, straight from the Temporal client: *accepted* stops
   when the last call returns, *visible* once a query on every workflow shows all of its signals.

The case worker is stopped before the bare loop starts, so the second measurement does not share the CPU
with the first one's leftover work (hashing, queue rows). A couple of items per path go through first,
untimed, to warm connections and imports. Everything (load generator, API, workers) shares one Python
process and event loop, and the dev server shares the machine: while items arrive, the case worker is also
hashing each one (``analyze_media``) and writing queue rows, as it would in production. The figures are for
comparing the two paths on one machine, with its CPU count and load average printed beside them, and with
the number of workflow tasks the SDK reported as taking over 5 seconds (TMPRL1104; the core's logs go to
stderr through Python logging instead of to stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio import workflow

# The sandbox re-imports this module to run BenchInbox: everything else passes through, as in workflows/case.py.
with workflow.unsafe.imports_passed_through():
    import httpx
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy import Engine
    from temporalio.client import Client
    from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from tipline.codec import throwaway_converter

    # The checkout, for the project's modules (os.path: the sandbox refuses Path.resolve).
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    from api.app import create_app
    from api.deps import create_api_key
    from models.records import Role
    from tipline.db import make_engine, upgrade
    from tipline.http_server import serve_app
    from tipline.logging import configure_logging
    from tipline.settings import NcmecCredentials, OrgSettings, ReporterSettings, Settings, orgs_toml
    from tipline.synthetic import synthetic_image
    from tipline.temporal import temporal_binary
    from worker import case_worker
    from workflows import search_attributes as sa

ORG = "bench"
IMAGE_SIZE = (64, 48)
WARMUP_ITEMS = 2
REQUEST_TIMEOUT = 60.0
VISIBILITY_TIMEOUT = 600.0
POLL_PAUSE = 0.02


# ---- options and the work to send ----------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    items: int
    users: int
    concurrency: int
    postgres: str | None


def parse_options() -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000, help="content items to send (default 1000)")
    parser.add_argument("--users", type=int, default=100, help="made-up users the items are spread over (default 100)")
    parser.add_argument("--concurrency", type=int, default=20, help="requests in flight at once (default 20)")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="create a scratch database on this PostgreSQL server instead of a SQLite file")
    args = parser.parse_args()
    if min(args.items, args.users, args.concurrency) < 1 or args.users > args.items:
        parser.error("--items, --users and --concurrency must be positive, and --users at most --items")
    return Options(items=args.items, users=args.users, concurrency=args.concurrency, postgres=args.postgres)


@dataclass(frozen=True)
class Item:
    user_id: str
    content_id: str
    image: bytes


def make_items(count: int, users: int, prefix: str, first_seed: int = 0) -> list[Item]:
    """``count`` items round-robin over ``users`` users, so items in flight together mostly go to different cases."""
    return [Item(user_id=f"{prefix}-user-{n % users:04d}", content_id=f"{prefix}-post-{n:05d}",
                 image=synthetic_image(first_seed + n, size=IMAGE_SIZE))
            for n in range(count)]


def expected_by_user(items: Sequence[Item]) -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {}
    for item in items:
        expected.setdefault(item.user_id, set()).add(item.content_id)
    return expected


# ---- measuring -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    items: int
    accepted_seconds: float
    visible_seconds: float
    latencies: list[float]
    analysed_seconds: float | None = None

    @property
    def accepted_rate(self) -> float:
        return self.items / self.accepted_seconds

    @property
    def visible_rate(self) -> float:
        return self.items / self.visible_seconds

    def latency_ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


async def run_bounded(jobs: Sequence[Item], concurrency: int, send: Callable[[Item], Awaitable[None]]) -> list[float]:
    """Run ``send`` over ``jobs``, in order, with at most ``concurrency`` in flight; returns each call's seconds."""
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []

    async def client() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            started = time.perf_counter()
            await send(job)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


async def wait_until_visible(expected: dict[str, set[str]], concurrency: int,
                             seen: Callable[[str], Awaitable[set[str]]]) -> None:
    """Poll every case until it shows all its items; rounds over the cases still incomplete."""
    pending = dict(expected)
    deadline = time.monotonic() + VISIBILITY_TIMEOUT
    semaphore = asyncio.Semaphore(concurrency)

    async def complete(key: str) -> bool:
        async with semaphore:
            return pending[key] <= await seen(key)

    while pending:
        keys = list(pending)
        done = await asyncio.gather(*(complete(key) for key in keys))
        for key, ok in zip(keys, done, strict=True):
            if ok:
                del pending[key]
        if pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} cases still lack items after {VISIBILITY_TIMEOUT:.0f}s")
            await asyncio.sleep(POLL_PAUSE)


async def measure(items: Sequence[Item], concurrency: int, send: Callable[[Item], Awaitable[str]],
                  seen: Callable[[str], Awaitable[set[str]]],
                  analysed: Callable[[str], Awaitable[set[str]]] | None = None) -> Result:
    """Send every item, then wait until each case (keyed by what ``send`` returned) shows its items, and then,
    with ``analysed``, until it shows them all hashed too."""
    case_of: dict[str, str] = {}

    async def send_one(item: Item) -> None:
        case_of[item.user_id] = await send(item)

    started = time.perf_counter()
    latencies = await run_bounded(items, concurrency, send_one)
    accepted = time.perf_counter() - started
    expected = {case_of[user]: content_ids for user, content_ids in expected_by_user(items).items()}
    await wait_until_visible(expected, concurrency, seen)
    visible = time.perf_counter() - started
    if analysed is not None:
        await wait_until_visible(expected, concurrency, analysed)
    return Result(items=len(items), accepted_seconds=accepted, visible_seconds=visible, latencies=latencies,
                  analysed_seconds=time.perf_counter() - started if analysed is not None else None)


# ---- path 1: the API into cases ---------------------------------------------------------------------------


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


def bench_settings(workdir: Path, database_url: str, client: Client) -> Settings:
    """Settings for one org; its NCMEC credentials are never used, since no case gets as far as filing."""
    org = OrgSettings(
        id=ORG, name="Bench Platform", platform_name="Bench Photos",
        ncmec=NcmecCredentials(username="bench-esp", password=uuid.uuid4().hex),
        reporter=ReporterSettings(first_name="Bench", last_name="Reporter", email="safety@bench.example.com"),
        company_template="Synthetic benchmark platform", legal_url="https://example.com/legal",
    )
    orgs_file = workdir / "orgs.toml"
    orgs_file.write_text(orgs_toml([org]))
    return Settings(data_dir=workdir, database_url=database_url, orgs_file=orgs_file,
                    task_queue=f"bench-cases-{uuid.uuid4().hex[:8]}",
                    temporal_address=client.service_client.config.target_host)


def create_api_keys(engine: Engine) -> dict[Role, str]:
    roles = (Role.PLATFORM, Role.CHILD_SAFETY_MODERATOR)
    return {role: create_api_key(engine, ORG, role, f"bench {role}") for role in roles}


def api_sender(http: httpx.AsyncClient, platform_key: str) -> Callable[[Item], Awaitable[str]]:
    async def send(item: Item) -> str:
        response = await http.post("/v1/content/upload", headers={"X-API-Key": platform_key},
                                   data={"content_id": item.content_id, "creator_id": item.user_id},
                                   files={"file": (f"{item.content_id}.png", item.image, "image/png")})
        if response.status_code != 202:
            raise RuntimeError(f"upload of {item.content_id}: {response.status_code} {response.text[:300]}")
        return response.json()["case_ref"]

    return send


def api_case_reader(http: httpx.AsyncClient, reviewer_key: str, *,
                    analysed_only: bool = False) -> Callable[[str], Awaitable[set[str]]]:
    """The media ids ``GET /v1/cases/{case_ref}`` lists; with ``analysed_only`` those already hashed."""

    async def seen(case_ref: str) -> set[str]:
        response = await http.get(f"/v1/cases/{case_ref}", headers={"X-API-Key": reviewer_key})
        if response.status_code != 200:
            raise RuntimeError(f"GET /v1/cases/{case_ref}: {response.status_code} {response.text[:300]}")
        return {media["media_id"] for media in response.json()["media"]
                if media["analysis"] is not None or not analysed_only}

    return seen


async def measure_api(client: Client, options: Options, workdir: Path) -> tuple[Result, str]:
    """Path 1, with its database, worker and API brought up here and stopped on return."""
    run = uuid.uuid4().hex[:6]
    warmup = make_items(WARMUP_ITEMS, WARMUP_ITEMS, f"warm-{run}", first_seed=1_000_000)
    items = make_items(options.items, options.users, f"api-{run}")
    async with scratch_database(options.postgres, workdir) as (database_url, database):
        engine = make_engine(database_url)
        try:
            settings = bench_settings(workdir, database_url, client)
            keys = create_api_keys(engine)
            app = create_app(settings, temporal=client, engine=engine)
            limits = httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=options.concurrency)
            async with (case_worker(client, settings, engine), serve_app(app) as url,
                        httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT) as http):
                send = api_sender(http, keys[Role.PLATFORM])
                seen = api_case_reader(http, keys[Role.CHILD_SAFETY_MODERATOR])
                analysed = api_case_reader(http, keys[Role.CHILD_SAFETY_MODERATOR], analysed_only=True)
                await measure(warmup, options.concurrency, send, seen, analysed)
                # Waiting for the hashing too lets the worker stop idle, not in the middle of activities.
                result = await measure(items, options.concurrency, send, seen, analysed)
        finally:
            engine.dispose()
    return result, database


# ---- path 2: a bare signal-with-start loop ----------------------------------------------------------------


@workflow.defn(name="BenchInbox")
class BenchInbox:
    """The least a case could be: a workflow that keeps what it is signalled."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.signal
    def add(self, content_id: str) -> None:
        self.received.append(content_id)

    @workflow.query
    def contents(self) -> list[str]:
        return self.received

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


def bare_sender(client: Client, task_queue: str, run: str) -> Callable[[Item], Awaitable[str]]:
    async def send(item: Item) -> str:
        workflow_id = f"bench-inbox-{run}-{item.user_id}"
        await client.start_workflow(BenchInbox.run, id=workflow_id, task_queue=task_queue,
                                    start_signal="add", start_signal_args=[item.content_id],
                                    execution_timeout=timedelta(hours=1))
        return workflow_id

    return send


def bare_reader(client: Client) -> Callable[[str], Awaitable[set[str]]]:
    async def seen(workflow_id: str) -> set[str]:
        return set(await client.get_workflow_handle(workflow_id).query(BenchInbox.contents))

    return seen


async def measure_bare(client: Client, options: Options) -> Result:
    """Path 2, with its worker started here and stopped on return."""
    run = uuid.uuid4().hex[:6]
    task_queue = f"bench-inbox-{run}"
    warmup = make_items(WARMUP_ITEMS, WARMUP_ITEMS, f"warm-{run}", first_seed=1_000_000)
    items = make_items(options.items, options.users, f"bare-{run}")
    async with Worker(client, task_queue=task_queue, workflows=[BenchInbox]):
        send, seen = bare_sender(client, task_queue, run), bare_reader(client)
        await measure(warmup, options.concurrency, send, seen)
        return await measure(items, options.concurrency, send, seen)


# ---- the run -----------------------------------------------------------------------------------------------


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
async def temporal_server(runtime: Runtime) -> AsyncIterator[WorkflowEnvironment]:
    temporal = temporal_binary()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal, search_attributes=[key for key, _ in sa.ALL],
        data_converter=throwaway_converter(), dev_server_log_level="error", runtime=runtime,
    )
    try:
        yield env
    finally:
        await env.shutdown()


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def print_report(options: Options, api: Result, bare: Result, database: str, load_before: str,
                 slow_tasks: dict[str, int]) -> None:
    rows = [
        ("accepted, per second", f"{api.accepted_rate:,.1f}", f"{bare.accepted_rate:,.1f}"),
        ("visible in their cases, per second", f"{api.visible_rate:,.1f}", f"{bare.visible_rate:,.1f}"),
        ("seconds to accept all", f"{api.accepted_seconds:.2f}", f"{bare.accepted_seconds:.2f}"),
        ("seconds until all visible", f"{api.visible_seconds:.2f}", f"{bare.visible_seconds:.2f}"),
        ("seconds until all hashed in cases", f"{api.analysed_seconds or 0:.2f}", "-"),
        ("per-call latency p50, ms", f"{api.latency_ms(0.50):.1f}", f"{bare.latency_ms(0.50):.1f}"),
        ("per-call latency p95, ms", f"{api.latency_ms(0.95):.1f}", f"{bare.latency_ms(0.95):.1f}"),
        ("per-call latency max, ms", f"{max(api.latencies) * 1000:.1f}", f"{max(bare.latencies) * 1000:.1f}"),
    ]
    print(f"Tipline intake: {options.items:,} items over {options.users:,} users, concurrency {options.concurrency}")
    print(f"machine: {os.cpu_count()} CPUs; load average (1/5/15 min) {load_before} at start, "
          f"{load_average()} at end")
    print(f"database: {database}")
    print(f"workflow tasks over 5 s (TMPRL1104): {slow_tasks.get('CaseWorkflow', 0)} CaseWorkflow, "
          f"{slow_tasks.get('other', 0)} other")
    print(f"items: synthetic {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} PNGs of about "
          f"{len(synthetic_image(0, size=IMAGE_SIZE)):,} bytes")
    print()
    print(f"{'':36}{'API upload -> case':>20}{'bare signal-with-start':>24}")
    print(f"{'':36}{'(items)':>20}{'(signals)':>24}")
    for label, api_value, bare_value in rows:
        print(f"{label:36}{api_value:>20}{bare_value:>24}")


async def main() -> None:
    options = parse_options()
    configure_logging("WARNING")  # the API and worker log every item at INFO; keep stdout for the figures
    load_before = load_average()
    slow_tasks = SlowTaskCounter()
    with tempfile.TemporaryDirectory(prefix="tipline-bench-intake-") as tmp:
        async with temporal_server(core_runtime(slow_tasks)) as env:
            api, database = await measure_api(env.client, options, Path(tmp))
            bare = await measure_bare(env.client, options)
    print_report(options, api, bare, database, load_before, slow_tasks.counts)


if __name__ == "__main__":
    asyncio.run(main())
