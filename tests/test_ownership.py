"""Ownership comes from the record: every id from outside is looked up and its recorded org compared with the
caller's. Orgs whose ids prefix one another ("a", "acme", "acme-kids") cannot reach each other's anything."""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from api.app import create_app
from detection.classifier import Priority, make_sandbox_image
from models.records import NCMEC_ROLES, FiledFile, FiledReport, IssuedRef, RefKind, ReportStatus, Role
from tests.helpers import PREFIX_ORGS, eventually, headers
from tipline.settings import Settings

RECORDS_ROLES = NCMEC_ROLES | {Role.AUDITOR}
# Which roles may use each kind of endpoint at all; every other role gets 403 whatever the id. Every endpoint
# that takes an id must match one of these, so a new one cannot be left out of the checks below.
ROLES_BY_PREFIX = {
    "/v1/cases/": NCMEC_ROLES,
    "/v1/screenings/": NCMEC_ROLES,
    "/v1/triage/": NCMEC_ROLES,
    "/v1/reports/": RECORDS_ROLES,
}
BODIES = {"decision": {"incident_type": "Child Pornography (possession, manufacture, and distribution)"},
          "dismissal": {"reason": "not abuse"}, "escalation": {"reason": "looks bad"}}


@dataclass
class Owned:
    """One org's objects, one of each kind an endpoint takes an id of."""

    case_ref: str
    media_id: str
    screening_ref: str
    report_id: int
    ncmec_file_id: str

    def fill(self, path: str) -> str:
        return (path.replace("{case_ref}", self.case_ref).replace("{media_id}", self.media_id)
                .replace("{screening_ref}", self.screening_ref).replace("{report_id}", str(self.report_id))
                .replace("{ncmec_file_id}", self.ncmec_file_id))


def routes_with_ids(settings: Settings) -> list[tuple[str, str]]:
    """Every endpoint whose path carries an id, read from the OpenAPI document so none escapes."""
    paths = create_app(settings).openapi()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() if "{" in path for method in operations]


def allowed_roles(path: str) -> frozenset[Role]:
    [roles] = [roles for prefix, roles in ROLES_BY_PREFIX.items() if path.startswith(prefix)]
    return roles


async def own_objects(api: httpx.AsyncClient, api_keys: dict, engine: Engine, org: str) -> Owned:
    platform = headers(api_keys, Role.PLATFORM, org)
    name = uuid.uuid4().hex[:10]
    upload = await api.post("/v1/content/upload", headers=platform,
                            data={"content_id": f"c-{name}", "creator_id": f"user-{name}"},
                            files={"file": ("a.png", make_sandbox_image(None, seed=hash(name) % 10_000, fmt="PNG"),
                                            "image/png")})
    assert upload.status_code == 202, upload.text
    # HIGH is below the high-precision threshold: the item waits in triage for a reviewer.
    screened = await api.post("/v1/screenings/upload", headers=platform,
                              data={"content_id": f"s-{name}", "creator_id": f"user-{name}"},
                              files={"file": ("b.jpg", make_sandbox_image(Priority.HIGH, seed=len(org) * 7919),
                                              "image/jpeg")})
    assert screened.status_code == 202, screened.text
    screening_ref = screened.json()["screening_ref"]
    case_ref = upload.json()["case_ref"]
    with Session(engine) as session:
        # A filed report as open_report and upload_file record it (its NCMEC side is not what is tested here).
        report = FiledReport(org_id=org, workflow_id=case_ref, case_number=1, ncmec_environment="sandbox",
                             ncmec_report_id=int(uuid.uuid4().int % 10**12), status=ReportStatus.OPEN,
                             report_xml="<report/>", submitted_by="admin:1", opened_at=datetime.now(UTC))
        session.add(report)
        session.flush()
        assert report.id is not None
        session.add(FiledFile(report_pk=report.id, media_id=f"c-{name}", evidence_sha256="0" * 64,
                              ncmec_file_id=f"f-{name}", md5="0" * 32, file_details_xml="<fileDetails/>",
                              uploaded_at=datetime.now(UTC)))
        session.commit()
        report_id = report.id
    owned = Owned(case_ref=case_ref, media_id=f"c-{name}", screening_ref=screening_ref, report_id=report_id,
                  ncmec_file_id=f"f-{name}")

    async def ready() -> bool:
        admin = headers(api_keys, Role.ADMIN, org)
        case = await api.get(f"/v1/cases/{case_ref}", headers=admin)
        triage = await api.get(f"/v1/triage/{screening_ref}/content", headers=admin)
        return case.status_code == triage.status_code == 200

    await eventually(ready, what=f"org {org}'s case and triage item")
    return owned


@pytest.fixture(scope="module")
async def owned(api: httpx.AsyncClient, api_keys: dict, engine: Engine) -> dict[str, Owned]:
    return {org: await own_objects(api, api_keys, engine, org) for org in PREFIX_ORGS}


async def test_every_endpoint_refuses_every_foreign_object_to_every_role(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, owned: dict[str, Owned]
) -> None:
    routes = routes_with_ids(settings)
    assert len(routes) >= 13, routes
    checked = 0
    for (method, path), role, (owner, caller) in itertools.product(routes, Role,
                                                                    itertools.permutations(PREFIX_ORGS, 2)):
        body = BODIES.get(path.rsplit("/", 1)[-1], {})
        response = await api.request(method, owned[owner].fill(path), headers=headers(api_keys, role, caller),
                                     json=body)
        expected = 404 if role in allowed_roles(path) else 403
        assert response.status_code == expected, (method, path, role.value, owner, caller, response.text)
        checked += 1
    assert checked == len(routes) * len(Role) * 6


async def test_each_org_reaches_its_own_objects(api: httpx.AsyncClient, api_keys: dict,
                                                owned: dict[str, Owned]) -> None:
    """The same ids the other orgs were refused are real: their owner reads every one."""
    for org, mine in owned.items():
        admin = headers(api_keys, Role.ADMIN, org)
        for path in ("/v1/cases/{case_ref}", "/v1/screenings/{screening_ref}", "/v1/triage/{screening_ref}/content",
                     "/v1/reports/{report_id}", "/v1/reports/{report_id}/files/{ncmec_file_id}/details"):
            response = await api.get(mine.fill(path), headers=admin)
            assert response.status_code == 200, (org, path, response.text)


async def test_a_foreign_id_and_an_unknown_id_get_the_same_answer(api: httpx.AsyncClient, api_keys: dict,
                                                                  owned: dict[str, Owned]) -> None:
    caller = headers(api_keys, Role.ADMIN, "acme")
    unknown = Owned(case_ref="case-" + "0" * 32, media_id="m", screening_ref="screening-" + "0" * 32,
                    report_id=2**62, ncmec_file_id="f")
    for path in ("/v1/cases/{case_ref}", "/v1/screenings/{screening_ref}", "/v1/triage/{screening_ref}/content",
                 "/v1/reports/{report_id}"):
        foreign = await api.get(owned["acme-kids"].fill(path), headers=caller)
        missing = await api.get(unknown.fill(path), headers=caller)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json()["title"] == missing.json()["title"] and foreign.json()["title"].startswith("No such")
    for too_large in (2**31, 2**63, 2**64):  # no report has such an id; the database must never be asked
        assert (await api.get(f"/v1/reports/{too_large}/xml", headers=caller)).status_code == 404


async def test_lists_show_only_the_callers_org(api: httpx.AsyncClient, api_keys: dict,
                                               owned: dict[str, Owned]) -> None:
    async def listing(caller: str) -> str:
        admin = headers(api_keys, Role.ADMIN, caller)
        return " ".join([(await api.get(path, params={"limit": 500}, headers=admin)).text
                         for path in ("/v1/cases", "/v1/triage", "/v1/reports")])

    def shown(listed: str, theirs: Owned) -> set[bool]:
        return {theirs.case_ref in listed, theirs.screening_ref in listed,
                re.search(rf'"id":{theirs.report_id}\b', listed) is not None}

    for caller in PREFIX_ORGS:
        # "acme" shares its queues with the rest of the suite; the other two are this module's alone.
        if caller != "acme":
            async def all_mine(org: str = caller) -> bool:
                return shown(await listing(org), owned[org]) == {True}

            await eventually(all_mine, what=f"org {caller}'s objects in its lists")
        listed = await listing(caller)
        for owner in PREFIX_ORGS:
            if owner != caller:
                assert shown(listed, owned[owner]) == {False}, (caller, owner)


async def test_a_recorded_screening_whose_start_never_arrived_is_not_found(
    api: httpx.AsyncClient, api_keys: dict, engine: Engine
) -> None:
    ref = f"screening-{uuid.uuid4().hex}"
    with Session(engine) as session:
        session.add(IssuedRef(ref=ref, kind=RefKind.SCREENING, org_id="acme"))
        session.commit()
    response = await api.get(f"/v1/screenings/{ref}", headers=headers(api_keys, Role.ADMIN, "acme"))
    assert response.status_code == 404 and response.json()["title"] == "No such screening"
