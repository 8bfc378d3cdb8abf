"""Hashing, bank matching and classification of preserved media.

Media are read from the evidence store as streams, never whole: hashing and the sandbox classifier decode from
the stream (memory bounded by the image pixel limits), the HTTP classifier streams the request body. The hashing
activities are synchronous and run on the worker's thread pool; ``classify_media`` is async for its HTTP call and
does its file reads on threads.
"""

from __future__ import annotations

import asyncio
import threading

from temporalio import activity
from temporalio.exceptions import ApplicationError

from detection.banks import BankRepository
from detection.classifier import (
    ClassifierRejected,
    ClassifierUnavailable,
    ContentSafetyHttpClassifier,
    SandboxClassifier,
)
from detection.digests import Digests
from detection.matcher import BankMatcher
from detection.media_hashes import MediaHashes, hash_media_stream
from models.case import BankMatchSummary, EvidenceRef, MediaAnalysis
from models.filing import AnalyzeMediaInput, BankReportedMediaInput
from tipline.evidence import EvidenceStore
from tipline.settings import Settings

# Larger files (videos) are kept and filed by their digests; perceptual hashing and classifying are for images.
MAX_ANALYZED_BYTES = 64 * 1024 * 1024
TOO_LARGE = "too large to hash perceptually; matched by its digests only"


class DetectionActivities:
    def __init__(self, settings: Settings, store: EvidenceStore, matcher: BankMatcher) -> None:
        self.settings = settings
        self.store = store
        self.matcher = matcher
        self.banks = BankRepository(matcher.engine)
        self._refresh_lock = threading.Lock()

    @activity.defn
    def analyze_media(self, request: AnalyzeMediaInput) -> MediaAnalysis:
        """Hash the item and look it up in every enabled bank of the org."""
        if request.evidence.size > MAX_ANALYZED_BYTES:
            return MediaAnalysis(unhashable_reason=TOO_LARGE)
        # The dihedral variants catch mirrored and rotated copies at about the cost of one more hash.
        hashes = self._hash(request.evidence, dihedral=True)
        self._refresh_banks()
        matches = self.matcher.match(request.org_id, hashes)
        image = hashes.image
        return MediaAnalysis(
            pdq=image.pdq if image else None, pdq_quality=image.pdq_quality if image else None,
            phash=image.phash if image else None, unhashable_reason=hashes.unhashable_reason,
            matches=[BankMatchSummary(bank_name=m.bank_name, hash_type=m.hash_type, distance=m.distance,
                                      external_id=m.external_id, classification=m.classification) for m in matches],
        )

    @activity.defn
    async def classify_media(self, request: AnalyzeMediaInput) -> str | None:
        """The classifier's priority (VERY_LOW … VERY_HIGH), or None for what it cannot read."""
        config = self.settings.orgs.get(request.org_id).classifier
        if request.evidence.size > MAX_ANALYZED_BYTES:
            return None  # not an image the classifier could read
        media = await asyncio.to_thread(self.store.open, request.evidence.sha256)
        try:
            if config.endpoint is None:
                priority = await SandboxClassifier().classify(media)
            else:
                api_key = config.api_key.get_secret_value() if config.api_key else ""
                async with ContentSafetyHttpClassifier(config.endpoint, api_key, timeout=30.0) as classifier:
                    priority = await classifier.classify(media)
        except ClassifierRejected:
            return None
        except ClassifierUnavailable as error:
            raise ApplicationError(f"the classifier is unavailable: {error}") from None
        finally:
            media.close()
        return priority.name

    @activity.defn
    def bank_reported_media(self, request: BankReportedMediaInput) -> int:
        """Add what the org just reported to its own bank, so crops and edits of it are caught next time."""
        added = 0
        for item in request.items:
            hashes = self._hash(item.evidence)
            added += len(self.banks.add_reported_media(request.org_id, hashes,
                                                       external_id=f"{request.report_id}:{item.media_id}",
                                                       classification=item.classification))
        return added

    def _hash(self, evidence: EvidenceRef, *, dihedral: bool = False) -> MediaHashes:
        # The digests are the evidence's own: the store checked them when it sealed the bytes.
        digests = Digests(md5=evidence.md5, sha1=evidence.sha1, sha256=evidence.sha256, size=evidence.size)
        if evidence.size > MAX_ANALYZED_BYTES:
            return MediaHashes(digests=digests, unhashable_reason=TOO_LARGE)
        with self.store.open(evidence.sha256) as media:
            return hash_media_stream(media, digests, dihedral=dihedral)

    def _refresh_banks(self) -> None:
        # A refresh that finds nothing new costs a millisecond or two, so bank changes (imports, allowlist,
        # feed deletions) apply to the very next item, without a restart.
        with self._refresh_lock:
            self.matcher.refresh()
