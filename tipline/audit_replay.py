"""Replaying a case's runs on today's code: each history (from Temporal or from the case's exports) through
Temporal's Replayer with the worker's workflows and the project's data converter. A run whose commands today's
code would not issue is reported with the error the SDK names the diverging event by."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.converter import DataConverter
from temporalio.worker import Replayer, WorkflowRunner

from tipline.case_histories import RunHistory


@dataclass(frozen=True)
class RunReplay:
    workflow_id: str
    run_id: str
    workflow_type: str
    events: int
    from_export: bool
    divergence: str | None  # None: the run replays on today's code

    @property
    def replays(self) -> bool:
        return self.divergence is None

    def line(self) -> str:
        where = "export" if self.from_export else "temporal"
        head = f"{self.workflow_type} {self.workflow_id} run {self.run_id} ({self.events} events, from {where})"
        return f"replays   {head}" if self.replays else f"DIVERGES  {head}: {self.divergence}"


async def replay_runs(runs: Sequence[RunHistory], workflows: Sequence[type], converter: DataConverter, *,
                      exported: set[tuple[str, str]] | frozenset = frozenset(),
                      runner: WorkflowRunner | None = None) -> list[RunReplay]:
    options = {"workflow_runner": runner} if runner is not None else {}
    replayer = Replayer(workflows=list(workflows), data_converter=converter, **options)
    results = []
    for run in runs:
        outcome = await replayer.replay_workflow(run.workflow_history(), raise_on_replay_failure=False)
        failure = outcome.replay_failure
        results.append(RunReplay(workflow_id=run.workflow_id, run_id=run.run_id, workflow_type=run.workflow_type,
                                 events=len(run.events), from_export=(run.workflow_id, run.run_id) in exported,
                                 divergence=None if failure is None else f"{type(failure).__name__}: {failure}"))
    return results
