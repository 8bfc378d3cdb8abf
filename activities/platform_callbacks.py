"""Signed calls to the platform: everything it knows about a user (enrichment) and every media item it
has for them (media listing). Calls are signed (Standard Webhooks); only a fresh, correctly signed answer
to that very call counts, once (see tipline.signing)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from models.filing import EnrichedUser, EnrichUserInput, ListUserMediaInput, UserMediaPage
from models.platform_metadata import UserMetadata
from tipline.logging import get_logger
from tipline.settings import OrgSettings, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tipline.egress import EgressClient

# The HTTP, signing and metrics stack is imported when an instance is made or an activity first runs, not by the
# workflows importing this module.

MAX_ANSWER_BYTES = 16 * 1024**2
log = get_logger(__name__)


class PlatformCallbackActivities:
    def __init__(self, settings: Settings, engine: Engine, egress: EgressClient) -> None:
        from tipline.signing import DatabaseReplayCache

        self.settings = settings
        self.egress = egress
        self.replay_cache = DatabaseReplayCache(engine)

    @activity.defn
    async def enrich_user(self, request: EnrichUserInput) -> EnrichedUser:
        """Everything the platform knows about the user, to merge into the report."""
        org = self.settings.orgs.get(request.org_id)
        if not org.enrichment_url:
            return EnrichedUser()
        answer = await self._signed_post(org, org.enrichment_url, request.model_dump_json().encode(), "enrichment")
        try:
            user = UserMetadata.model_validate_json(answer)
        except ValueError as error:
            _count_failure("enrichment", "invalid_answer")
            raise ApplicationError(f"the platform's enrichment answer is not valid UserMetadata: "
                                   f"{str(error).splitlines()[0]}") from None
        log.info("user.enriched", org_id=org.id, workflow_id=request.case_ref)
        return EnrichedUser(user=user)

    @activity.defn
    async def list_user_media(self, request: ListUserMediaInput) -> UserMediaPage:
        """One page of every media item the platform has ever associated with the user."""
        org = self.settings.orgs.get(request.org_id)
        if not org.media_list_url:
            return UserMediaPage()
        answer = await self._signed_post(org, org.media_list_url, request.model_dump_json().encode(), "media list")
        try:
            return UserMediaPage.model_validate_json(answer)
        except ValueError as error:
            _count_failure("media list", "invalid_answer")
            raise ApplicationError(f"the platform's media list is not valid: {str(error).splitlines()[0]}",
                                   non_retryable=True) from None

    async def _signed_post(self, org: OrgSettings, url: str, body: bytes, what: str) -> bytes:
        import httpx

        from tipline.egress import EgressRefused
        from tipline.signing import AnswerVerifier, SignatureError, sign_request

        key = org.signing_key()  # settings refuse a callback URL without a secret, so there is one
        call = sign_request(key, "POST", url, body)
        try:
            response = await self.egress.request("POST", url, content=body, max_bytes=MAX_ANSWER_BYTES,
                                                 headers={"Content-Type": "application/json", **call.headers})
        except (httpx.HTTPError, EgressRefused, TimeoutError) as error:
            reason = error.reason if isinstance(error, EgressRefused) else type(error).__name__
            raise _failed(org, what, reason, f"the platform's {what} callback could not be reached",
                          "unreachable") from None
        if response.status_code >= 400:
            raise _failed(org, what, f"HTTP {response.status_code}",
                          f"the platform's {what} callback answered HTTP {response.status_code}", "http_error")
        verifier = AnswerVerifier(org.id, key, self.replay_cache)
        try:
            await asyncio.to_thread(verifier.verify, call, response.headers, response.content)
        except SignatureError as error:
            raise _failed(org, what, error.reason, f"the platform's {what} answer was refused: {error}",
                          "refused_answer") from None
        return response.content


def _failed(org: OrgSettings, what: str, reason: str, message: str, kind: str) -> ApplicationError:
    """One concise log line per failed attempt; BENIGN keeps Temporal from logging a traceback for each retry."""
    _count_failure(what, kind)
    log.warning("platform_callback.failed", org_id=org.id, callback=what, reason=reason,
                attempt=activity.info().attempt)
    return ApplicationError(message, category=ApplicationErrorCategory.BENIGN)


def _count_failure(what: str, kind: str) -> None:
    from tipline.metrics import count_callback_failure

    count_callback_failure(what, kind)
