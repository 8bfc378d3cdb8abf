"""Recorded histories replay on today's code: every path a case or a screening can take.

A change to workflow code that would make running workflows (or an auditor's replay) diverge fails here. Such a
change must keep old histories valid with ``workflow.patched(...)``. The histories in ``tests/fixtures/histories``
were recorded from real runs by ``tests/record_histories.py`` (see the README, "Changing workflow code").
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from tests.history_payloads import patch_ids
from tipline.codec import throwaway_converter
from worker import WORKFLOWS
from workflows.case import (
    DEADLINE_BEFORE_REVIEWS_PATCH,
    ONE_WAKE_TIMER_PATCH,
    REVIEWS_A_TASK_LATER_PATCH,
    REVIEWS_AT_SAFE_POINT_PATCH,
)
from workflows.case_filing import FILES_IN_BATCHES_PATCH
from workflows.case_media import ANALYSIS_RETRY_TIMER_PATCH

HISTORIES = sorted((Path(__file__).parent / "fixtures" / "histories").glob("*.json"))


async def load(path: Path) -> WorkflowHistory:
    text = await asyncio.to_thread(path.read_text)
    return WorkflowHistory.from_json(_recorded_workflow_id(text) or path.stem, text)


def _recorded_workflow_id(text: str) -> str | None:
    """The id the workflow ran under: a workflow may derive ids from it (a child filing's), so replay under it."""
    started = json.loads(text)["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return started.get("workflowId")


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_recorded_history_replays_without_divergence(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=throwaway_converter())
    result = await replayer.replay_workflow(await load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def test_every_workflow_the_worker_runs_has_a_recorded_history() -> None:
    recorded = {json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
                ["workflowType"]["name"] for path in HISTORIES}
    registered = {workflow._Definition.must_from_class(cls).name for cls in WORKFLOWS}
    assert registered <= recorded, f"no recorded history for {sorted(registered - recorded)}"


# The paths recorded from today's code (README, "Changing workflow code"); their files must stay.
RECORDED_PATHS = {
    "uploaded_media_filed", "url_preservation", "platform_media_list", "conversation_attached", "dismissal",
    "enrichment_retries", "needs_attention_then_retry", "refile_after_report_deleted", "review_timer_fires",
    "next_case_after_filing", "next_case_opened", "continue_as_new_awaiting_review", "continue_as_new_carried_state",
    "screening_bank_match", "screening_triage_escalated", "screening_triage_dismissed", "screening_clear",
    "screening_unfetchable", "screening_classifier_unavailable", "retention_purge_pass",
}


def test_no_recorded_path_has_gone_missing() -> None:
    missing = RECORDED_PATHS - {path.stem for path in HISTORIES}
    assert not missing, f"recorded histories missing: {sorted(missing)}"


@workflow.defn(name="CaseWorkflow")
class _CaseWorkflowThatWaitsInstead:
    @workflow.run
    async def run(self, start: object) -> None:
        await workflow.sleep(3600)


async def test_a_workflow_that_takes_another_path_fails_to_replay() -> None:
    """The check has teeth: code that no longer issues the recorded commands is caught."""
    # Unsandboxed: the sandbox would re-import this test module, and with it the worker, for the stand-in.
    replayer = Replayer(workflows=[_CaseWorkflowThatWaitsInstead], data_converter=throwaway_converter(),
                        workflow_runner=UnsandboxedWorkflowRunner())
    history = await load(Path(__file__).parent / "fixtures" / "histories" / "dismissal.json")
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError), result.replay_failure


KNOWN_NONDETERMINISM = Path(__file__).parent / "fixtures" / "known_nondeterminism"


KNOWN_DIVERGENT = sorted(KNOWN_NONDETERMINISM.glob("*.json"))


def fixed_by(path: Path) -> str:
    """The patch whose path the history's run did not take, and which fixed what made it diverge."""
    if path.stem.startswith("chaos_seed23_analysis_retry_timed_by_an_earlier_task"):
        return ANALYSIS_RETRY_TIMER_PATCH  # the retry compared the clock with retry_at (README, "Changing ...")
    return REVIEWS_AT_SAFE_POINT_PATCH  # the update handlers changed the case at once (README, "Handlers only queue")


@pytest.mark.parametrize("path", KNOWN_DIVERGENT, ids=[p.stem for p in KNOWN_DIVERGENT])
async def test_the_known_divergent_histories_predate_the_fix_for_their_divergence(path: Path) -> None:
    """The chaos runs' stuck cases diverge on replay, and none of them ran the patched path that fixed the cause."""
    text = await asyncio.to_thread(path.read_text)
    assert fixed_by(path) not in patch_ids(text)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=throwaway_converter())
    result = await replayer.replay_workflow(await load(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError), result.replay_failure


def test_new_runs_queue_reviews() -> None:
    """Every recorded run of the user's workflow from today's code took the queued-review path."""
    recorded = [p for p in HISTORIES if p.stem.startswith("review_queued_while_hashing")]
    assert len(recorded) == 4 and all(REVIEWS_AT_SAFE_POINT_PATCH in patch_ids(p.read_text()) for p in recorded)


def test_new_runs_act_on_a_passed_deadline_before_queued_reviews() -> None:
    [recorded] = [p for p in HISTORIES if p.stem == "decision_with_the_review_deadline_at_a_cold_worker"]
    assert DEADLINE_BEFORE_REVIEWS_PATCH in patch_ids(recorded.read_text())


def test_new_filings_send_files_in_batches() -> None:
    [recorded] = [p for p in HISTORIES if p.stem == "child_filing_in_batches"]
    text = recorded.read_text()
    assert FILES_IN_BATCHES_PATCH in patch_ids(text)
    assert '"name":"send_files"' in text and '"name":"upload_file"' not in text


SDK_UPDATE_ORDER = sorted((Path(__file__).parent / "fixtures" / "sdk_update_order").glob("*.json"))


@pytest.mark.parametrize("path", SDK_UPDATE_ORDER, ids=[p.stem for p in SDK_UPDATE_ORDER])
async def test_an_update_accepted_by_a_cold_worker_after_other_commands_still_diverges(path: Path) -> None:
    """A worker that took the case over cold got a decision by update in a task with other work (the review
    deadline's timer; a failed activity whose handling ran a local activity) and accepted it after that work's
    commands; replay accepts it first (cf. temporalio/sdk-python#1591). Applying the review a task later (the
    ``_a_task_later`` runs) did not help: the acceptance's place among the commands is the SDK's (README, "A
    review is applied a task later"). When these replay, the SDK fixed it: move them to histories/."""
    text = await asyncio.to_thread(path.read_text)
    assert DEADLINE_BEFORE_REVIEWS_PATCH in patch_ids(text) and "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED" in text
    assert path.stem.endswith("_a_task_later") == (REVIEWS_A_TASK_LATER_PATCH in patch_ids(text))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=throwaway_converter())
    result = await replayer.replay_workflow(await load(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError), result.replay_failure


def test_new_runs_apply_a_review_in_a_later_task_and_keep_one_wake_timer() -> None:
    recorded = [p for p in HISTORIES if p.stem.endswith("_a_task_later")]
    assert len(recorded) == 3
    for path in recorded:
        assert {REVIEWS_A_TASK_LATER_PATCH, ONE_WAKE_TIMER_PATCH} <= patch_ids(path.read_text()), path.stem
    # The deadline's timer fired on the kept timer, and the decision still came after it.
    [deadline_path] = [p for p in recorded if p.stem.startswith("decision_with_the_review_deadline")]
    deadline = deadline_path.read_text()
    assert '"eventType":"EVENT_TYPE_TIMER_FIRED"' in deadline.replace(" ", "")
