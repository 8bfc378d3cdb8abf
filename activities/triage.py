"""The triage queue's table, and handing items over to a user's case."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.client import Client

from models.case import ContentItem
from models.screening import TriageClosed, TriageRecord
from tipline.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

# The database layer is imported when an instance is made, not by the workflows that import this module.


class TriageActivities:
    def __init__(self, settings: Settings, engine: Engine, client: Client) -> None:
        from tipline.registry import RefRegistry

        self.settings = settings
        self.engine = engine
        self.client = client
        self.registry = RefRegistry.from_settings(settings, engine)

    @activity.defn
    def record_triage(self, record: TriageRecord) -> None:
        from sqlmodel import Session

        from models.records import TriageItem

        with Session(self.engine) as session:
            if session.get(TriageItem, record.screening_id) is None:  # a retried activity adds nothing
                session.add(TriageItem(
                    screening_id=record.screening_id, org_id=record.org_id, creator_id=record.creator_id,
                    content_id=record.content_id,
                    evidence_sha256=record.evidence.sha256 if record.evidence else None,
                    content_type=record.content_type, classifier_priority=record.classifier_priority,
                    status="pending", created_at=record.created_at, screening_error=record.screening_error,
                ))
                session.commit()

    @activity.defn
    def close_triage(self, closed: TriageClosed) -> None:
        from sqlmodel import Session

        from models.records import TriageItem

        with Session(self.engine) as session:
            row = session.get(TriageItem, closed.screening_id)
            assert row is not None
            row.status, row.decided_by, row.reason = closed.status, closed.decided_by, closed.reason
            row.case_ref, row.decided_at = closed.case_ref, datetime.now(UTC)
            session.commit()

    @activity.defn
    async def enqueue_in_case(self, item: ContentItem) -> str:
        from tipline.intake import enqueue_content

        return await enqueue_content(self.client, self.registry, self.settings, item)
