"""The clocks of ``bench_intake.py``: sending items with bounded concurrency, then polling until their cases show
them. The same code times the API path and the bare signal-with-start path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tipline.synthetic import synthetic_image

IMAGE_SIZE = (64, 48)
VISIBILITY_TIMEOUT = 900.0
POLL_PAUSE = 0.02


@dataclass(frozen=True)
class Item:
    user_id: str
    content_id: str
    seed: int  # of its image, so a generator process makes the same one
    image: bytes  # made before any clock starts

    @classmethod
    def of(cls, user_id: str, content_id: str, seed: int) -> Item:
        return cls(user_id=user_id, content_id=content_id, seed=seed, image=synthetic_image(seed, size=IMAGE_SIZE))


def make_items(count: int, users: int, prefix: str, first_seed: int = 0) -> list[Item]:
    """``count`` items round-robin over ``users`` users, so items in flight together mostly go to different cases."""
    return [Item.of(f"{prefix}-user-{n % users:04d}", f"{prefix}-post-{n:05d}", first_seed + n) for n in range(count)]


# Sends the items; returns each call's seconds, each user's case, and when (perf_counter) the first call went out.
SendAll = Callable[[Sequence[Item]], Awaitable[tuple[list[float], dict[str, str], float]]]


def in_process(concurrency: int, send: Callable[[Item], Awaitable[str]]) -> SendAll:
    """Send from this process, at most ``concurrency`` at once."""

    async def send_all(items: Sequence[Item]) -> tuple[list[float], dict[str, str], float]:
        case_of: dict[str, str] = {}

        async def send_one(item: Item) -> None:
            case_of[item.user_id] = await send(item)

        started = time.perf_counter()
        return await run_bounded(items, concurrency, send_one), case_of, started

    return send_all


def expected_by_user(items: Sequence[Item]) -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {}
    for item in items:
        expected.setdefault(item.user_id, set()).add(item.content_id)
    return expected


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
                             seen: Callable[[str], Awaitable[set[str]]], pause: float = POLL_PAUSE) -> None:
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
            await asyncio.sleep(pause)


async def measure(items: Sequence[Item], concurrency: int, send_all: SendAll,
                  seen: Callable[[str], Awaitable[set[str]]],
                  analysed: Callable[[str], Awaitable[set[str]]] | None = None, pause: float = POLL_PAUSE) -> Result:
    """Send every item, then wait until each case (keyed by what sending returned) shows its items, and then,
    with ``analysed``, until it shows them all hashed too. Polling runs ``concurrency`` cases at a time."""
    latencies, case_of, started = await send_all(items)
    accepted = time.perf_counter() - started
    expected = {case_of[user]: content_ids for user, content_ids in expected_by_user(items).items()}
    await wait_until_visible(expected, concurrency, seen, pause)
    visible = time.perf_counter() - started
    if analysed is not None:
        await wait_until_visible(expected, concurrency, analysed, pause)
    return Result(items=len(items), accepted_seconds=accepted, visible_seconds=visible, latencies=latencies,
                  analysed_seconds=time.perf_counter() - started if analysed is not None else None)
