"""The retention clock: one long-lived workflow that runs a purge pass, then sleeps a day on Temporal's timer.

A durable timer loop rather than a Temporal Schedule: it is just as durable (the timer is in the history, a
worker or server restart resumes it), it needs no Schedule set up beside the workflow, and Temporal's
time-skipping test server runs it, which it does not do for Schedules, so the year can be tested. A per-case
timer would need the case workflow to start it; one pass over the database also sees holds placed and released,
and policies changed, since the case closed. Each pass takes "now" from ``workflow.now()``, so the activities
judge what is due by Temporal's clock, not the worker's. The payloads are case refs, case numbers and times.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from models.retention_messages import (
        DueCases,
        DueCasesInput,
        PassSummary,
        PurgeCaseInput,
        RetentionStart,
    )

RETENTION_WORKFLOW_ID = "tipline-retention"
DEFAULT_CASE_QUEUE = "tipline-cases"


def retention_workflow_id(case_queue: str) -> str:
    """One clock per deployment: two deployments sharing a namespace (each its own task queue and database) must
    not share one, or one deployment's worker would purge by the other's records. The default deployment keeps
    the id it always had, so its running clock is joined, not doubled."""
    return RETENTION_WORKFLOW_ID if case_queue == DEFAULT_CASE_QUEUE else f"{RETENTION_WORKFLOW_ID}-{case_queue}"


@workflow.defn
class RetentionWorkflow:
    def __init__(self) -> None:
        self._last: PassSummary | None = None

    @workflow.run
    async def run(self, start: RetentionStart) -> None:
        passes = start.passes_before
        for _ in range(start.passes_per_run):
            self._last = await self._pass(passes)
            passes += 1
            await workflow.sleep(timedelta(seconds=start.interval_seconds))
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(start.model_copy(update={"passes_before": passes}))

    @workflow.query
    def last_pass(self) -> PassSummary | None:
        return self._last

    async def _pass(self, passes: int) -> PassSummary:
        now = workflow.now()
        purged = failed = 0
        due = DueCases(cases=[], next_after=None)
        while True:
            try:
                due = await workflow.execute_activity_method(
                    RetentionActivities.find_due_cases, DueCasesInput(now=now, after=due.next_after),
                    start_to_close_timeout=timedelta(minutes=2), retry_policy=RetryPolicy(maximum_attempts=10))
            except ActivityError:
                # The database stayed unreachable through every retry: the clock keeps going, tomorrow's pass
                # looks again (nothing due is lost, it is only purged a day later).
                return PassSummary(at=now, passes=passes + 1, purged=purged, failed=failed + 1)
            for case in due.cases:
                try:
                    # A case that cannot be purged today (its store unreachable) is tried again at the next pass.
                    outcome = await workflow.execute_activity_method(
                        RetentionActivities.purge_case, PurgeCaseInput(case=case, now=now),
                        start_to_close_timeout=timedelta(minutes=10), retry_policy=RetryPolicy(maximum_attempts=5))
                except ActivityError:
                    failed += 1
                    continue
                purged += outcome.purged
            if due.next_after is None:
                return PassSummary(at=now, passes=passes + 1, purged=purged, failed=failed)
