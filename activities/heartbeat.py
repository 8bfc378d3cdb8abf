"""Keeping Temporal informed that a slow activity is alive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity

HEARTBEAT_SECONDS = 10.0


@asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Tell Temporal the activity is alive for as long as a call runs, however slowly the other side answers; a dead
    worker's call is then retried after the heartbeat timeout rather than the whole upload timeout."""
    timeout = activity.info().heartbeat_timeout
    interval = timeout.total_seconds() / 3 if timeout else HEARTBEAT_SECONDS

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
