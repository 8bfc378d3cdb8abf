"""Copying platform media into the evidence store, through the guarded egress client."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from structlog.stdlib import BoundLogger
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.heartbeat import heartbeating
from models.filing import PreservedMedia, PreserveMediaBatch, PreserveMediaInput
from tipline.logging import fingerprint, get_logger
from tipline.settings import Settings

if TYPE_CHECKING:
    from tipline.egress import EgressClient
    from tipline.evidence import EvidenceStore

# The HTTP stack is imported when the activity first runs, not by the workflows importing this module.

# The only words a reviewer sees for a failed download: which host, port or status answered stays in the worker,
# so a platform cannot map the inside network through the review page.
MEDIA_NOT_FETCHED = "the media could not be fetched"
MEDIA_GONE = "the platform no longer has this media"
CHUNK_BYTES = 1 << 20
# A batch preserves a few items at once, and tries each a few times before giving its reason.
BATCH_CONCURRENCY = 8
BATCH_ATTEMPTS = 3
log = get_logger(__name__)


class MediaActivities:
    def __init__(self, settings: Settings, store: EvidenceStore, egress: EgressClient) -> None:
        self.settings = settings
        self.store = store
        self.egress = egress

    @activity.defn
    async def preserve_media(self, request: PreserveMediaInput) -> PreservedMedia:
        if request.source.evidence is not None:
            return PreservedMedia(evidence=request.source.evidence)
        assert request.source.url is not None
        import httpx

        from tipline.egress import EgressRefused

        bound = log.bind(org_id=request.org_id, workflow_id=request.workflow_id,
                         media=fingerprint(request.media_id), attempt=activity.info().attempt)
        org = self.settings.orgs.get(request.org_id)
        max_bytes = self.settings.media_max_bytes
        try:
            async with heartbeating():
                with self.store.incoming_file() as (path, sink):
                    async with self.egress.stream("GET", request.source.url,
                                                  allowed_hosts=org.media_allowed_hosts) as response:
                        if response.status_code in (404, 410):
                            bound.info("media.gone", http_status=response.status_code)
                            return PreservedMedia(error=MEDIA_GONE)
                        if response.status_code != 200:
                            return self._failed(bound, f"HTTP {response.status_code}",
                                                retry=response.status_code >= 500 or response.status_code == 429)
                        received = 0
                        # The platform's Content-Type is never read: what the bytes are is decided from the bytes.
                        async for chunk in response.aiter_bytes(CHUNK_BYTES):
                            received += len(chunk)
                            if received > max_bytes:
                                return self._failed(bound, "larger than the size cap", retry=False)
                            await asyncio.to_thread(sink.write, chunk)  # encryption stays off the event loop
                    await asyncio.to_thread(sink.close)
                    evidence = await asyncio.to_thread(self.store.put_path, path)
        except EgressRefused as refused:
            return self._failed(bound, refused.reason, retry=False)
        except TimeoutError:
            return self._failed(bound, "timed out", retry=True)
        except httpx.HTTPError as error:
            return self._failed(bound, type(error).__name__, retry=True)
        bound.info("media.preserved", size=evidence.size)
        return PreservedMedia(evidence=evidence)

    @activity.defn
    async def preserve_media_batch(self, batch: PreserveMediaBatch) -> list[PreservedMedia]:
        """Preserve several items, a few at a time; one that cannot be had is answered with its reason, so the
        others are kept whatever happens to it."""
        limit = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def one(request: PreserveMediaInput) -> PreservedMedia:
            async with limit:
                for attempt in range(1, BATCH_ATTEMPTS + 1):
                    try:
                        return await self.preserve_media(request)
                    except ApplicationError as error:
                        if error.non_retryable or attempt == BATCH_ATTEMPTS:
                            return PreservedMedia(error=error.message)
                    except Exception as error:  # noqa: BLE001 - one item's failure must not cost the batch
                        if attempt == BATCH_ATTEMPTS:
                            # The kind of failure only: the message could tell what answered at that address.
                            return PreservedMedia(error=f"the media could not be downloaded ({type(error).__name__})")
                    await asyncio.sleep(attempt)
                raise AssertionError("unreachable")

        async with heartbeating():
            return list(await asyncio.gather(*(one(request) for request in batch.items)))

    @staticmethod
    def _failed(bound: BoundLogger, reason: str, *, retry: bool) -> PreservedMedia:
        """One concise log line per failed attempt, then either a retry or the generic reason on the case."""
        bound.warning("media.fetch_failed", reason=reason, retryable=retry)
        if retry:
            # BENIGN: Temporal logs the failed attempt at debug level, without its traceback; the line above says it.
            raise ApplicationError(MEDIA_NOT_FETCHED, category=ApplicationErrorCategory.BENIGN)
        return PreservedMedia(error=MEDIA_NOT_FETCHED)
