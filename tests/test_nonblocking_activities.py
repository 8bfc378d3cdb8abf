"""Activities never block the worker's event loop, and read media as streams: memory does not grow with the
size of a file, and the loop keeps ticking (heartbeats, polling, other activities) while one waits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import threading
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import Engine
from temporalio.testing import ActivityEnvironment

from activities.detection import DetectionActivities
from activities.filing import FilingActivities
from cybertipline.enums import IncidentType
from detection.classifier import ContentSafetyHttpClassifier, Priority
from models.case import EvidenceRef, ReviewDecision
from models.filing import (
    AbandonReportInput,
    AnalyzeMediaInput,
    BankReportedMediaInput,
    OpenReportInput,
    ReportedMedia,
    UploadFileInput,
)
from tests.helpers import ORG, Sandbox
from tipline.evidence import EvidenceStore
from tipline.http_server import serve_app
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

MB = 1 << 20
LOCK_SECONDS = 1.5
SLOW_READ_SECONDS = 0.3


@dataclass
class LoopLag:
    worst: float = 0.0
    waiting_since: float = 0.0


@asynccontextmanager
async def loop_lag() -> AsyncIterator[LoopLag]:
    """How late the event loop ran a 10 ms timer, at worst, while the block ran."""
    lag = LoopLag(waiting_since=time.monotonic())

    async def tick() -> None:
        while True:
            lag.waiting_since = time.monotonic()
            await asyncio.sleep(0.01)
            lag.worst = max(lag.worst, time.monotonic() - lag.waiting_since - 0.01)

    task = asyncio.create_task(tick())
    try:
        yield lag
    finally:
        # The timer in flight counts too: a stall just before the block ends may not have been seen yet.
        lag.worst = max(lag.worst, time.monotonic() - lag.waiting_since - 0.01)
        task.cancel()


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The peak of Python allocations (every thread) while the block ran, in bytes."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def jpeg_with_trailing_bytes(seed: int, trailing: int) -> bytes:
    """A valid image followed by junk, as platforms do see: its pixels are small, its file is not."""
    return synthetic_image(seed, image_format="JPEG") + os.urandom(trailing)


def preserve(store: EvidenceStore, data: bytes) -> EvidenceRef:
    return store.put_stream(io.BytesIO(data))


async def test_the_loop_runs_while_an_activity_waits_on_the_database(
    settings: Settings, engine: Engine, database_url: str
) -> None:
    filing = FilingActivities(settings, engine, EvidenceStore.from_settings(settings))
    env = ActivityEnvironment()
    opened = await env.run(filing.open_report, OpenReportInput(
        org_id=ORG, workflow_id=f"case-{uuid.uuid4().hex}", case_number=1, user_id="user-lag",
        decision=ReviewDecision(reviewer_id="admin:1", incident_type=IncidentType.CHILD_PORNOGRAPHY),
        incident_at=datetime.now(UTC)))
    # Another connection holds the report's row: abandon_report's write waits for it, as behind a slow database.
    locker = psycopg.connect(database_url)
    locker.execute("SELECT id FROM filed_report WHERE ncmec_report_id = %s FOR UPDATE", (opened.report_id,))
    release = threading.Timer(LOCK_SECONDS, locker.commit)  # a thread: the loop may not be needed to let go
    release.start()
    try:
        async with loop_lag() as lag:
            started = time.monotonic()
            await env.run(filing.abandon_report, AbandonReportInput(org_id=ORG, report_id=opened.report_id,
                                                                    reason="test"))
            waited = time.monotonic() - started
    finally:
        release.join()
        locker.close()
    assert waited >= LOCK_SECONDS * 0.9, "the activity did not wait on the lock; the test proves nothing"
    assert lag.worst < 0.3, f"the event loop stalled for {lag.worst:.2f}s during a database wait"


class SlowReadingStore(EvidenceStore):
    """Evidence on slow storage (a network disk, a busy volume): each read of the stream takes a while."""

    def open(self, sha256: str) -> SlowReader:  # type: ignore[override]
        return SlowReader(super().open(sha256))


class SlowReader(io.RawIOBase):
    def __init__(self, inner: io.RawIOBase) -> None:
        self.inner = inner

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.inner.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.inner.seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(SLOW_READ_SECONDS)
        return self.inner.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        time.sleep(SLOW_READ_SECONDS)
        return self.inner.readinto(buffer)

    def close(self) -> None:
        self.inner.close()
        super().close()


async def test_an_upload_reads_the_evidence_off_the_event_loop(settings: Settings, engine: Engine,
                                                              sandbox: Sandbox) -> None:
    """Every read of the evidence (decrypting, checking) runs on a thread: heartbeats and other activities go on
    while a file from slow storage is uploaded, and NCMEC receives the very bytes preserved."""
    store = SlowReadingStore.from_settings(settings)
    filing = FilingActivities(settings, engine, store)
    env = ActivityEnvironment()
    opened = await env.run(filing.open_report, OpenReportInput(
        org_id=ORG, workflow_id=f"case-{uuid.uuid4().hex}", case_number=1, user_id="user-upload-lag",
        decision=ReviewDecision(reviewer_id="admin:1", incident_type=IncidentType.CHILD_PORNOGRAPHY),
        incident_at=datetime.now(UTC)))
    evidence = preserve(store, jpeg_with_trailing_bytes(87_002, 3 * MB))
    async with loop_lag() as lag:
        started = time.monotonic()
        uploaded = await env.run(filing.upload_file, UploadFileInput(
            org_id=ORG, report_id=opened.report_id, media_id="m-1", evidence=evidence, file_name="m-1.jpg"))
        took = time.monotonic() - started
    assert uploaded.md5 == evidence.md5  # the activity checks NCMEC's hash of what it received against it
    assert took >= 4 * SLOW_READ_SECONDS, "the reads were not slow; the test proves nothing"
    assert lag.worst < SLOW_READ_SECONDS * 0.8, f"the event loop stalled for {lag.worst:.2f}s during the upload"


@pytest.fixture(scope="module")
def detection(settings: Settings, engine: Engine) -> DetectionActivities:
    detection = DetectionActivities(settings, EvidenceStore.from_settings(settings), engine)
    detection.prepare()  # the bank load and imports, so only the hashing itself is measured
    return detection


async def test_hashing_and_classifying_memory_does_not_grow_with_file_size(detection: DetectionActivities) -> None:
    env = ActivityEnvironment()
    peaks: dict[int, int] = {}
    pdqs: set[str | None] = set()
    for trailing in (1 * MB, 48 * MB):
        evidence = preserve(detection.store, jpeg_with_trailing_bytes(87_001, trailing))
        request = AnalyzeMediaInput(org_id=ORG, evidence=evidence)
        with peak_memory() as peak:
            async with loop_lag() as lag:
                analysis = await asyncio.to_thread(env.run, detection.analyze_media, request)
                priority = await env.run(detection.classify_media, request)
                added = await asyncio.to_thread(env.run, detection.bank_reported_media, BankReportedMediaInput(
                    org_id="a", report_id=trailing, items=[ReportedMedia(media_id="m", evidence=evidence)]))
        assert priority == Priority.VERY_LOW.name and added >= 2 and analysis.pdq
        assert lag.worst < 0.3, f"the event loop stalled for {lag.worst:.2f}s while classifying"
        peaks[trailing] = peak[0]
        pdqs.add(analysis.pdq)
    assert len(pdqs) == 1  # the same picture, whatever follows it
    grown = peaks[48 * MB] - peaks[1 * MB]
    assert grown < 4 * MB and peaks[48 * MB] < 24 * MB, {size // MB: p / MB for size, p in peaks.items()}


async def test_the_http_classifier_streams_the_file_into_its_request() -> None:
    received: dict[str, object] = {}
    app = FastAPI()

    @app.post("/v1beta1/images:classify")
    async def classify(request: Request) -> dict:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        received.update(sha256=digest.hexdigest(), size=size)
        return {"reviewPriorities": ["HIGH"]}

    image = os.urandom(30 * MB)
    expected = b'{"images": ["' + base64.b64encode(image) + b'"]}'
    async with serve_app(app) as url, ContentSafetyHttpClassifier(f"{url}/v1beta1/images:classify", "k" * 40,
                                                                  timeout=30) as classifier:
        source = io.BytesIO(image)
        with peak_memory() as peak:
            priority = await classifier.classify(source)
    assert priority is Priority.HIGH
    assert received == {"sha256": hashlib.sha256(expected).hexdigest(), "size": len(expected)}
    assert peak[0] < 8 * MB, f"classifying a 30 MB file allocated {peak[0] / MB:.1f} MB"
