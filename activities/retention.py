"""The purge's steps: which closed cases are due, and purging one (rechecked under the user's lock)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity

from models.retention_messages import DueCases, DueCasesInput, PurgeCaseInput, PurgeOutcome

if TYPE_CHECKING:
    from tipline.purge import Purger


class RetentionActivities:
    def __init__(self, purger: Purger) -> None:
        self.purger = purger

    @activity.defn
    def find_due_cases(self, request: DueCasesInput) -> DueCases:
        return self.purger.due_cases(request.now, request.after, request.limit)

    @activity.defn
    def purge_case(self, request: PurgeCaseInput) -> PurgeOutcome:
        return self.purger.purge(request.case, request.now)
