"""NCMEC's clock for unfinished reports."""

from __future__ import annotations

from datetime import datetime, timedelta

OPEN_REPORT_LIFETIME = timedelta(hours=24)
IDLE_REPORT_LIFETIME = timedelta(hours=1)


def ncmec_deletion_time(opened_at: datetime, last_modified_at: datetime | None) -> datetime:
    """When NCMEC deletes an unfinished report: 24 h after it was opened or 1 h after the last
    upload or fileinfo, whichever is later."""
    deadline = opened_at + OPEN_REPORT_LIFETIME
    if last_modified_at is not None:
        deadline = max(deadline, last_modified_at + IDLE_REPORT_LIFETIME)
    return deadline
