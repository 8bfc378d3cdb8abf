"""Telling an org's own systems about its cases: signed webhooks carrying ids, never content."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from models.filing import EscalationNotice
from tipline.logging import get_logger
from tipline.settings import Settings

if TYPE_CHECKING:
    from tipline.egress import EgressClient

# The HTTP and signing stack is imported when the activity first runs, not by the workflows importing this module.

log = get_logger(__name__)


class NotificationActivities:
    def __init__(self, settings: Settings, egress: EgressClient) -> None:
        self.settings = settings
        self.egress = egress

    @activity.defn
    async def notify_escalation(self, notice: EscalationNotice) -> bool:
        """Post the signed notice to the org's escalation webhook. False when the org has none."""
        import httpx

        from tipline.egress import EgressRefused
        from tipline.signing import sign_request

        org = self.settings.orgs.get(notice.org_id)
        if not org.escalation_webhook_url:
            return False
        body = notice.model_dump_json().encode()
        # Settings refuse a webhook URL without callback_secret: nothing goes out unsigned.
        call = sign_request(org.signing_key(), "POST", org.escalation_webhook_url, body)
        try:
            response = await self.egress.request("POST", org.escalation_webhook_url, content=body,
                                                 headers={"Content-Type": "application/json", **call.headers})
        except (httpx.HTTPError, EgressRefused, TimeoutError) as error:
            reason = error.reason if isinstance(error, EgressRefused) else type(error).__name__
            raise _failed(org.id, notice, reason, "the escalation webhook could not be reached",
                          "unreachable") from None
        if response.status_code >= 400:
            raise _failed(org.id, notice, f"HTTP {response.status_code}",
                          f"the escalation webhook answered HTTP {response.status_code}", "http_error")
        log.info("case.escalation_notified", org_id=org.id, workflow_id=notice.case_ref)
        return True


def _failed(org_id: str, notice: EscalationNotice, reason: str, message: str, kind: str) -> ApplicationError:
    """One concise log line per failed attempt; BENIGN keeps Temporal from logging a traceback for each retry."""
    from tipline.metrics import count_callback_failure

    count_callback_failure("escalation", kind)
    log.warning("case.escalation_failed", org_id=org_id, workflow_id=notice.case_ref, reason=reason,
                attempt=activity.info().attempt)
    return ApplicationError(message, category=ApplicationErrorCategory.BENIGN)
