"""Benchmark intake with every part in its own process: content items per second from the API into cases, beside a
bare signal-with-start loop in the same run, history events per item, and the replay time of a long case.
A script, not a test:

    .venv/bin/python benchmarks/bench_intake.py [--items 2000] [--users 200] [--concurrency 20]
        [--api-processes 1] [--case-workers 1] [--detection-workers 1] [--generators 0] [--postgres URL | --sqlite]
        [--spaced-users 5] [--spaced-items 6] [--replay-items 500]

Issue 16's figures: ``--items 10000 --users 1000 --replay-items 5000``.

One Temporal dev server (in memory, search attributes registered) serves the run. The processes:

- ``--api-processes`` API processes (``tipline api``, uvicorn, each on its own loopback port);
- ``--case-workers`` worker processes serving the cases and platform queues, ``--detection-workers`` serving the
  detection queue (``tipline worker`` with ``TIPLINE_WORKER_QUEUES``), each with the default settings
  (e.g. 2 hashing processes per detection worker);
- the bare loop's worker (``benchmarks/bare_inbox.py``), started once the case workers have stopped;
- the load generator: this process, its clients spread round-robin over the API processes; or, with
  ``--generators N``, N processes (``intake_generator.py``) sharing the concurrency, told to go at once.
  Warm-up, polling and the history phases always run from this process.

All of them share one data folder (orgs file and keys written here first), a scratch PostgreSQL database
(``--postgres``, default ``postgresql://127.0.0.1:5432/postgres``: created on that server, dropped afterwards)
or ``--sqlite`` a file. Their logs (JSON at INFO, as deployed) go to files in a temporary folder.

Phases, one after another:

1. **API into cases.** ``--items`` synthetic 64x48 PNGs round-robin over ``--users`` made-up users, posted to
   ``POST /v1/content/upload`` by ``--concurrency`` clients. *Accepted* stops at the last ``202``; *visible in
   cases* once ``GET /v1/cases/{case_ref}`` lists every user's items (polled only after the last upload);
   then, on the same clock, until every item shows its hashes, so the next phase starts on an idle worker.
2. **History events per item, spaced out** (``intake_history.py``): ``--spaced-users`` users each receive
   ``--spaced-items`` items one at a time; each is sent once the one before is hashed, and a pause later, so
   each arrives in a workflow task of its own. The events of their workflows' histories over the items.
3. **Replay of a long case**: ``--replay-items`` items to one user, then its histories (every run, the case
   continues as new) replayed with ``temporalio.worker.Replayer`` on the worker's workflows and sandbox runner,
   and the deployment's converter: the payloads are encrypted with the data folder's key, which
   ``throwaway_converter()`` lacks. Each process's CPU seconds per path come from ``/proc``.
4. **Bare signal-with-start.** The API and case workers stop; the bare worker starts. The same number of
   signal-with-starts over the same number of workflow ids with the same concurrency, straight from the
   Temporal client: *accepted* when the last call returns, *visible* once a query on every workflow shows all
   of its signals.

A couple of items per path go through first, untimed, to warm connections and caches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx  # noqa: E402
from temporalio.client import Client  # noqa: E402

from api.deps import create_api_key  # noqa: E402
from benchmarks import bare_inbox, intake_history  # noqa: E402
from benchmarks.bench_parts import load_average, scratch_database, temporal_server  # noqa: E402
from benchmarks.intake_measure import Item, Result, SendAll, in_process, make_items, measure  # noqa: E402
from benchmarks.intake_senders import Api, bare_send  # noqa: E402
from benchmarks.processes import (  # noqa: E402
    ACTIVITY_QUEUE,
    WORKFLOW_QUEUE,
    Children,
    children,
    free_port,
    wait_until_polling,
    wait_until_serving,
)
from models.records import Role  # noqa: E402
from tipline.audit_signing import signing_key  # noqa: E402
from tipline.codec import data_converter  # noqa: E402
from tipline.db import make_engine  # noqa: E402
from tipline.ids import id_minter  # noqa: E402
from tipline.payload_keys import key_source  # noqa: E402
from tipline.settings import NcmecCredentials, OrgSettings, ReporterSettings, Settings, orgs_toml  # noqa: E402
from tipline.synthetic import synthetic_image  # noqa: E402
from workflows import task_queues as tq  # noqa: E402

ORG = "bench"
REQUEST_TIMEOUT = 60.0
DEFAULT_POSTGRES = "postgresql://127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Options:
    items: int
    users: int
    concurrency: int
    api_processes: int
    case_workers: int
    detection_workers: int
    postgres: str | None
    spaced_users: int
    spaced_items: int
    replay_items: int
    generators: int


def parse_options() -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--items", type=int, default=2000, help="content items to send (default 2000)")
    add("--users", type=int, default=200, help="made-up users the items are spread over (default 200)")
    add("--concurrency", type=int, default=20, help="requests in flight at once (default 20)")
    add("--api-processes", type=int, default=1, help="API processes (default 1)")
    add("--case-workers", type=int, default=1, help="worker processes for the cases and platform queues (default 1)")
    add("--detection-workers", type=int, default=1, help="worker processes for the detection queue (default 1)")
    add("--generators", type=int, default=0,
        help="load generator processes sharing --concurrency (default 0: this process sends)")
    database = parser.add_mutually_exclusive_group()
    database.add_argument("--postgres", metavar="URL", default=DEFAULT_POSTGRES,
                          help=f"PostgreSQL server to create a scratch database on (default {DEFAULT_POSTGRES})")
    database.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    add("--spaced-users", type=int, default=5, help="users of the spaced-out phase (default 5; 0 skips it)")
    add("--spaced-items", type=int, default=6, help="items each of them receives, one at a time (default 6)")
    add("--replay-items", type=int, default=500, help="items of the replayed case (default 500; 0 skips it)")
    args = parser.parse_args()
    if args.generators < 0 or args.generators > args.concurrency:
        parser.error("--generators must be between 0 and --concurrency")
    if min(args.items, args.users, args.concurrency, args.api_processes, args.case_workers,
           args.detection_workers) < 1 or args.users > args.items:
        parser.error("counts must be positive, and --users at most --items")
    return Options(items=args.items, users=args.users, concurrency=args.concurrency,
                   api_processes=args.api_processes, case_workers=args.case_workers,
                   detection_workers=args.detection_workers, postgres=None if args.sqlite else args.postgres,
                   spaced_users=args.spaced_users, spaced_items=args.spaced_items, replay_items=args.replay_items,
                   generators=args.generators)


# ---- the parts: dev server, database, settings, processes ----------------------------------------------------


def bench_settings(data_dir: Path, database_url: str, temporal_address: str) -> Settings:
    """One org (its NCMEC credentials are never used: no case gets as far as filing), and the keys every process
    shares, written before any starts so none of them races another to create one."""
    org = OrgSettings(
        id=ORG, name="Bench Platform", platform_name="Bench Photos",
        ncmec=NcmecCredentials(username="bench-esp", password=uuid.uuid4().hex),
        reporter=ReporterSettings(first_name="Bench", last_name="Reporter", email="safety@bench.example.com"),
        company_template="Synthetic benchmark platform", legal_url="https://example.com/legal",
    )
    data_dir.mkdir(mode=0o700)
    (data_dir / "orgs.toml").write_text(orgs_toml([org]))
    settings = Settings(data_dir=data_dir, database_url=database_url, temporal_address=temporal_address,
                        task_queue=f"bench-cases-{uuid.uuid4().hex[:8]}")
    key_source(settings)
    id_minter(settings)
    signing_key(settings)
    return settings


def child_env(settings: Settings) -> dict[str, str]:
    return {"TIPLINE_DATA_DIR": str(settings.data_dir), "TIPLINE_DATABASE_URL": settings.resolved_database_url,
            "TIPLINE_TEMPORAL_ADDRESS": settings.temporal_address, "TIPLINE_TASK_QUEUE": settings.task_queue}


async def start_tipline(group: Children, client: Client, settings: Settings, options: Options) -> list[str]:
    """The API, case and detection processes, once each serves or polls; returns the APIs' base URLs."""
    urls = []
    for n in range(options.api_processes):
        port = free_port()
        group.tipline(f"api-{n}", "api", {"TIPLINE_API_PORT": str(port)})
        urls.append(f"http://127.0.0.1:{port}")
    for n in range(options.case_workers):
        group.tipline(f"case-worker-{n}", "worker", {"TIPLINE_WORKER_QUEUES": "cases,platform"})
    for n in range(options.detection_workers):
        group.tipline(f"detection-worker-{n}", "worker", {"TIPLINE_WORKER_QUEUES": "detection"})
    await wait_until_serving(group, urls)
    base = settings.task_queue
    await wait_until_polling(group, client, [
        (base, WORKFLOW_QUEUE, options.case_workers), (base, ACTIVITY_QUEUE, options.case_workers),
        (tq.queue_name(base, tq.PLATFORM), ACTIVITY_QUEUE, options.case_workers),
        (tq.queue_name(base, tq.DETECTION), ACTIVITY_QUEUE, options.detection_workers)])
    return urls


# ---- path 1: the API into cases ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def api_clients(urls: list[str], settings: Settings, concurrency: int) -> AsyncIterator[Api]:
    engine = make_engine(settings.resolved_database_url)
    try:
        keys = {role: create_api_key(engine, ORG, role, f"bench {role}")
                for role in (Role.PLATFORM, Role.CHILD_SAFETY_MODERATOR)}
    finally:
        engine.dispose()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with contextlib.AsyncExitStack() as stack:
        http = [await stack.enter_async_context(httpx.AsyncClient(base_url=url, limits=limits,
                                                                  timeout=REQUEST_TIMEOUT)) for url in urls]
        yield Api(http=http, keys=keys)


def sender(group: Children, options: Options, send: Callable[[Item], Awaitable[str]],
           spec: dict[str, object]) -> SendAll:
    """From this process, or with ``--generators`` from that many processes, the concurrency shared among them
    and the items dealt out in turn."""
    if not options.generators:
        return in_process(options.concurrency, send)
    count = options.generators

    async def send_all(items: Sequence[Item]) -> tuple[list[float], dict[str, str], float]:
        specs = [{**spec, "concurrency": options.concurrency // count + (n < options.concurrency % count),
                  "items": [[item.user_id, item.content_id, item.seed] for item in items[n::count]]}
                 for n in range(count)]
        answers, started = await group.generate(specs)
        latencies = [seconds for answer in answers for seconds in answer["latencies"]]
        case_of = {user: case for answer in answers for user, case in answer["case_of"].items()}
        return latencies, case_of, started

    return send_all


async def measure_api(api: Api, group: Children, options: Options, run: str) -> tuple[Result, dict[str, float]]:
    warmup = make_items(2, 2, f"warm-{run}", first_seed=1_000_000)
    items = make_items(options.items, options.users, f"api-{run}")
    analysed = api.reader(analysed_only=True)
    await measure(warmup, options.concurrency, in_process(options.concurrency, api.send), api.reader(), analysed)
    send_all = sender(group, options, api.send, {"mode": "api", "urls": [str(h.base_url) for h in api.http],
                                                 "key": api.keys[Role.PLATFORM]})
    before = group.cpu_seconds()
    result = await measure(items, options.concurrency, send_all, api.reader(), analysed)
    return result, cpu_used(before, group.cpu_seconds())


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


# ---- path 2: a bare signal-with-start loop -------------------------------------------------------------------


async def measure_bare(group: Children, client: Client, options: Options, run: str) -> tuple[Result, dict[str, float]]:
    task_queue = f"bench-inbox-{run}"
    group.start("bare-worker", ["benchmarks/bare_inbox.py", client.service_client.config.target_host, task_queue])
    await wait_until_polling(group, client, [(task_queue, WORKFLOW_QUEUE, 1)])

    async def send(item: Item) -> str:
        return await bare_send(client, task_queue, run, item)

    async def seen(workflow_id: str) -> set[str]:
        return set(await client.get_workflow_handle(workflow_id).query(bare_inbox.QUERY, result_type=list[str]))

    try:
        await measure(make_items(2, 2, f"warm-{run}", first_seed=1_000_000), options.concurrency,
                      in_process(options.concurrency, send), seen)
        send_all = sender(group, options, send, {"mode": "bare", "address": client.service_client.config.target_host,
                                                 "task_queue": task_queue, "run": run})
        before = group.cpu_seconds()
        result = await measure(make_items(options.items, options.users, f"bare-{run}"), options.concurrency,
                               send_all, seen)
        return result, cpu_used(before, group.cpu_seconds())
    finally:
        group.stop(["bare-worker"])


# ---- the run ---------------------------------------------------------------------------------------------------


def slow_workflow_tasks(log_dir: Path) -> int:
    """The SDK core's "workflow task took over 5 seconds" warnings (TMPRL1104) in the case workers' logs."""
    return sum(path.read_text(errors="replace").count("TMPRL1104") for path in log_dir.glob("case-worker-*.log"))


def print_report(options: Options, database: str, api: Result, bare: Result,
                 history: intake_history.Figures, loads: dict[str, str], slow_tasks: int,
                 cpu: tuple[dict[str, float], dict[str, float]]) -> None:
    rows = [
        ("accepted, per second", f"{api.accepted_rate:,.1f}", f"{bare.accepted_rate:,.1f}"),
        ("visible in their cases, per second", f"{api.visible_rate:,.1f}", f"{bare.visible_rate:,.1f}"),
        ("seconds to accept all", f"{api.accepted_seconds:.2f}", f"{bare.accepted_seconds:.2f}"),
        ("seconds until all visible", f"{api.visible_seconds:.2f}", f"{bare.visible_seconds:.2f}"),
        ("seconds until all hashed in cases", f"{api.analysed_seconds or 0:.2f}", "-"),
        ("accept latency p50, ms", f"{api.latency_ms(0.50):.1f}", f"{bare.latency_ms(0.50):.1f}"),
        ("accept latency p99, ms", f"{api.latency_ms(0.99):.1f}", f"{bare.latency_ms(0.99):.1f}"),
        ("accept latency max, ms", f"{max(api.latencies) * 1000:.1f}", f"{max(bare.latencies) * 1000:.1f}"),
    ]
    print(f"Tipline intake, separate processes: {options.items:,} items over {options.users:,} users, "
          f"concurrency {options.concurrency}")
    print(f"processes: {options.api_processes} API, {options.case_workers} case worker(s) (cases, platform), "
          f"{options.detection_workers} detection worker(s), 1 bare worker, the dev server, "
          + (f"{options.generators} load generator processes" if options.generators else "this load generator"))
    print(f"machine: {os.cpu_count()} CPUs; load average (1/5/15 min): "
          + "; ".join(f"{when} {value}" for when, value in loads.items()))
    print(f"database: {database}")
    print(f"case workflow tasks over 5 s (TMPRL1104 in the case workers' logs): {slow_tasks}")
    print(f"items: synthetic 64x48 PNGs of about {len(synthetic_image(0, size=(64, 48))):,} bytes")
    print()
    print(f"{'':36}{'API upload -> case':>20}{'bare signal-with-start':>24}")
    for label, api_value, bare_value in rows:
        print(f"{label:36}{api_value:>20}{bare_value:>24}")
    print(f"{'API / bare, accepted per second':36}{api.accepted_rate / bare.accepted_rate:>20.2f}")
    print(f"{'API / bare, visible per second':36}{api.visible_rate / bare.visible_rate:>20.2f}")
    for path, used in zip(("API path (until all hashed)", "bare path"), cpu, strict=True):
        print(f"CPU seconds of the {path}: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in used.items()))
    print()
    for line in history.lines():
        print(line)


async def main() -> None:
    options = parse_options()
    run = uuid.uuid4().hex[:6]
    loads = {"start": load_average()}
    with tempfile.TemporaryDirectory(prefix="tipline-bench-intake-") as tmp:
        workdir = Path(tmp)
        async with temporal_server() as env:
            address = env.client.service_client.config.target_host
            async with scratch_database(options.postgres, workdir) as (database_url, database):
                settings = bench_settings(workdir / "data", database_url, address)
                client = await Client.connect(address, data_converter=data_converter(settings))
                with children(workdir, child_env(settings)) as group:
                    try:
                        urls = await start_tipline(group, client, settings, options)
                        async with api_clients(urls, settings, options.concurrency) as api:
                            loads["before the API path"] = load_average()
                            api_result, api_cpu = await measure_api(api, group, options, run)
                            loads["after the API path"] = load_average()
                            history = await intake_history.measure(api, client, options.spaced_users,
                                                                   options.spaced_items, options.replay_items, run)
                        group.stop([name for name in list(group.running) if name != "bare-worker"])
                        loads["before the bare path"] = load_average()
                        bare_result, bare_cpu = await measure_bare(group, client, options, run)
                        loads["after the bare path"] = load_average()
                    except Exception:
                        for name in list(group.running):
                            print(f"--- {name} (last lines) ---\n{group.log_tail(name)}", file=sys.stderr)
                        raise
        slow_tasks = slow_workflow_tasks(workdir)
    print_report(options, database, api_result, bare_result, history, loads, slow_tasks, (api_cpu, bare_cpu))


if __name__ == "__main__":
    asyncio.run(main())
