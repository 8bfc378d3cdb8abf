"""Readiness: can this process do its work now? Each part it depends on is probed, each with its own timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, text
from temporalio.client import Client

from tipline.evidence import EvidenceStore, EvidenceStoreUnavailable
from tipline.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    component: str
    ok: bool
    # A short, fixed description of what went wrong: never a host, address, path or credential.
    problem: str | None = None


async def probe_temporal(client: Client, timeout: float) -> None:
    # The health service answers without touching any namespace or history: cheap, and a true sign of life.
    healthy = await client.service_client.check_health(timeout=timedelta(seconds=timeout))
    if not healthy:
        raise RuntimeError("the workflow service reports it is not serving")


def probe_database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1")).one()


async def _probe(component: str, check: Callable[[], Awaitable[None]], timeout: float) -> ProbeResult:
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        log.warning("readiness.probe_failed", component=component, error="timeout", timeout_seconds=timeout)
        return ProbeResult(component, False, f"no answer within {timeout:g}s")
    except Exception as error:
        # The log (the operator's) gets the reason where it is written to be safe, e.g. which bucket is missing;
        # the answer (which a load balancer or anyone may read) gets the error's type only.
        reason = str(error) if isinstance(error, EvidenceStoreUnavailable) else None
        log.warning("readiness.probe_failed", component=component, error=type(error).__name__, reason=reason)
        return ProbeResult(component, False, f"unavailable ({type(error).__name__})")
    return ProbeResult(component, True)


async def check_readiness(client: Client | None, engine: Engine, store: EvidenceStore,
                          timeout: float) -> list[ProbeResult]:
    """Probe Temporal, the database and the evidence store at once; the slowest bounds the whole check."""

    async def temporal() -> None:
        if client is None:
            raise RuntimeError("not connected")
        await probe_temporal(client, timeout)

    async def database() -> None:
        # In a thread: a database that accepts the connection and then hangs must not stall the event loop.
        await asyncio.to_thread(probe_database, engine)

    async def evidence() -> None:
        await asyncio.to_thread(store.probe)

    return list(await asyncio.gather(_probe("temporal", temporal, timeout), _probe("database", database, timeout),
                                     _probe("evidence_store", evidence, timeout)))
