"""How an activity's failure is described to a reviewer."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError


def error_type(error: ActivityError) -> str | None:
    return error.cause.type if isinstance(error.cause, ApplicationError) else None


def reviewer_safe_reason(error: BaseException) -> str:
    """The activity's own words when it gave them (they name no secret), else a plain explanation."""
    if isinstance(error, ActivityError) and isinstance(error.cause, ApplicationError):
        return error.cause.message
    return "NCMEC could not be reached in time; retry once the connection is restored, a new report will be filed"
