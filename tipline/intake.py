"""Putting content into a user's case: the one place that does signal-with-start, for the API and activities."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from models.case import CaseStart, CaseStatus, ContentItem, FilingPolicy, ReviewPolicy
from tipline.logging import fingerprint, get_logger
from tipline.registry import RefRegistry
from tipline.settings import Settings
from workflows import search_attributes as sa

log = get_logger(__name__)
CASE_WORKFLOW = "CaseWorkflow"
# Signal-with-starts in flight at once for one batch: enough to hide the round trips, few enough to leave the
# frontend to everyone else.
BATCH_CONCURRENCY = 16


def filing_policy(settings: Settings) -> FilingPolicy:
    return FilingPolicy(call_timeout=timedelta(seconds=settings.ncmec_call_timeout_seconds),
                        upload_heartbeat_timeout=timedelta(seconds=settings.upload_heartbeat_timeout_seconds),
                        upload_concurrency=settings.upload_concurrency,
                        enrichment_retry_every=timedelta(seconds=settings.enrichment_retry_seconds))


def review_policy(settings: Settings) -> ReviewPolicy:
    return ReviewPolicy(urgent_within=timedelta(minutes=settings.urgent_review_minutes),
                        elevated_within=timedelta(minutes=settings.elevated_review_minutes),
                        normal_within=timedelta(minutes=settings.normal_review_minutes))


async def signal_case(client: Client, registry: RefRegistry, settings: Settings, org_id: str, user_id: str,
                      signal: str, argument: Any) -> str:
    """Deliver ``signal`` to the user's open case, starting the case if there is none. Returns the case ref.

    The id is recorded as the org's before the case can exist, so no case is ever reachable without a recorded
    owner; a user whose case has a legacy id keeps getting their content there.
    """
    workflow_id = await asyncio.to_thread(registry.case_ref_for, org_id, user_id)
    await signal_with_start(client, settings, workflow_id, org_id, user_id, signal, argument)
    return workflow_id


async def signal_with_start(client: Client, settings: Settings, workflow_id: str, org_id: str, user_id: str,
                            signal: str, argument: Any) -> None:
    """Signal-with-start is atomic per workflow id, so concurrent arrivals for one user never open two cases."""
    await client.start_workflow(
        CASE_WORKFLOW,
        CaseStart(org_id=org_id, user_id=user_id, policy=filing_policy(settings), review=review_policy(settings)),
        id=workflow_id, task_queue=settings.task_queue, start_signal=signal, start_signal_args=[argument],
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.CASE_STATUS, CaseStatus.AWAITING_REVIEW.value),
            SearchAttributePair(sa.ORG, org_id), SearchAttributePair(sa.URGENT, False),
        ]),
        static_summary=f"NCMEC case · org {org_id}",
    )


async def enqueue_batch(client: Client, registry: RefRegistry, settings: Settings, items: Sequence[ContentItem],
                        *, signal_bytes: int, concurrency: int = BATCH_CONCURRENCY) -> list[str]:
    """Put a batch into its users' cases: one ``add_content_batch`` signal(-with-start) per user, not per item.

    Returns each item's case ref, in the order given. A user's items stay in their order and go in as few
    signals as keep each within ``signal_bytes`` of items' JSON (well inside Temporal's payload limit); users'
    signals go out ``concurrency`` at a time.
    """
    by_user: dict[tuple[str, str], list[int]] = {}
    for position, item in enumerate(items):
        by_user.setdefault((item.org_id, item.user_id), []).append(position)
    users = list(by_user)
    # One thread hop for every user's case ref, not one per item.
    refs = await asyncio.to_thread(lambda: [registry.case_ref_for(org, user) for org, user in users])
    gate = asyncio.Semaphore(concurrency)

    async def deliver(user: tuple[str, str], workflow_id: str) -> None:
        async with gate:
            for part in _parts([items[p] for p in by_user[user]], signal_bytes):
                await signal_with_start(client, settings, workflow_id, user[0], user[1], "add_content_batch", part)
                for item in part:
                    log.info("content.enqueued", org_id=item.org_id, workflow_id=workflow_id,
                             content=fingerprint(item.content_id), reason=item.reason.kind, batch=len(part))

    await asyncio.gather(*(deliver(user, ref) for user, ref in zip(users, refs, strict=True)))
    case_refs = [""] * len(items)
    for user, ref in zip(users, refs, strict=True):
        for position in by_user[user]:
            case_refs[position] = ref
    return case_refs


def _parts(items: list[ContentItem], budget: int) -> list[list[ContentItem]]:
    """Consecutive runs of ``items`` whose JSON adds up to at most ``budget`` bytes (an item alone may be more)."""
    parts: list[list[ContentItem]] = []
    size = 0
    for item in items:
        item_size = len(item.model_dump_json())
        if not parts or size + item_size > budget:
            parts.append([])
            size = 0
        parts[-1].append(item)
        size += item_size
    return parts


async def enqueue_content(client: Client, registry: RefRegistry, settings: Settings, item: ContentItem, *,
                          case_ref: str | None = None) -> str:
    """Put ``item`` in its user's case (``case_ref`` when the caller already looked it up)."""
    if case_ref is None:
        case_ref = await signal_case(client, registry, settings, item.org_id, item.user_id, "add_content", item)
    else:
        await signal_with_start(client, settings, case_ref, item.org_id, item.user_id, "add_content", item)
    log.info("content.enqueued", org_id=item.org_id, workflow_id=case_ref, content=fingerprint(item.content_id),
             reason=item.reason.kind, analyzed=item.analysis is not None)
    return case_ref
