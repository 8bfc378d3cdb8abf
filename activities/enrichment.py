"""Asking the platform, before filing, for everything it knows about the reported user."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.filing import EnrichedUser, EnrichUserInput
from models.platform_metadata import UserMetadata
from tipline.logging import get_logger
from tipline.settings import Settings
from tipline.signing import SignatureError, SignatureVerifier, sign

log = get_logger(__name__)


class EnrichmentActivities:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self._verifiers: dict[str, SignatureVerifier] = {}

    @activity.defn
    async def enrich_user(self, request: EnrichUserInput) -> EnrichedUser:
        """POST the user's id, signed; accept only a fresh, correctly signed answer."""
        org = self.settings.orgs.get(request.org_id)
        if not org.enrichment_url:
            return EnrichedUser()
        if org.callback_secret is None:
            raise ApplicationError("the org has an enrichment_url but no callback_secret", non_retryable=True)
        secret = org.callback_secret.get_secret_value().encode()
        body = EnrichUserInput.model_validate(request).model_dump_json().encode()
        try:
            response = await self.http.post(org.enrichment_url, content=body,
                                            headers={"Content-Type": "application/json", **sign(secret, body)})
        except httpx.HTTPError as error:
            raise ApplicationError(f"the platform's enrichment callback could not be reached "
                                   f"({type(error).__name__})") from None
        if response.status_code >= 400:
            raise ApplicationError(f"the platform's enrichment callback answered HTTP {response.status_code}")
        try:
            self._verifier(org.id, secret).verify(response.headers, response.content)
        except SignatureError as error:
            raise ApplicationError(f"the platform's enrichment answer was refused: {error}") from None
        try:
            user = UserMetadata.model_validate_json(response.content)
        except ValueError as error:
            raise ApplicationError(f"the platform's enrichment answer is not valid UserMetadata: "
                                   f"{str(error).splitlines()[0]}") from None
        log.info("user.enriched", org_id=org.id, workflow_id=request.case_ref)
        return EnrichedUser(user=user)

    def _verifier(self, org_id: str, secret: bytes) -> SignatureVerifier:
        # One verifier per org, so its replay cache remembers the nonces already seen.
        if org_id not in self._verifiers:
            self._verifiers[org_id] = SignatureVerifier(secret)
        return self._verifiers[org_id]
