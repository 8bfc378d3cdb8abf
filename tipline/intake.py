"""Putting content into a user's case: the one place that does signal-with-start, for the API and activities."""

from __future__ import annotations

import asyncio
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


async def enqueue_content(client: Client, registry: RefRegistry, settings: Settings, item: ContentItem) -> str:
    case_ref = await signal_case(client, registry, settings, item.org_id, item.user_id, "add_content", item)
    log.info("content.enqueued", org_id=item.org_id, workflow_id=case_ref, content=fingerprint(item.content_id),
             reason=item.reason.kind)
    return case_ref
