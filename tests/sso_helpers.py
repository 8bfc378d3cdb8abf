"""The test OpenID provider (oidc-provider-mock, a real OpenID Connect server on loopback HTTP) and the settings
that point Tipline at it; shared by the API tests of single sign-on and the browser flow."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from oidc_provider_mock import User, run_server_in_thread
from pydantic import SecretStr

from tipline.settings import Settings

CLIENT_ID = "tipline-test"
GROUPS = {"acme-safety": "acme:child_safety_moderator", "acme-leads": "acme:moderator_manager",
          "kids-audit": "acme-kids:auditor"}
PEOPLE = [User(sub="reviewer-one", claims={"email": "one@example.com", "groups": ["acme-safety", "staff"]}),
          User(sub="lead-two", claims={"groups": ["acme-safety", "acme-leads"]}),
          User(sub="outsider", claims={"groups": ["staff"]}),
          User(sub="two-orgs", claims={"groups": ["acme-safety", "kids-audit"]})]


@contextmanager
def openid_provider() -> Iterator[str]:
    """The provider running, with its issuer URL."""
    with run_server_in_thread(user_claims=PEOPLE) as server:
        yield f"http://localhost:{server.server_port}"


def sso_settings(settings: Settings, issuer: str, callback: str, groups: dict[str, str] | None = None) -> Settings:
    return settings.model_copy(update={"oidc_issuer": issuer, "oidc_client_id": CLIENT_ID,
                                       "oidc_client_secret": SecretStr("sso-test-" + uuid.uuid4().hex),
                                       "oidc_redirect_url": callback, "oidc_group_roles": groups or GROUPS})
