"""Copying platform media into the evidence store."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from models.filing import PreservedMedia, PreserveMediaInput
from tipline.evidence import EvidenceStore
from tipline.logging import fingerprint, get_logger

MAX_MEDIA_BYTES = 2 * 1024**3
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
