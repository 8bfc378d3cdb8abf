"""Every run of a user's case workflow and of its filing children, fetched from Temporal.

A user's workflow id is its case ref; its runs chain back through ``continued_execution_run_id``, and the filing
attempts it started are children named ``{case_ref}/filing/{n}/{attempt}`` (models.filing.filing_workflow_id).
The chain is followed from the newest run, not listed from visibility (which is eventually consistent): a run
Temporal already forgot ends the chain and is reported missing. A user's workflow also closes once all their
cases are done, and their next content starts it again under the same id, with no link to the runs before: those
earlier lives are found by listing the id's runs from visibility, and each is followed back the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from google.protobuf import json_format
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History, HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode


@dataclass(frozen=True)
class RunHistory:
    """One run's whole history as Temporal holds it (payloads still encoded by the project's codec)."""

    workflow_id: str
    run_id: str
    workflow_type: str
    events: list[HistoryEvent]

    @property
    def continued_from(self) -> str | None:
        started = self.events[0].workflow_execution_started_event_attributes if self.events else None
        return started.continued_execution_run_id or None if started is not None else None

    def to_dict(self) -> dict:
        return {"workflow_id": self.workflow_id, "run_id": self.run_id, "workflow_type": self.workflow_type,
                "history": json.loads(json_format.MessageToJson(History(events=self.events)))}

    @classmethod
    def from_dict(cls, data: dict) -> RunHistory:
        history = json_format.ParseDict(data["history"], History(), ignore_unknown_fields=True)
        return cls(workflow_id=data["workflow_id"], run_id=data["run_id"], workflow_type=data["workflow_type"],
                   events=list(history.events))

    def workflow_history(self) -> WorkflowHistory:
        return WorkflowHistory(workflow_id=self.workflow_id, events=self.events)


@dataclass
class CaseHistories:
    runs: list[RunHistory] = field(default_factory=list)
    # Runs or workflows named by the histories that Temporal no longer has ("workflow_id" or "workflow_id@run").
    missing: list[str] = field(default_factory=list)


def filing_case_number(workflow_id: str) -> int | None:
    """The case number a filing child's id names, or None for any other id."""
    parts = workflow_id.rsplit("/", 3)
    if len(parts) == 4 and parts[1] == "filing" and parts[2].isdigit() and parts[3].isdigit():
        return int(parts[2])
    return None


async def _fetch(client: Client, workflow_id: str, run_id: str | None) -> RunHistory | None:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        history = await handle.fetch_history()
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            return None
        raise
    if not history.events:
        return None
    started = history.events[0].workflow_execution_started_event_attributes
    resolved = run_id or (await handle.describe()).run_id
    return RunHistory(workflow_id=workflow_id, run_id=resolved, workflow_type=started.workflow_type.name,
                      events=list(history.events))


def _children(run: RunHistory) -> list[str]:
    """The filing attempts the run started (not its history export, which is no part of the case's history)."""
    started = [e.start_child_workflow_execution_initiated_event_attributes.workflow_id for e in run.events
               if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED]
    return [child for child in started if filing_case_number(child) is not None]


async def fetch_case_histories(client: Client, case_ref: str, case_number: int | None = None) -> CaseHistories:
    """Every run of ``case_ref`` oldest first, then its filing children (only case ``case_number``'s if given)."""
    found = CaseHistories()
    newest = await _fetch(client, case_ref, None)
    if newest is None:
        found.missing.append(case_ref)
    runs = await _chain_back(client, case_ref, newest, found.missing)
    for run_id in await _listed_runs(client, case_ref):
        if run_id not in {run.run_id for run in runs}:
            runs += await _chain_back(client, case_ref, await _fetch(client, case_ref, run_id), found.missing,
                                      known={run.run_id for run in runs})
    runs.sort(key=lambda run: run.events[0].event_time.ToDatetime())
    found.runs.extend(runs)
    children = sorted({child for parent in runs for child in _children(parent)
                       if case_number is None or filing_case_number(child) == case_number},
                      key=lambda c: (filing_case_number(c) or 0, int(c.rsplit("/", 1)[-1])))
    for child_id in children:
        child = await _fetch(client, child_id, None)
        if child is None:
            found.missing.append(child_id)
        else:
            found.runs.append(child)
    return found


async def _chain_back(client: Client, case_ref: str, run: RunHistory | None, missing: list[str], *,
                      known: frozenset[str] | set[str] = frozenset()) -> list[RunHistory]:
    """``run`` and the runs it continued from, up to one in ``known`` or one Temporal forgot (reported missing)."""
    chain: list[RunHistory] = []
    while run is not None and run.run_id not in known:
        chain.append(run)
        previous = run.continued_from
        if previous is None or previous in known:
            break
        run = await _fetch(client, case_ref, previous)
        if run is None:
            missing.append(f"{case_ref}@{previous}")
    return chain


async def _listed_runs(client: Client, case_ref: str) -> list[str]:
    """The run ids visibility lists for the id (it may lag behind: the chains are what is sure)."""
    if '"' in case_ref or "\\" in case_ref:  # a case ref never holds them; a query must not be built from one
        return []
    try:
        return [execution.run_id async for execution in client.list_workflows(f'WorkflowId = "{case_ref}"')]
    except RPCError:
        return []
