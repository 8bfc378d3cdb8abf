"""Memory a case worker spends per cached case workflow. A script, not a test:

    .venv/bin/python benchmarks/bench_workflow_cache.py [--cases 2000] [--items 3]

On loopback it brings up a Temporal dev server and, in this process, a worker that runs case workflows only
(nothing polls the activity queues, so each case stays where a fresh one waits: its items sent, their
preservation scheduled). It opens ``--cases`` cases of ``--items`` items each through the same
signal-with-start as the API, waits until every case's first workflow task is done (so every one sits in the
worker's sticky cache), and prints the growth of this process's resident memory per cached case: the Python
workflow objects and the SDK core's state machines together. README "Sizing for 100,000 active users" uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from temporalio.client import Client  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities.case_index import CaseIndexActivities  # noqa: E402
from benchmarks.bench_worker_start import ORG, prepare  # noqa: E402
from models.case import ContentItem, EnqueueReason, MediaSource  # noqa: E402
from tipline.codec import data_converter  # noqa: E402
from tipline.db import make_engine  # noqa: E402
from tipline.intake import signal_with_start  # noqa: E402
from tipline.temporal import temporal_binary  # noqa: E402
from worker import WORKFLOWS  # noqa: E402
from workflows import search_attributes as sa  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def items_for(user: str, count: int) -> list[ContentItem]:
    now = datetime.now(UTC)
    return [ContentItem(content_id=f"{user}-post-{n}", org_id=ORG, user_id=user,
                        media=MediaSource(url=f"http://127.0.0.1:9/{user}/{n}.jpg"), received_at=now,
                        file_name=f"upload-{n}.jpg", content_type="image/jpeg",
                        reason=EnqueueReason(kind="platform_signal", at=now)) for n in range(count)]


async def cached_after_first_task(client: Client, workflow_id: str) -> bool:
    description = await client.get_workflow_handle(workflow_id).describe()
    # Two events per task (scheduled, started) plus completed: past the first task the history is longer.
    return description.raw_description.workflow_execution_info.history_length > 4


async def open_cases(client: Client, settings, count: int, items: int) -> list[str]:  # noqa: ANN001
    ids = []
    gate = asyncio.Semaphore(32)

    async def one(n: int) -> None:
        user = f"user-{uuid.uuid4().hex[:10]}"
        workflow_id = f"bench-cache-{n}-{uuid.uuid4().hex[:6]}"
        async with gate:
            await signal_with_start(client, settings, workflow_id, ORG, user, "add_content_batch",
                                    items_for(user, items))
        ids.append(workflow_id)

    await asyncio.gather(*(one(n) for n in range(count)))
    return ids


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2_000)
    parser.add_argument("--items", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tipline-cache-") as tmp:
        settings = await asyncio.to_thread(prepare, Path(tmp), 0)
        settings = settings.model_copy(update={"task_queue": f"bench-cache-{uuid.uuid4().hex[:6]}"})
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(), search_attributes=[key for key, _ in sa.ALL],
            data_converter=data_converter(settings), dev_server_log_level="error")
        try:
            client = env.client
            engine = make_engine(settings.resolved_database_url)
            index = CaseIndexActivities(engine)  # the case's local activity (its user's earlier reports)
            worker = Worker(client, task_queue=settings.task_queue, workflows=WORKFLOWS,
                            activities=[index.user_history], activity_executor=ThreadPoolExecutor(4),
                            max_cached_workflows=args.cases + 100)
            async with worker:
                # A few cases first, so imports, the sandbox and the first workflow's caches are paid already.
                warm = await open_cases(client, settings, 20, args.items)
                while True:  # polled: the server is the only one that knows
                    if all([await cached_after_first_task(client, w) for w in warm]):
                        break
                    await asyncio.sleep(0.2)
                gc.collect()
                before = rss_bytes()
                started = time.monotonic()
                ids = await open_cases(client, settings, args.cases, args.items)
                pending = set(ids)
                while pending:
                    done = [w for w in list(pending)[:200] if await cached_after_first_task(client, w)]
                    pending.difference_update(done)
                    if not done:
                        await asyncio.sleep(0.2)
                elapsed = time.monotonic() - started
                gc.collect()
                after = rss_bytes()
                for w in [*warm, *ids]:
                    await client.get_workflow_handle(w).terminate("benchmark over")
        finally:
            await env.shutdown()
    per_case = (after - before) / args.cases
    load = os.getloadavg()
    print(f"=== {args.cases} cached case workflows of {args.items} items each, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ===")
    print(f"resident memory: {before / 2**20:.0f} MiB before, {after / 2**20:.0f} MiB after; "
          f"{per_case / 1024:.1f} KiB per cached case workflow")
    print(f"opened and ran the first task of {args.cases} cases in {elapsed:.1f} s")
    print(f"so 100,000 cached cases would take about {per_case * 100_000 / 2**30:.1f} GiB in one worker process")


if __name__ == "__main__":
    asyncio.run(main())
