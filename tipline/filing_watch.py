"""Noticing filing attempts that ended without telling the user's workflow.

A ``CaseFilingWorkflow`` reports its end to the user's workflow by signal as its last step. One that is
terminated by an operator, times out, fails or is cancelled never takes that step, and the user's workflow would
keep the case as filing forever. The worker therefore looks, every ``WATCH_SECONDS``, for filing workflows that
closed so, and sends the user's workflow the report the attempt never sent: the case needs attention, with the
reason, and its open report (if NCMEC has one) is known from the progress the attempt reported. The user's
workflow takes a report only for the attempt it is running, so a report sent twice, or for an attempt since
replaced, changes nothing; the look-back can therefore overlap freely.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from models.case import CaseState, CaseStatus
from models.filing import FilingReport
from tipline.logging import get_logger

log = get_logger(__name__)
FILING_WORKFLOW = "CaseFilingWorkflow"
FILING_REPORT_SIGNAL = "filing_report"
WATCH_SECONDS = 30.0
# On start, a worker looks this far back: attempts that ended while every worker was down are noticed too.
FIRST_LOOK_BACK = timedelta(days=7)
_ENDINGS = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
}


def _query(since: datetime) -> str:
    return (f"WorkflowType = '{FILING_WORKFLOW}' AND CloseTime > '{since.isoformat()}' AND ExecutionStatus IN "
            "('Terminated', 'TimedOut', 'Failed', 'Canceled')")


async def notice_stopped_filings(client: Client, since: datetime) -> list[str]:
    """Tell the user's workflow of each filing attempt that closed abnormally after ``since``; returns their ids."""
    told = []
    async for execution in client.list_workflows(_query(since)):
        ending = _ENDINGS.get(execution.status) if execution.status is not None else None
        if ending is None or not execution.parent_id:
            continue
        number, attempt = _case_and_attempt(execution.id)
        parent = client.get_workflow_handle(execution.parent_id)
        try:
            # The user's workflow's copy, with the progress the attempt reported (a closed attempt cannot always
            # answer a query: one terminated before its first task has no state at all).
            case = await parent.query("case_numbered", number, result_type=CaseState | None)
            if case is None:
                continue  # the case closed meanwhile: nothing waits for this attempt
            await parent.signal(FILING_REPORT_SIGNAL, FilingReport(case_number=number, attempt=attempt, ended=True,
                                                                   case=stopped(case, ending)))
        except RPCError as error:  # the user's workflow is gone: nobody is waiting for this attempt
            log.info("filing_watch.parent_gone", workflow_id=execution.id, error=type(error).__name__)
            continue
        log.warning("filing_watch.attempt_stopped", workflow_id=execution.id, ending=ending)
        told.append(execution.id)
    return told


def _case_and_attempt(filing_workflow_id: str) -> tuple[int, int]:
    """The case number and attempt in an id made by ``models.filing.filing_workflow_id``."""
    _parent, _filing, number, attempt = filing_workflow_id.rsplit("/", 3)
    return int(number), int(attempt)


def stopped(case: CaseState, ending: str) -> CaseState:
    """The attempt's case as the user's workflow should now hold it (unchanged if it had already ended)."""
    if case.status is not CaseStatus.FILING:
        return case  # a dismissal's retraction that stopped: the case stays dismissed; NCMEC expires the report
    return case.model_copy(update={
        "status": CaseStatus.NEEDS_ATTENTION, "attention_permanent": False,
        "attention_reason": f"the filing attempt was {ending} before it finished; retry to file the case again",
    })


async def watch_filings(client: Client, every: float = WATCH_SECONDS) -> None:
    """Run ``notice_stopped_filings`` forever, each time looking back to just before the previous look."""
    since = datetime.now(UTC) - FIRST_LOOK_BACK
    while True:
        looked_at = datetime.now(UTC)
        try:
            await notice_stopped_filings(client, since)
            since = looked_at - timedelta(seconds=every)  # overlap: a close recorded late is still seen
        except RPCError as error:  # Temporal restarting: the next look covers this one's window too
            log.warning("filing_watch.failed", error=type(error).__name__)
        await asyncio.sleep(every)
