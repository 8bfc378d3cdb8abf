"""Copying platform media into the evidence store."""

from __future__ import annotations

import asyncio

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from models.filing import PreservedMedia, PreserveMediaBatch, PreserveMediaInput
from tipline.evidence import EvidenceStore
from tipline.logging import fingerprint, get_logger

MAX_MEDIA_BYTES = 2 * 1024**3
BATCH_CONCURRENCY = 8
BATCH_ATTEMPTS = 3
log = get_logger(__name__)


class MediaActivities:
    def __init__(self, store: EvidenceStore, http: httpx.AsyncClient) -> None:
        self.store = store
        self.http = http

    @activity.defn
    async def preserve_media(self, request: PreserveMediaInput) -> PreservedMedia:
        if request.source.evidence is not None:
            return PreservedMedia(evidence=request.source.evidence)
        assert request.source.url is not None
        bound = log.bind(org_id=request.org_id, workflow_id=request.workflow_id,
                     media=fingerprint(request.media_id))
        try:
            with self.store.incoming_file() as (path, sink):
                async with heartbeating(), self.http.stream("GET", request.source.url) as response:
                    if response.status_code in (404, 410):
                        bound.info("media.gone", http_status=response.status_code)
                        return PreservedMedia(error=f"the platform no longer has this media "
                                                    f"(HTTP {response.status_code})")
                    response.raise_for_status()
                    received = 0
                    async for chunk in response.aiter_bytes(1 << 20):
                        received += len(chunk)
                        if received > MAX_MEDIA_BYTES:
                            return PreservedMedia(error=f"media is larger than {MAX_MEDIA_BYTES} bytes")
                        sink.write(chunk)
                sink.close()
                evidence = self.store.put_path(path)
        except httpx.HTTPStatusError as error:
            if 400 <= error.response.status_code < 500:
                raise ApplicationError(f"the platform refused the media download (HTTP "
                                       f"{error.response.status_code})", non_retryable=True) from None
            raise
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
