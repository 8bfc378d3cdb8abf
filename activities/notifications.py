"""Telling an org's own systems about its cases: signed webhooks carrying ids, never content."""

from __future__ import annotations

import httpx
from temporalio import activity

from models.filing import EscalationNotice
from tipline.logging import get_logger
from tipline.settings import Settings
from tipline.signing import sign

log = get_logger(__name__)


class NotificationActivities:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    @activity.defn
    async def notify_escalation(self, notice: EscalationNotice) -> bool:
        """Post the notice to the org's escalation webhook. False when the org has none."""
        org = self.settings.orgs.get(notice.org_id)
        if not org.escalation_webhook_url:
            return False
        body = notice.model_dump_json().encode()
        headers = {"Content-Type": "application/json"}
        if org.callback_secret is not None:
            headers |= sign(org.callback_secret.get_secret_value().encode(), body)
        response = await self.http.post(org.escalation_webhook_url, content=body, headers=headers)
        response.raise_for_status()
        log.info("case.escalation_notified", org_id=org.id, workflow_id=notice.case_ref)
        return True
