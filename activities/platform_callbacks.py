"""Signed calls to the platform: everything it knows about a user (enrichment) and every media item it
has for them (media listing). Requests are HMAC-signed; only fresh, correctly signed answers count."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.filing import EnrichedUser, EnrichUserInput, ListUserMediaInput, UserMediaPage
from models.platform_metadata import UserMetadata
from tipline.logging import get_logger
from tipline.settings import OrgSettings, Settings
from tipline.signing import SignatureError, SignatureVerifier, sign

log = get_logger(__name__)


class PlatformCallbackActivities:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self._verifiers: dict[str, SignatureVerifier] = {}

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
            raise ApplicationError(f"the platform's media list is not valid: {str(error).splitlines()[0]}",
                                   non_retryable=True) from None

    async def _signed_post(self, org: OrgSettings, url: str, body: bytes, what: str) -> bytes:
        if org.callback_secret is None:
            raise ApplicationError(f"the org has a {what} callback but no callback_secret", non_retryable=True)
        secret = org.callback_secret.get_secret_value().encode()
        try:
            response = await self.http.post(url, content=body,
                                            headers={"Content-Type": "application/json", **sign(secret, body)})
        except httpx.HTTPError as error:
            raise ApplicationError(f"the platform's {what} callback could not be reached "
                                   f"({type(error).__name__})") from None
        if response.status_code >= 400:
            raise ApplicationError(f"the platform's {what} callback answered HTTP {response.status_code}")
        try:
            self._verifier(org.id, secret).verify(response.headers, response.content)
        except SignatureError as error:
            raise ApplicationError(f"the platform's {what} answer was refused: {error}") from None
        return response.content

    def _verifier(self, org_id: str, secret: bytes) -> SignatureVerifier:
        # One verifier per org, so its replay cache remembers the nonces already seen.
        if org_id not in self._verifiers:
            self._verifiers[org_id] = SignatureVerifier(secret)
        return self._verifiers[org_id]
