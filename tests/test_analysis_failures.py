"""A batch's analysis tells an item's own fault from the system's: corrupted stored bytes make that item
unhashable and the rest go on; a failure of the system (a hashing process dying, the database restarting) fails
the attempt, so it is retried, and the case analyses the items again later (tests/test_case_guarantees.py)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.detection import DetectionActivities
from models.case import EvidenceRef
from models.filing import AnalyzeMediaBatch
from tests.helpers import ORG
from tipline.evidence import EvidenceStore
from tipline.settings import Settings
from tipline.synthetic import synthetic_image


class DyingHashingPool:
    """What activities.hashing_pool.HashingPool raises when one of its processes died under an item."""

    def hash(self, evidence: EvidenceRef, *, dihedral: bool, **waiting: object) -> bytes:
        raise ApplicationError("a hashing process died; the item is hashed again")

    def warm_up(self) -> None:
        return None


def test_a_corrupted_item_is_unhashable_but_a_dying_hashing_process_fails_the_attempt(
    settings: Settings, engine: Engine
) -> None:
    store = EvidenceStore.from_settings(settings)
    seed = uuid.uuid4().int % 1_000_000 + 10_000  # evidence is content-addressed: bytes of this test's own
    good, corrupted = (store.put_bytes(synthetic_image(seed + n, size=(64, 48))) for n in (0, 1))
    path = store.path_for(corrupted.sha256)
    path.write_bytes(path.read_bytes()[:40])
    env = ActivityEnvironment()

    detection = DetectionActivities(settings, store, engine)
    batch = AnalyzeMediaBatch(org_id=ORG, items=[good, corrupted])
    analysed, unhashable = env.run(detection.analyze_media_batch, batch)
    assert analysed.pdq and analysed.unhashable_reason is None
    assert unhashable.unhashable_reason is not None
    assert unhashable.unhashable_reason.startswith("the media could not be hashed (Evidence")

    dying = DetectionActivities(settings, store, engine, DyingHashingPool())  # type: ignore[arg-type]
    with pytest.raises(ApplicationError, match="hashing process died"):
        env.run(dying.analyze_media_batch, AnalyzeMediaBatch(org_id=ORG, items=[good]))
