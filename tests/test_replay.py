"""Recorded case histories replay on today's code.

A change to workflow code that would make running cases (or an auditor's replay) diverge fails here. Such a
change must keep old histories valid with ``workflow.patched(...)``; to add a history, export one with
``handle.fetch_history().to_json()`` (or ``temporal workflow show -w ID --output json``) into
``tests/fixtures/histories``.
"""

from __future__ import annotations

import asyncio
import json
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
    text = await asyncio.to_thread(path.read_text)
    history = WorkflowHistory.from_json(_recorded_workflow_id(text) or path.stem, text)
    replayer = Replayer(workflows=[CaseWorkflow, CaseFilingWorkflow, ScreeningWorkflow], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def _recorded_workflow_id(text: str) -> str | None:
    """The id the workflow ran under: a workflow may derive ids from it (a child filing's), so replay under it."""
    started = json.loads(text)["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return started.get("workflowId")


def test_there_is_a_history_to_replay() -> None:
    assert HISTORIES
