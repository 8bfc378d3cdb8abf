"""How much perceptual hashing delays the worker's event loop: on the activity threads vs in a HashingPool.

The event loop is what answers queries, runs workflow tasks and sends heartbeats for every queue a worker
process serves. This hashes the same images both ways, two at a time, while a probe on the loop measures how
late a 10 ms sleep wakes up. Runs in well under a minute:

    .venv/bin/python benchmarks/bench_hashing_pool.py
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from activities.hashing_pool import HashingPool
from detection.digests import Digests
from detection.media_hashes import hash_media_stream
from models.case import EvidenceRef
from tipline.evidence import EvidenceStore
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

ITEMS = 24
CONCURRENCY = 2
SIZE = (2400, 2400)


async def loop_lag(stop: asyncio.Event) -> list[float]:
    lags = []
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - started - 0.01)
    return lags


def hash_on_thread(store: EvidenceStore, evidence: EvidenceRef) -> None:
    digests = Digests(md5=evidence.md5, sha1=evidence.sha1, sha256=evidence.sha256, size=evidence.size)
    with store.open(evidence.sha256) as media:
        hash_media_stream(media, digests, dihedral=True)


async def measure(name: str, hash_one: object, items: list[EvidenceRef]) -> None:
    stop = asyncio.Event()
    probe = asyncio.create_task(loop_lag(stop))
    started = time.perf_counter()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(evidence: EvidenceRef) -> None:
        async with limit:
            await asyncio.to_thread(hash_one, evidence)  # type: ignore[arg-type]

    await asyncio.gather(*(one(e) for e in items))
    elapsed = time.perf_counter() - started
    stop.set()
    lags = sorted(await probe)
    print(f"{name:<8} {elapsed:6.2f} s for {len(items)} items   loop lag p50 {statistics.median(lags) * 1000:6.1f} ms"
          f"   p99 {lags[int(len(lags) * 0.99)] * 1000:6.1f} ms   max {lags[-1] * 1000:6.1f} ms")


async def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data_dir=Path(data))
        store = EvidenceStore.from_settings(settings)
        items = [store.put_bytes(synthetic_image(seed, size=SIZE)) for seed in range(ITEMS)]
        await measure("threads", lambda e: hash_on_thread(store, e), items)
        pool = HashingPool(settings, CONCURRENCY)
        await asyncio.to_thread(pool.warm_up)
        await measure("pool", lambda e: pool.hash(e, dihedral=True), items)
        pool.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
