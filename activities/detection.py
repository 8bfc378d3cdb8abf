"""Hashing, bank matching and classification of preserved media."""

from __future__ import annotations

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
from detection.matcher import BankMatcher
from detection.media_hashes import hash_media
from models.case import BankMatchSummary, MediaAnalysis
from models.filing import AnalyzeMediaBatch, AnalyzeMediaInput, BankReportedMediaInput
from tipline.evidence import EvidenceStore
from tipline.settings import Settings

# Larger files (videos) are kept and filed by their digests; perceptual hashing is for images.
MAX_ANALYZED_BYTES = 64 * 1024 * 1024


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
            return MediaAnalysis(unhashable_reason="too large to hash perceptually; matched by its digests only")
        # The dihedral variants catch mirrored and rotated copies at about the cost of one more hash.
        hashes = hash_media(self.store.read_bytes(request.evidence.sha256), dihedral=True)
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
    def analyze_media_batch(self, batch: AnalyzeMediaBatch) -> list[MediaAnalysis]:
        """Hash and match several items in one activity; one that cannot be hashed says why, the rest go on."""
        results = []
        for evidence in batch.items:
            activity.heartbeat()
            try:
                results.append(self.analyze_media(AnalyzeMediaInput(org_id=batch.org_id, evidence=evidence)))
            except Exception as error:  # noqa: BLE001 - one unreadable item must not cost the batch
                results.append(MediaAnalysis(unhashable_reason=f"the media could not be hashed "
                                                               f"({type(error).__name__})"))
        return results

    @activity.defn
    async def classify_media(self, request: AnalyzeMediaInput) -> str | None:
        """The classifier's priority (VERY_LOW … VERY_HIGH), or None for what it cannot read."""
        config = self.settings.orgs.get(request.org_id).classifier
        data = self.store.read_bytes(request.evidence.sha256)
        try:
            if config.endpoint is None:
                priority = await SandboxClassifier().classify(data)
            else:
                api_key = config.api_key.get_secret_value() if config.api_key else ""
                async with ContentSafetyHttpClassifier(config.endpoint, api_key, timeout=30.0) as classifier:
                    priority = await classifier.classify(data)
        except ClassifierRejected:
            return None
        except ClassifierUnavailable as error:
            raise ApplicationError(f"the classifier is unavailable: {error}") from None
        return priority.name

    @activity.defn
    def bank_reported_media(self, request: BankReportedMediaInput) -> int:
        """Add what the org just reported to its own bank, so crops and edits of it are caught next time."""
        added = 0
        for item in request.items:
            hashes = hash_media(self.store.read_bytes(item.evidence.sha256))
            added += len(self.banks.add_reported_media(request.org_id, hashes,
                                                       external_id=f"{request.report_id}:{item.media_id}",
                                                       classification=item.classification))
        return added

    def _refresh_banks(self) -> None:
        # A refresh that finds nothing new costs a millisecond or two, so bank changes (imports, allowlist,
        # feed deletions) apply to the very next item, without a restart.
        with self._refresh_lock:
            self.matcher.refresh()
