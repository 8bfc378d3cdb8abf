"""The NCMEC Reports dashboard's API: every report of the org with its reported user, files, XML and receipt;
filters and paging that never leave the caller's org; files downloadable only by the org that filed them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from models.conversation_csv import conversation_csv
from models.cybertip import conversation_media_id
from models.records import FiledFile, FiledReport, Role
from tests.helpers import PREFIX_ORGS, headers
from tipline.evidence import EvidenceStore
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

pytestmark = pytest.mark.usefixtures("worker")
DAY = datetime(2001, 3, 1, tzinfo=UTC)  # far before anything else the suite files, so a date range isolates these


def report_xml(screen_name: str) -> str:
    return (f"<report><incidentSummary><incidentType>Child Pornography (possession, manufacture, and distribution)"
            f"</incidentType></incidentSummary><reporter/><personOrUserReported><personOrUserReportedPerson>"
            f"<email>{screen_name}@example.com</email></personOrUserReportedPerson><espIdentifier>id-{screen_name}"
            f"</espIdentifier><screenName>{screen_name}</screenName></personOrUserReported></report>")


def file_report(engine: Engine, store: EvidenceStore, org: str, *, day: int, environment: str, status: str,
                receipt: bool = False) -> tuple[int, int, dict[str, bytes]]:
    """A report as the filing activities record one: a reported file, a supplemental one, a conversation CSV."""
    image = synthetic_image(90_000 + day + len(org))
    csv = conversation_csv([])
    name = uuid.uuid4().hex[:8]
    ncmec_id = int(uuid.uuid4().int % 10**12)
    with Session(engine) as session:
        report = FiledReport(org_id=org, workflow_id=f"case-{uuid.uuid4().hex}", case_number=1,
                             ncmec_environment=environment, ncmec_report_id=ncmec_id, status=status,
                             report_xml=report_xml(f"user{name}"), submitted_by="user:1",
                             opened_at=DAY.replace(day=day),
                             finish_receipt_xml="<reportDoneResponse/>" if receipt else None,
                             failure_reason="NCMEC refused the report" if status == "failed" else None)
        session.add(report)
        session.flush()
        assert report.id is not None
        supplemental = synthetic_image(95_000 + day + len(org))
        files = {f"f-{name}": image, f"s-{name}": supplemental, f"c-{name}": csv}
        for file_id, data in files.items():
            evidence = store.put_bytes(data)
            conversation = file_id.startswith("c-")
            media_id = conversation_media_id("t1") if conversation else f"{file_id[0]}m-{name}"
            session.add(FiledFile(report_pk=report.id, evidence_sha256=evidence.sha256, ncmec_file_id=file_id,
                                  md5=evidence.md5, uploaded_at=DAY, media_id=media_id,
                                  file_relevance="Reported" if file_id.startswith("f-") else "Supplemental Reported",
                                  file_details_xml="<fileDetails/>"))
        session.commit()
        return report.id, ncmec_id, files


async def test_filters_and_paging_stay_in_the_org(api: httpx.AsyncClient, api_keys: dict, engine: Engine,
                                                  settings: Settings) -> None:
    store = EvidenceStore.from_settings(settings)
    org, other = "acme-kids", "a"
    mine = [file_report(engine, store, org, day=d, environment=e, status=s, receipt=s == "finished")
            for d, e, s in ((2, "sandbox", "finished"), (3, "production", "failed"), (4, "sandbox", "open"))]
    theirs = file_report(engine, store, other, day=3, environment="production", status="failed")
    auditor = headers(api_keys, Role.AUDITOR, org)
    window = {"opened_from": DAY.isoformat(), "opened_to": DAY.replace(day=28).isoformat()}

    async def ids(**params: object) -> tuple[list[int], int]:
        response = await api.get("/v1/reports", params={**window, **params}, headers=auditor)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()], int(response.headers["X-Total-Count"])

    assert await ids() == ([mine[2][0], mine[1][0], mine[0][0]], 3)  # newest first, never the other org's
    assert await ids(limit=2) == ([mine[2][0], mine[1][0]], 3)
    assert await ids(limit=2, offset=2) == ([mine[0][0]], 3)
    assert await ids(status="failed") == ([mine[1][0]], 1)
    assert await ids(environment="production") == ([mine[1][0]], 1)
    assert await ids(environment="sandbox", status="open") == ([mine[2][0]], 1)
    assert await ids(opened_from=DAY.replace(day=3).isoformat(), opened_to=DAY.replace(day=4).isoformat()) == (
        [mine[1][0]], 1)
    assert await ids(ncmec_report_id=mine[0][1]) == ([mine[0][0]], 1)
    assert await ids(ncmec_report_id=theirs[1]) == ([], 0)  # another org's report id finds nothing
    for bad in ({"environment": "staging"}, {"opened_from": "yesterday"}, {"offset": -1}, {"ncmec_report_id": 0}):
        refused = await api.get("/v1/reports", params=bad, headers=auditor)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"].endswith(next(iter(bad)))

    listed = {r["id"]: r for r in (await api.get("/v1/reports", params=window, headers=auditor)).json()}
    finished = listed[mine[0][0]]
    assert finished["test"] is True and listed[mine[1][0]]["test"] is False
    [user] = finished["reported_users"]
    assert user["screen_name"].startswith("user") and user["esp_identifier"] == f"id-{user['screen_name']}"
    assert user["emails"] == [f"{user['screen_name']}@example.com"]
    assert {f["kind"] for f in finished["files"]} == {"media", "supplemental", "conversation"}


async def test_xml_receipt_and_files_are_downloadable_by_the_owning_org_only(
    api: httpx.AsyncClient, api_keys: dict, engine: Engine, settings: Settings
) -> None:
    store = EvidenceStore.from_settings(settings)
    owner = "acme-kids"
    report_id, _, files = file_report(engine, store, owner, day=5, environment="sandbox", status="finished",
                                      receipt=True)
    report = (await api.get(f"/v1/reports/{report_id}", headers=headers(api_keys, Role.AUDITOR, owner))).json()
    urls = [f"/v1/reports/{report_id}/xml", f"/v1/reports/{report_id}/receipt",
            *[f["content_url"] for f in report["files"]]]
    for org in PREFIX_ORGS:
        for url in urls:
            response = await api.get(url, headers=headers(api_keys, Role.AUDITOR, org))
            assert response.status_code == (200 if org == owner else 404), (org, url)
    by_kind = {f["kind"]: f for f in report["files"]}
    media = await api.get(by_kind["media"]["content_url"], headers=headers(api_keys, Role.ADMIN, owner))
    assert media.content == files[by_kind["media"]["ncmec_file_id"]] and media.headers["content-type"] == "image/png"
    extra = await api.get(by_kind["supplemental"]["content_url"], headers=headers(api_keys, Role.ADMIN, owner))
    assert extra.content == files[by_kind["supplemental"]["ncmec_file_id"]]  # a supplemental file, apart
    csv = await api.get(by_kind["conversation"]["content_url"], headers=headers(api_keys, Role.ADMIN, owner))
    assert csv.content == files[by_kind["conversation"]["ncmec_file_id"]]
    assert csv.headers["content-type"].startswith("text/csv") and ".csv" in csv.headers["content-disposition"]
    xml = await api.get(f"/v1/reports/{report_id}/xml", headers=headers(api_keys, Role.ADMIN, owner))
    assert "<screenName>" in xml.text
    assert (await api.get(f"/v1/reports/{report_id}/files/nope/content",
                          headers=headers(api_keys, Role.ADMIN, owner))).status_code == 404
    # A platform key reads no records at all.
    assert (await api.get(urls[2], headers=headers(api_keys, Role.PLATFORM, owner))).status_code == 403
