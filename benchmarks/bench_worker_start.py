"""How soon a freshly started worker takes work. A script, not a test:

    .venv/bin/python benchmarks/bench_worker_start.py [--rounds 5] [--bank-entries 100000] [--source DIR ...]

On loopback it brings up a Temporal dev server and a SQLite database holding one org with a PDQ bank of
``--bank-entries`` entries, then, each round, starts a case on a task queue nobody polls yet, spawns
``tipline worker`` for that queue, and prints the seconds from the spawn until the worker polls the queue (the
server lists it as a poller), until the case's first workflow task is picked up, until activities are polled
too (the worker starts its workflow worker first, its activity worker once their libraries are imported), and
until the worker says its detection (bank loaded, PDQ scan compiled) is ready. Target: the workflow task
within 1 s. ``--source`` runs the worker from another checkout (e.g. ``git archive <commit> | tar -x -C
/tmp/before``); given several times, rounds alternate between them, so a busy machine slows each alike. An
editable install maps the packages to its own checkout whatever the path says: compare checkouts each from
its own virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from temporalio.api.enums.v1 import EventType, TaskQueueType  # noqa: E402
from temporalio.api.taskqueue.v1 import TaskQueue  # noqa: E402
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from detection.banks import BankRepository, NewEntry  # noqa: E402
from models.case import ContentItem, EnqueueReason, MediaSource  # noqa: E402
from tipline.codec import data_converter  # noqa: E402
from tipline.db import make_engine, upgrade  # noqa: E402
from tipline.intake import signal_case  # noqa: E402
from tipline.registry import RefRegistry  # noqa: E402
from tipline.settings import NcmecCredentials, OrgSettings, ReporterSettings, Settings, orgs_toml  # noqa: E402
from tipline.temporal import temporal_binary  # noqa: E402
from workflows import search_attributes as sa  # noqa: E402

ORG = "bench"
READY_LINE = "worker.detection_ready"


def prepare(workdir: Path, bank_entries: int) -> Settings:
    orgs = workdir / "orgs.toml"
    orgs.write_text(orgs_toml([OrgSettings(
        id=ORG, name="Bench Platform", platform_name="Bench Photos",
        ncmec=NcmecCredentials(username="bench", password="bench-password"),
        reporter=ReporterSettings(first_name="Bench", last_name="Reporter", email="safety@bench.example.com"),
        company_template="Synthetic benchmark platform", legal_url="https://example.com/legal")]))
    settings = Settings(data_dir=workdir, orgs_file=orgs)
    upgrade(settings.resolved_database_url)
    if bank_entries:
        engine = make_engine(settings.resolved_database_url)
        banks = BankRepository(engine)
        bank = banks.create_bank(ORG, "bench-bank")
        rng = __import__("random").Random(7)
        entries = [NewEntry("pdq", f"{rng.getrandbits(256):064x}", external_id=f"e-{n}") for n in range(bank_entries)]
        for start in range(0, len(entries), 20_000):
            banks.add_entries(bank, entries[start:start + 20_000])
        engine.dispose()
    return settings


async def has_poller(client: Client, queue: str,
                     kind: TaskQueueType.ValueType = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW) -> bool:
    request = DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=queue),
                                       task_queue_type=kind)
    return bool((await client.workflow_service.describe_task_queue(request)).pollers)


async def task_picked_up(client: Client, workflow_id: str) -> bool:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED for e in history.events)


async def one_round(client: Client, settings: Settings, log: Path, source: Path
                    ) -> tuple[float, float, float | None, float | None]:
    queue = f"bench-start-{uuid.uuid4().hex[:8]}"
    local = settings.model_copy(update={"task_queue": queue})
    now = datetime.now(UTC)
    item = ContentItem(content_id="item-1", org_id=ORG, user_id=f"user-{uuid.uuid4().hex[:8]}",
                       media=MediaSource(url="http://127.0.0.1:9/gone"), received_at=now,
                       reason=EnqueueReason(kind="platform_signal", at=now))
    engine = make_engine(settings.resolved_database_url)
    try:
        case_ref = await signal_case(client, RefRegistry.from_settings(settings, engine), local, ORG, item.user_id,
                                     "add_content", item)
    finally:
        engine.dispose()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIPLINE_")}
    env.update(TIPLINE_DATA_DIR=str(settings.data_dir), TIPLINE_ORGS_FILE=str(settings.orgs_file),
               TIPLINE_TEMPORAL_ADDRESS=client.service_client.config.target_host, TIPLINE_TASK_QUEUE=queue,
               PYTHONPATH=str(source))
    with log.open("wb") as out:
        spawned = time.monotonic()
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "tipline.cli", "worker", cwd=source,
                                                       env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        polled = picked = ready = activities = None
        while picked is None or ((ready is None or activities is None) and time.monotonic() - spawned < 30):
            elapsed = time.monotonic() - spawned
            if elapsed > 60:
                raise SystemExit(f"the worker took no work within 60 s:\n{await asyncio.to_thread(log.read_text)}")
            if polled is None and await has_poller(client, queue):
                polled = elapsed
            if picked is None and await task_picked_up(client, case_ref):
                picked = elapsed
            if activities is None and await has_poller(client, queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
                activities = elapsed
            if ready is None and READY_LINE in await asyncio.to_thread(log.read_text):
                ready = elapsed
            await asyncio.sleep(0.01)
        assert polled is not None
        return polled, picked, ready, activities
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        await client.get_workflow_handle(case_ref).terminate("benchmark round over")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bank-entries", type=int, default=100_000)
    parser.add_argument("--source", type=Path, action="append", help="a checkout whose worker is started "
                        "(default: this one); repeat to compare")
    args = parser.parse_args()
    sources = [source.resolve() for source in args.source or [REPO]]
    figures: dict[Path, list[tuple[float, float, float | None, float | None]]] = {source: [] for source in sources}
    with tempfile.TemporaryDirectory(prefix="tipline-start-") as tmp:
        settings = await asyncio.to_thread(prepare, Path(tmp), args.bank_entries)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(), search_attributes=[key for key, _ in sa.ALL],
            data_converter=data_converter(settings), dev_server_log_level="error")
        try:
            for _ in range(args.rounds):
                for source in sources:
                    figures[source].append(await one_round(env.client, settings, Path(tmp) / "worker.log", source))
        finally:
            await env.shutdown()
    print(f"=== worker start, {args.rounds} rounds each, a bank of {args.bank_entries} PDQ entries, "
          f"load average {os.getloadavg()[0]:.1f} ===")
    for source, rounds in figures.items():
        print(f"--- worker from {source}")
        for label, index in (("polls", 0), ("first workflow task", 1), ("activities polled", 3),
                             ("detection ready", 2)):
            values = [f[index] for f in rounds if f[index] is not None]
            if values:
                print(f"{label}: median {statistics.median(values):.2f} s, min {min(values):.2f} s, "
                      f"max {max(values):.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
