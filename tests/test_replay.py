"""Recorded case histories replay on today's code.

A change to workflow code that would make running cases (or an auditor's replay) diverge fails here. Such a
change must keep old histories valid with ``workflow.patched(...)``; to add a history, export one with
``handle.fetch_history().to_json()`` (or ``temporal workflow show -w ID --output json``) into
``tests/fixtures/histories``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tipline.codec import DATA_CONVERTER
from workflows.case import CaseWorkflow
from workflows.case_filing_workflow import CaseFilingWorkflow
from workflows.screening import ScreeningWorkflow

HISTORIES = sorted((Path(__file__).parent / "fixtures" / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_recorded_history_replays_without_divergence(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    replayer = Replayer(workflows=[CaseWorkflow, CaseFilingWorkflow, ScreeningWorkflow], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def test_there_is_a_history_to_replay() -> None:
    assert HISTORIES
