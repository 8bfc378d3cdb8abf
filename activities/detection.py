"""Hashing, bank matching and classification of preserved media.

Media are read from the evidence store as streams, never whole: hashing and the sandbox classifier decode from
the stream (memory bounded by the image pixel limits), the HTTP classifier streams the request body. The hashing
activities are synchronous and run on the worker's thread pool; ``classify_media`` is async for its HTTP call and
does its file reads on threads.

With a ``HashingPool`` (the worker's default), the hashing itself runs in processes of its own: the activity
thread waits for it without holding the GIL, and matching stays here, against the banks loaded once.

The hashing and matching libraries (numpy, numba, scipy, imagehash, PIL) take seconds to import, and the
banks and the compiled PDQ scan more to load; none of that is on the worker's start path. ``prepare`` does it
once, in the background after the worker polls, and every detection activity waits for it (or does it itself
if the background attempt failed), so the first match sees the full banks.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.case import BankMatchSummary, EvidenceRef, MediaAnalysis
from models.filing import AnalyzeMediaBatch, AnalyzeMediaInput, BankReportedMediaInput
from tipline.logging import get_logger
from tipline.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from activities.hashing_pool import HashingPool
    from detection.banks import BankRepository
    from detection.matcher import BankMatcher
    from detection.media_hashes import MediaHashes
    from tipline.evidence import EvidenceStore

log = get_logger(__name__)
# Larger files (videos) are kept and filed by their digests; perceptual hashing and classifying are for images.
MAX_ANALYZED_BYTES = 64 * 1024 * 1024
TOO_LARGE = "too large to hash perceptually; matched by its digests only"
# While the banks load, an activity heartbeats this often: its heartbeat timeout can stay short.
PREPARE_HEARTBEAT_SECONDS = 5


class DetectionActivities:
    def __init__(self, settings: Settings, store: EvidenceStore, engine: Engine,
                 hashing: HashingPool | None = None) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.hashing = hashing
        self._matcher: BankMatcher | None = None
        self._banks: BankRepository | None = None
        self._prepare_lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    def prepare(self) -> BankMatcher:
        """Import the detection libraries, load every enabled bank and compile the PDQ scan, once.

        Thread-safe: a caller that arrives while another prepares waits for it and shares the result."""
        with self._prepare_lock:
            if self._matcher is not None:
                return self._matcher
            started = time.perf_counter()
            from detection import pdq_index
            from detection.banks import BankRepository
            from detection.matcher import BankMatcher

            matcher = BankMatcher(self.engine, snapshot_dir=self.settings.data_dir / "bank-snapshots")
            matcher.load()
            pdq_index.warm_up()
            importlib.import_module("detection.classifier")  # so the first classify_media finds it imported
            self._banks = BankRepository(self.engine)
            self._matcher = matcher
            log.info("worker.detection_ready", seconds=round(time.perf_counter() - started, 3),
                     entries=matcher.entry_count())
            return matcher

    def prepare_heartbeating(self) -> BankMatcher:
        """``prepare`` inside an activity: heartbeats while a large bank loads, so a short heartbeat timeout
        tells a worker that died (its attempt is retried at once) from one that is busy loading."""
        if self._matcher is not None:
            return self._matcher
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="detection-prepare") as loader:
            loading = loader.submit(self.prepare)
            while True:
                try:
                    return loading.result(timeout=PREPARE_HEARTBEAT_SECONDS)
                except TimeoutError:
                    activity.heartbeat()

    @activity.defn
    def analyze_media(self, request: AnalyzeMediaInput) -> MediaAnalysis:
        """Hash the item and look it up in every enabled bank of the org."""
        self._link_to_case(request)
        if request.evidence.size > MAX_ANALYZED_BYTES:
            return MediaAnalysis(unhashable_reason=TOO_LARGE)
        matcher = self.prepare()
        # The dihedral variants catch mirrored and rotated copies at about the cost of one more hash.
        hashes = self._hash(request.evidence, dihedral=True)
        self._refresh_banks(matcher)
        matches = matcher.match(request.org_id, hashes)
        image = hashes.image
        return MediaAnalysis(
            pdq=image.pdq if image else None, pdq_quality=image.pdq_quality if image else None,
            phash=image.phash if image else None, unhashable_reason=hashes.unhashable_reason,
            matches=[BankMatchSummary(bank_name=m.bank_name, hash_type=m.hash_type, distance=m.distance,
                                      external_id=m.external_id, classification=m.classification) for m in matches],
        )

    def _link_to_case(self, request: AnalyzeMediaInput) -> None:
        # Every item a case holds is analysed once preserved, uploaded or fetched: here is where the purge
        # learns which objects the user's cases rely on (tipline.purge).
        if activity.in_activity() and activity.info().workflow_type == "CaseWorkflow":
            # Imported here: the workflows import this module, and a worker's start should not wait for SQLAlchemy.
            from tipline.retention import link_evidence

            link_evidence(self.engine, request.org_id, activity.info().workflow_id, request.evidence.sha256)

    @activity.defn
    def analyze_media_batch(self, batch: AnalyzeMediaBatch) -> list[MediaAnalysis]:
        """Hash and match several items in one activity; one that cannot be hashed says why, the rest go on."""
        from tipline.evidence import EvidenceCorrupted

        activity.heartbeat()
        self.prepare_heartbeating()
        results = []
        for evidence in batch.items:
            activity.heartbeat()
            try:
                results.append(self.analyze_media(AnalyzeMediaInput(org_id=batch.org_id, evidence=evidence)))
            except EvidenceCorrupted as error:  # the item's own stored bytes: the rest of the batch goes on
                results.append(MediaAnalysis(unhashable_reason=f"the media could not be hashed "
                                                               f"({type(error).__name__})"))
            # Anything else (the database restarting, a hashing process dying, the store unreachable) is no fault
            # of the item: the attempt fails and is retried, and the case retries later (workflows/case_media.py).
        return results

    @activity.defn
    async def classify_media(self, request: AnalyzeMediaInput) -> str | None:
        """The classifier's priority (VERY_LOW … VERY_HIGH), or None for what it cannot read."""
        if request.evidence.size > MAX_ANALYZED_BYTES:
            return None  # not an image the classifier could read
        # Imported on a thread the first time: an import of numpy and fastapi would hold the event loop.
        classifiers = await asyncio.to_thread(importlib.import_module, "detection.classifier")
        config = self.settings.orgs.get(request.org_id).classifier
        media = await asyncio.to_thread(self.store.open, request.evidence.sha256)
        try:
            if config.endpoint is None:
                priority = await classifiers.SandboxClassifier().classify(media)
            else:
                api_key = config.api_key.get_secret_value() if config.api_key else ""
                http_classifier = classifiers.ContentSafetyHttpClassifier(config.endpoint, api_key, timeout=30.0)
                async with http_classifier as classifier:
                    priority = await classifier.classify(media)
        except classifiers.ClassifierRejected:
            return None
        except classifiers.ClassifierUnavailable as error:
            raise ApplicationError(f"the classifier is unavailable: {error}") from None
        finally:
            media.close()
        return priority.name

    @activity.defn
    def bank_reported_media(self, request: BankReportedMediaInput) -> int:
        """Add what the org just reported to its own bank, so crops and edits of it are caught next time.
        Heartbeats per item, so the case hears within seconds of a worker dying, not at the end of its timeout."""
        activity.heartbeat()
        self.prepare_heartbeating()
        assert self._banks is not None
        added = 0
        for item in request.items:
            activity.heartbeat()
            hashes = self._hash(item.evidence)
            added += len(self._banks.add_reported_media(request.org_id, hashes,
                                                       external_id=f"{request.report_id}:{item.media_id}",
                                                       classification=item.classification))
        return added

    def _hash(self, evidence: EvidenceRef, *, dihedral: bool = False) -> MediaHashes:
        from detection.digests import Digests
        from detection.media_hashes import MediaHashes, hash_media_stream

        # The digests are the evidence's own: the store checked them when it sealed the bytes.
        digests = Digests(md5=evidence.md5, sha1=evidence.sha1, sha256=evidence.sha256, size=evidence.size)
        if evidence.size > MAX_ANALYZED_BYTES:
            return MediaHashes(digests=digests, unhashable_reason=TOO_LARGE)
        if self.hashing is not None:
            beat = activity.heartbeat if activity.in_activity() else None
            return MediaHashes.model_validate_json(self.hashing.hash(evidence, dihedral=dihedral, while_waiting=beat,
                                                                     every=PREPARE_HEARTBEAT_SECONDS))
        with self.store.open(evidence.sha256) as media:
            return hash_media_stream(media, digests, dihedral=dihedral)

    def _refresh_banks(self, matcher: BankMatcher) -> None:
        # A refresh that finds nothing new costs a millisecond or two, so bank changes (imports, allowlist,
        # feed deletions) apply to the very next item, without a restart.
        with self._refresh_lock:
            matcher.refresh()
