"""Hashing and matching an upload in the API, which already holds its bytes (README, "Uploads hashed where they
arrive").

The case then receives the item with its analysis and never waits for a detection worker: the hashes, the bank
matches and the reason are those the detection workers would find (the same code, ``activities.detection``,
called outside an activity). It is an optimisation with the old path behind it: while the banks load, when every
slot is busy, or when anything fails, the item goes to its case without an analysis and the case has it hashed
on the detection queue as before. So an upload is never refused or delayed for want of hashing.
"""

from __future__ import annotations

import asyncio
import threading
import time

from sqlalchemy import Engine

from activities.detection import DetectionActivities
from models.case import EvidenceRef, MediaAnalysis
from models.filing import AnalyzeMediaInput
from tipline.evidence import EvidenceStore
from tipline.logging import get_logger
from tipline.settings import Settings

log = get_logger(__name__)
# After a failed bank load, the next attempt waits this long: a database outage is not retried per upload.
PREPARE_RETRY_SECONDS = 30.0


class UploadAnalyzer:
    def __init__(self, settings: Settings, store: EvidenceStore, engine: Engine) -> None:
        self.enabled = settings.api_analyzes_uploads
        self._engine = engine
        # No hashing pool: the API hashes on its own threads, at most ``slots`` items at a time.
        self._detection = DetectionActivities(settings, store, engine)
        self._free_slots = settings.api_analysis_slots
        self._slots_lock = threading.Lock()
        self._preparing = threading.Lock()
        self._ready = False
        self._next_prepare_at = 0.0
        # Uploads analysed here, and handed to the detection workers unanalysed (benchmarks print both).
        self.analysed = 0
        self.handed_on = 0

    @property
    def ready(self) -> bool:
        return self._ready

    async def analyze(self, org_id: str, case_ref: str, evidence: EvidenceRef) -> MediaAnalysis | None:
        """The item's analysis, or None when the case should have it analysed (never raises)."""
        analysis = await self._analysis(org_id, case_ref, evidence) if self.enabled else None
        if analysis is None:
            self.handed_on += 1
        else:
            self.analysed += 1
        return analysis

    async def _analysis(self, org_id: str, case_ref: str, evidence: EvidenceRef) -> MediaAnalysis | None:
        if not self._ready_or_preparing():
            return None
        if not self._take_slot():
            return None  # the API is busy hashing: the detection workers take this one
        try:
            return await asyncio.to_thread(self._analyze, org_id, case_ref, evidence)
        except Exception as error:  # noqa: BLE001 - the case analyses it instead: nothing is lost
            log.warning("upload.analysis_skipped", org_id=org_id, workflow_id=case_ref, error=type(error).__name__)
            return None
        finally:
            self._give_slot()

    def _analyze(self, org_id: str, case_ref: str, evidence: EvidenceRef) -> MediaAnalysis:
        # Imported here: the API's start should not wait for SQLAlchemy's retention tables.
        from tipline.retention import link_evidence

        # Linked before the case hears of it, as the detection workers link what they analyse: the purge of the
        # user's cases must know the object is theirs (tipline.purge).
        link_evidence(self._engine, org_id, case_ref, evidence.sha256)
        return self._detection.analyze_media(AnalyzeMediaInput(org_id=org_id, evidence=evidence))

    def _ready_or_preparing(self) -> bool:
        """True once the banks are loaded; the first call starts loading them on a thread of their own, so no
        upload waits for a bank load."""
        if self._ready:
            return True
        if time.monotonic() >= self._next_prepare_at and self._preparing.acquire(blocking=False):
            threading.Thread(target=self._prepare, name="upload-analysis-prepare", daemon=True).start()
        return False

    def _prepare(self) -> None:
        try:
            self._detection.prepare()
            self._ready = True
        except Exception as error:  # noqa: BLE001 - uploads go to the detection workers meanwhile
            self._next_prepare_at = time.monotonic() + PREPARE_RETRY_SECONDS
            log.warning("upload.analysis_unavailable", error=type(error).__name__)
        finally:
            self._preparing.release()

    def _take_slot(self) -> bool:
        with self._slots_lock:
            if self._free_slots <= 0:
                return False
            self._free_slots -= 1
            return True

    def _give_slot(self) -> None:
        with self._slots_lock:
            self._free_slots += 1
