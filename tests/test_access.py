"""Only Admin, Moderator Manager and Child Safety Moderator see NCMEC cases, media and reports."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from models.records import Role
from tests.helpers import OTHER_ORG, headers
from tipline.settings import Settings

PROTECTED_PREFIXES = ("/v1/cases", "/v1/reports")


def protected_routes(settings: Settings) -> list[tuple[str, str]]:
    # Read from the OpenAPI document: every endpoint is documented, so none escapes this check.
    paths = create_app(settings).openapi()["paths"]
    routes = [
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(PROTECTED_PREFIXES)
        for method in sorted(operations)
    ]
    assert len(routes) >= 9, routes
    return routes


def concrete(path: str) -> str:
    return (path.replace("{case_ref}", "case-acme-0123456789abcdef0123456789abcdef")
            .replace("{media_id}", "m1").replace("{report_id}", "1").replace("{ncmec_file_id}", "f1"))


@pytest.mark.parametrize("role", [Role.MODERATOR, Role.PLATFORM])
async def test_roles_without_ncmec_access_get_403_everywhere(api: httpx.AsyncClient, api_keys: dict,
                                                             settings: Settings, role: Role) -> None:
    for method, path in protected_routes(settings):
        response = await api.request(method, concrete(path), headers=headers(api_keys, role), json={})
        assert response.status_code == 403, (method, path, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_auditors_read_records_but_not_cases_or_media(api: httpx.AsyncClient, api_keys: dict,
                                                            settings: Settings) -> None:
    auditor = headers(api_keys, Role.AUDITOR)
    for method, path in protected_routes(settings):
        response = await api.request(method, concrete(path), headers=auditor, json={})
        if path.startswith("/v1/reports") or path.endswith("/timeline"):  # an auditor's records and timelines
            assert response.status_code in (200, 404), (method, path)
        else:
            assert response.status_code == 403, (method, path)


async def test_missing_or_wrong_key_gets_401(api: httpx.AsyncClient, settings: Settings) -> None:
    for method, path in [*protected_routes(settings), ("POST", "/v1/content"), ("POST", "/v1/content/upload")]:
        missing = await api.request(method, concrete(path), json={})
        wrong = await api.request(method, concrete(path), headers={"X-API-Key": "tpl_not-a-key"}, json={})
        assert missing.status_code == wrong.status_code == 401, (method, path)


async def test_reviewers_cannot_send_content_and_platforms_cannot_read(api: httpx.AsyncClient, api_keys: dict) -> None:
    body = {"content_id": "c1", "creator_id": "u1", "media_url": "http://127.0.0.1:9/x.png"}
    response = await api.post("/v1/content", json=body, headers=headers(api_keys, Role.ADMIN))
    assert response.status_code == 403


async def test_another_orgs_case_is_not_found(api: httpx.AsyncClient, api_keys: dict) -> None:
    response = await api.get("/v1/cases/case-acme-0123456789abcdef0123456789abcdef",
                             headers=headers(api_keys, Role.ADMIN, org=OTHER_ORG))
    assert response.status_code == 404
