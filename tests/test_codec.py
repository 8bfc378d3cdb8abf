"""A case with 5,000 items can continue as new: its carried state fits Temporal's payload limit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from models.case import (
    CaseStart,
    CaseState,
    ContentItem,
    EnqueueReason,
    EvidenceRef,
    MediaAnalysis,
    MediaItem,
    MediaSource,
)
from tipline.codec import COMPRESS_FROM_BYTES, DATA_CONVERTER

TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024


def digest(kind: str, n: int, length: int) -> str:
    return hashlib.sha256(f"{kind}-{n}".encode()).hexdigest()[:length]  # as random as real digests


def big_case(items: int) -> CaseState:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    media = []
    for n in range(items):
        evidence = EvidenceRef(sha256=digest("sha256", n, 64), md5=digest("md5", n, 32), sha1=digest("sha1", n, 40),
                               size=100_000 + n)
        content = ContentItem(content_id=f"post-{digest('id', n, 12)}", org_id="acme", user_id="user-123",
                              media=MediaSource(evidence=evidence), file_name=f"IMG_{n:05d}.jpg",
                              content_type="image/jpeg", uploaded_at=start + timedelta(minutes=n),
                              received_at=start + timedelta(minutes=n, seconds=3), upload_ip=f"198.51.100.{n % 250}",
                              reason=EnqueueReason(kind="associated_media", at=start))
        media.append(MediaItem(media_id=content.content_id, content=content, evidence=evidence,
                               reasons=[content.reason],
                               analysis=MediaAnalysis(pdq=digest("pdq", n, 64), pdq_quality=100,
                                                      phash=digest("phash", n, 16))))
    return CaseState(workflow_id="case-acme-" + "0" * 32, org_id="acme", user_id="user-123", opened_at=start,
                     media=media)


async def test_the_carried_state_of_a_5000_item_case_fits_and_round_trips() -> None:
    state = big_case(5000)
    start = CaseStart(org_id="acme", user_id="user-123", state=state)
    assert len(start.model_dump_json()) > 2 * TEMPORAL_PAYLOAD_LIMIT  # far too big uncompressed
    [payload] = await DATA_CONVERTER.encode([start])
    assert len(payload.SerializeToString()) < TEMPORAL_PAYLOAD_LIMIT / 2
    [decoded] = await DATA_CONVERTER.decode([payload], [CaseStart])
    assert decoded == start


async def test_small_payloads_stay_readable_in_the_web_ui() -> None:
    [payload] = await DATA_CONVERTER.encode([EnqueueReason(kind="hash_match", detail="bank x")])
    assert len(payload.data) < COMPRESS_FROM_BYTES and payload.metadata["encoding"] == b"json/plain"
