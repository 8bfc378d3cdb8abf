"""Exporting a closed case's histories (tipline.history_export), in a workflow of its own.

The user's workflow starts it when a case closes and goes on at once: an export that cannot be stored (the
database or the evidence store down for hours) is retried here until it is, never dropped after a few tries
and never holding up the user's next case. Its id names the case, so a case is exported once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.history_export import HistoryExportActivities
    from models.history_export_messages import ExportedHistory, ExportHistoryInput


def history_export_workflow_id(case_ref: str, case_number: int) -> str:
    return f"{case_ref}/history-export/{case_number}"


@workflow.defn
class CaseHistoryExportWorkflow:
    @workflow.run
    async def run(self, request: ExportHistoryInput) -> ExportedHistory:
        return await workflow.execute_activity_method(
            HistoryExportActivities.export_case_history, request,
            # Fetching every run's history takes seconds; a store that is down is waited out, however long.
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), backoff_coefficient=2.0,
                                     maximum_interval=timedelta(minutes=10)),
        )
