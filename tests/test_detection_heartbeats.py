"""Detection activities heartbeat while the banks load, so their heartbeat timeout can be short: a worker that
dies mid-activity is noticed in seconds, and one that is busy loading a large bank is not taken for dead."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import detection
from activities.detection import DetectionActivities


class SlowToPrepare(DetectionActivities):
    """Loading the banks takes a while, as it does for a large bank."""

    def __init__(self) -> None:
        super().__init__(settings=None, store=None, engine=None)  # type: ignore[arg-type]

    def prepare(self) -> Any:
        time.sleep(0.3)
        self._matcher = matcher = object()  # type: ignore[assignment]
        return matcher


def test_an_activity_heartbeats_while_the_banks_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(detection, "PREPARE_HEARTBEAT_SECONDS", 0.05)
    activities = SlowToPrepare()
    beats: list[Any] = []
    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    matcher = environment.run(activities.prepare_heartbeating)
    assert matcher is activities._matcher
    assert len(beats) >= 3  # about one per 0.05 s of the 0.3 s load
    beats.clear()
    assert environment.run(activities.prepare_heartbeating) is matcher and not beats  # loaded once
