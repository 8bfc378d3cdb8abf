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
from temporalio.client import Client

from activities.triage import TriageActivities
from api.app import create_app
from models.records import NCMEC_ROLES, FiledFile, FiledReport, IssuedRef, RefKind, ReportStatus, Role
from models.screening import TriageRecord
from tests.helpers import PREFIX_ORGS, eventually, headers
from tipline.evidence import EvidenceStore
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

RECORDS_ROLES = NCMEC_ROLES | {Role.AUDITOR}
# Which roles may use each kind of endpoint at all; every other role gets 403 whatever the id. Every endpoint
# that takes an id must match one of these, so a new one cannot be left out of the checks below.
ROLES_BY_PREFIX = {
    "/v1/cases/": NCMEC_ROLES,
    "/v1/screenings/": NCMEC_ROLES,
    "/v1/triage/": NCMEC_ROLES,
    "/v1/reports/": RECORDS_ROLES,
    "/v1/cases/{case_ref}/holds": frozenset({Role.ADMIN, Role.MODERATOR_MANAGER}),
    "/v1/cases/{case_ref}/timeline": frozenset({Role.AUDITOR, Role.MODERATOR_MANAGER}),
}
BODIES = {"decision": {"incident_type": "Child Pornography (possession, manufacture, and distribution)"},
          "claim": {"user_id": 1}, "dismissal": {"reason": "not abuse"}, "escalation": {"reason": "looks bad"},
          "holds": {"reason": "order"}}


@dataclass
class Owned:
    """One org's objects, one of each kind an endpoint takes an id of."""

    case_ref: str
    media_id: str
    screening_ref: str
    triage_ref: str
    report_id: int
    ncmec_file_id: str

    def fill(self, path: str) -> str:
        # Triage items are named by the id of the screening that put them there.
        screening = self.triage_ref if path.startswith("/v1/triage/") else self.screening_ref
        filled = (path.replace("{case_ref}", self.case_ref).replace("{media_id}", self.media_id)
                  .replace("{screening_ref}", screening).replace("{report_id}", str(self.report_id))
                  .replace("{ncmec_file_id}", self.ncmec_file_id))
        assert "{" not in filled, f"{path} takes an id this test does not own an object for: add one"
        return filled


def routes_with_ids(settings: Settings) -> list[tuple[str, str]]:
    """Every endpoint whose path carries an id, read from the OpenAPI document so none escapes."""
    paths = create_app(settings).openapi()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() if "{" in path for method in operations]


def allowed_roles(path: str) -> frozenset[Role]:
    # The longest prefix wins: a case's holds are for fewer roles than the case.
    return max(((prefix, roles) for prefix, roles in ROLES_BY_PREFIX.items() if path.startswith(prefix)),
               key=lambda match: len(match[0]))[1]


async def own_objects(api: httpx.AsyncClient, api_keys: dict, engine: Engine, triage: TriageActivities,
                      store: EvidenceStore, org: str) -> Owned:
    platform = headers(api_keys, Role.PLATFORM, org)
    name = uuid.uuid4().hex[:10]
    upload = await api.post("/v1/content/upload", headers=platform,
                            data={"content_id": f"c-{name}", "creator_id": f"user-{name}"},
                            files={"file": ("a.png", synthetic_image(50_000 + len(org)), "image/png")})
    assert upload.status_code == 202, upload.text
    screened = await api.post("/v1/screenings/upload", headers=platform,
                              data={"content_id": f"s-{name}", "creator_id": f"user-{name}"},
                              files={"file": ("b.png", synthetic_image(60_000 + len(org)), "image/png")})
    assert screened.status_code == 202, screened.text
    case_ref, screening_ref = upload.json()["case_ref"], screened.json()["screening_ref"]
    # A triage item as the screening workflow records one (whether a real screening lands in triage depends on
    # what the rest of the suite has banked for the org, so this one is recorded directly, through the activity).
    triage_ref = triage.registry.screening_ref_for(org, f"t-{name}")
    triage.record_triage(TriageRecord(
        screening_id=triage_ref, org_id=org, creator_id=f"user-{name}", content_id=f"t-{name}",
        evidence=store.put_bytes(synthetic_image(70_000 + len(org))), content_type="image/png",
        classifier_priority="HIGH", created_at=datetime.now(UTC)))
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

    async def ready() -> bool:
        admin = headers(api_keys, Role.ADMIN, org)
        case = await api.get(f"/v1/cases/{case_ref}", headers=admin)
        screening = await api.get(f"/v1/screenings/{screening_ref}", headers=admin)
        return case.status_code == screening.status_code == 200

    await eventually(ready, what=f"org {org}'s case and screening")
    return Owned(case_ref=case_ref, media_id=f"c-{name}", screening_ref=screening_ref, triage_ref=triage_ref,
                 report_id=report_id, ncmec_file_id=f"f-{name}")


@pytest.fixture(scope="module")
async def owned(api: httpx.AsyncClient, api_keys: dict, engine: Engine, settings: Settings,
                temporal_client: Client) -> dict[str, Owned]:
    triage, store = TriageActivities(settings, engine, temporal_client), EvidenceStore.from_settings(settings)
    return {org: await own_objects(api, api_keys, engine, triage, store, org) for org in PREFIX_ORGS}


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
                    triage_ref="screening-" + "1" * 32, report_id=2**31 - 1, ncmec_file_id="f")
    for path in ("/v1/cases/{case_ref}", "/v1/screenings/{screening_ref}", "/v1/triage/{screening_ref}/content",
                 "/v1/reports/{report_id}"):
        foreign = await api.get(owned["acme-kids"].fill(path), headers=caller)
        missing = await api.get(unknown.fill(path), headers=caller)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json()["title"] == missing.json()["title"] and foreign.json()["title"].startswith("No such")
    for too_large in (2**31, 2**63, 2**64):  # not a report id at all: refused, naming it, before the database
        assert (await api.get(f"/v1/reports/{too_large}/xml", headers=caller)).status_code == 422


async def test_lists_show_only_the_callers_org(api: httpx.AsyncClient, api_keys: dict,
                                               owned: dict[str, Owned]) -> None:
    async def listing(caller: str) -> str:
        admin = headers(api_keys, Role.ADMIN, caller)
        return " ".join([(await api.get(path, params={"limit": 500}, headers=admin)).text
                         for path in ("/v1/cases", "/v1/triage", "/v1/reports")])

    def shown(listed: str, theirs: Owned) -> set[bool]:
        return {theirs.case_ref in listed, theirs.triage_ref in listed,
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
