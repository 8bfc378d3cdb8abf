"""The sandbox over real loopback HTTP: wire format, business rules, state machine, expiry, faults, persistence."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from lxml import etree

from cybertipline.client import CyberTiplineClient, CyberTiplineError, CyberTiplineTransportError
from cybertipline.sandbox import SandboxClock, SandboxConfig
from cybertipline.xsd import load_schema
from tests.cybertipline.conftest import (
    PASSWORD,
    USERNAME,
    RunningSandbox,
    file_details_xml,
    future_timestamp,
    out_of_order_report_xml,
    report_xml,
    running_sandbox,
)
from tipline.http_server import serve_app

XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}


def _code(response: httpx.Response) -> int:
    return int(etree.fromstring(response.content).findtext("responseCode") or "-1")


async def _submit(client: CyberTiplineClient) -> int:
    result = await client.submit(report_xml())
    assert result.report_id is not None
    return result.report_id


async def _expect_code(code: int, call: Awaitable[object]) -> CyberTiplineError:
    with pytest.raises(CyberTiplineError) as info:
        await call
    assert info.value.code == code, info.value
    return info.value


# -- transport, auth, wire format ------------------------------------------------------------------------


async def test_bad_credentials_get_401_with_realm_and_request_id(sandbox: RunningSandbox) -> None:
    for auth in [None, (USERNAME, "wrong"), ("nobody", PASSWORD)]:
        async with sandbox.http(auth=auth) as http:
            response = await http.get("/ispws/status")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="ESP Web Services"'
        assert response.headers["Request-ID"]


async def test_control_endpoints_need_auth_too(sandbox: RunningSandbox) -> None:
    async with sandbox.http(auth=None) as http:
        assert (await http.get("/_sandbox/reports")).status_code == 401


async def test_status_names_user_and_ip(sandbox: RunningSandbox) -> None:
    async with sandbox.http() as http:
        response = await http.get("/ispws/status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = etree.fromstring(response.content)
    assert root.findtext("responseDescription") == f"Remote User : {USERNAME}, Remote Ip : 127.0.0.1"
    assert root.find("reportId") is None


async def test_every_response_carries_a_distinct_request_id(sandbox: RunningSandbox) -> None:
    async with sandbox.http() as http:
        ids = {
            (await http.get("/ispws/status")).headers["Request-ID"],
            (await http.post("/ispws/submit", content=b"<report", headers=XML_HEADERS)).headers["Request-ID"],
            (await http.post("/ispws/finish", data={"id": "1"})).headers["Request-ID"],
            (await http.get("/_sandbox/reports")).headers["Request-ID"],
        }
    assert len(ids) == 4


async def test_responses_validate_against_ncmec_schema(sandbox: RunningSandbox, xsd_path: Path) -> None:
    schema = load_schema(xsd_path)
    async with sandbox.http() as http:
        submitted = await http.post("/ispws/submit", content=report_xml(), headers=XML_HEADERS)
        report_id = etree.fromstring(submitted.content).findtext("reportId")
        uploaded = await http.post(
            "/ispws/upload", data={"id": report_id}, files={"file": ("a.jpg", b"synthetic-image-1")}
        )
        failed = await http.post("/ispws/submit", content=b"<report/>", headers=XML_HEADERS)
        finished = await http.post("/ispws/finish", data={"id": report_id})
    for response in (submitted, uploaded, failed, finished):
        assert schema.validate(etree.fromstring(response.content)), response.text


async def test_xsd_endpoint_serves_the_configured_schema(sandbox: RunningSandbox, xsd_path: Path) -> None:
    async with sandbox.http() as http:
        response = await http.get("/ispws/xsd")
    assert response.status_code == 200
    assert response.content == xsd_path.read_bytes()  # noqa: ASYNC240 - tiny local file


# -- /submit validation ----------------------------------------------------------------------------------


async def test_minimal_valid_report_is_accepted(client: CyberTiplineClient, sandbox: RunningSandbox) -> None:
    result = await client.submit(report_xml())
    assert result.response_code == 0 and result.description == "Success"
    assert result.report_id is not None and 1_000_000 <= result.report_id <= 9_999_999
    second = await client.submit(report_xml())
    assert second.report_id is not None and second.report_id > result.report_id
    stored = sandbox.state.reports[result.report_id]
    assert stored.status == "open" and stored.report_xml == report_xml().decode()


async def test_out_of_order_elements_give_4100_with_the_validator_message(client: CyberTiplineClient) -> None:
    error = await _expect_code(4100, client.submit(out_of_order_report_xml()))
    assert error.description is not None
    assert "Element 'reporter': This element is not expected" in error.description
    assert not error.transient


async def test_not_well_formed_gives_4110(client: CyberTiplineClient) -> None:
    await _expect_code(4110, client.submit(b"<report><incidentSummary></report>"))
    await _expect_code(4110, client.submit(b""))


async def test_report_in_another_declared_encoding_is_stored_as_text(
    client: CyberTiplineClient, sandbox: RunningSandbox
) -> None:
    document = report_xml(
        reporting_person="<firstName>Zoë</firstName><email>test.reporter@example.com</email>"
    ).replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"')
    latin1 = document.decode("utf-8").encode("iso-8859-1")
    result = await client.submit(latin1)
    assert result.report_id is not None
    assert "<firstName>Zoë</firstName>" in sandbox.state.reports[result.report_id].report_xml


async def test_wrong_root_element_is_a_validation_failure(client: CyberTiplineClient) -> None:
    await _expect_code(4100, client.submit(file_details_xml(1234567, "0" * 32)))


BUSINESS_RULE_VIOLATIONS = {
    "future incidentDateTime": report_xml(incident_date_time=future_timestamp()),
    "space in url": report_xml(
        internet_details="<internetDetails><webPageIncident><url>https://example.com/a b</url>"
        "</webPageIncident></internetDetails>"
    ),
    "tab in url": report_xml(
        internet_details="<internetDetails><webPageIncident><url>https://example.com/a\tb</url>"
        "</webPageIncident></internetDetails>"
    ),
    "newline in profileUrl": report_xml(
        tail="<personOrUserReported><profileUrl>https://example.com/u/1\n</profileUrl></personOrUserReported>"
    ),
    "space in legalURL": report_xml(reporter_extra="<legalURL> https://example.com/legal</legalURL>"),
    "reportingPerson without email": report_xml(
        reporting_person="<firstName>Test</firstName><lastName>Reporter</lastName>"
    ),
    "firstName over 100": report_xml(
        reporting_person=f"<firstName>{'T' * 101}</firstName><email>test.reporter@example.com</email>"
    ),
    "email over 255": report_xml(reporting_person=f"<email>{'t' * 244}@example.com</email>"),
    "zipCode over 20": report_xml(
        reporting_person=f"<email>test.reporter@example.com</email><address><zipCode>{'9' * 21}</zipCode></address>"
    ),
    "phone over 50": report_xml(reporting_person=f"<phone>{'5' * 51}</phone><email>test.reporter@example.com</email>"),
    "age over 150": report_xml(reporting_person="<email>test.reporter@example.com</email><age>151</age>"),
    "screenName over 256": report_xml(
        tail=f"<personOrUserReported><screenName>{'s' * 257}</screenName></personOrUserReported>"
    ),
    "port 0": report_xml(
        tail="<personOrUserReported><ipCaptureEvent><ipAddress>192.0.2.1</ipAddress><port>0</port>"
        "</ipCaptureEvent></personOrUserReported>"
    ),
    "escalateToHighPriority over 3000": report_xml(
        summary_extra=f"<escalateToHighPriority>{'u' * 3001}</escalateToHighPriority>"
    ),
    "blank escalateToHighPriority": report_xml(summary_extra="<escalateToHighPriority> </escalateToHighPriority>"),
    "report additionalInfo over 3000": report_xml(tail=f"<additionalInfo>{'i' * 3001}</additionalInfo>"),
}


@pytest.mark.parametrize("case", list(BUSINESS_RULE_VIOLATIONS))
async def test_business_rules_beyond_the_xsd_give_4100(
    client: CyberTiplineClient, sandbox: RunningSandbox, xsd_path: Path, case: str
) -> None:
    document = BUSINESS_RULE_VIOLATIONS[case]
    # Each case is schema-valid, so the 4100 can only come from the business rule.
    schema = load_schema(xsd_path)
    assert schema.validate(etree.fromstring(document)), schema.error_log
    await _expect_code(4100, client.submit(document))
    assert sandbox.state.reports == {}


async def test_lengths_at_the_limit_are_accepted(client: CyberTiplineClient) -> None:
    document = report_xml(
        reporting_person=f"<firstName>{'T' * 100}</firstName><email>test.reporter@example.com</email><age>150</age>",
        summary_extra=f"<escalateToHighPriority>{'u' * 3000}</escalateToHighPriority>",
    )
    assert (await client.submit(document)).response_code == 0


async def test_reporting_person_email_is_optional_when_not_strict(sandbox_config: SandboxConfig) -> None:
    sandbox_config.strict_reporting_person_email = False
    document = report_xml(reporting_person="<firstName>Test</firstName><lastName>Reporter</lastName>")
    async with running_sandbox(sandbox_config) as sandbox, sandbox.client() as client:
        assert (await client.submit(document)).response_code == 0


async def test_without_xsd_only_well_formedness_and_rules_apply(sandbox_config: SandboxConfig) -> None:
    sandbox_config.xsd_path = None
    async with running_sandbox(sandbox_config) as sandbox, sandbox.client() as client:
        assert (await client.submit(out_of_order_report_xml())).response_code == 0
        await _expect_code(4110, client.submit(b"<report"))
        await _expect_code(4100, client.submit(report_xml(incident_date_time=future_timestamp())))
        await _expect_code(1210, client.xsd())


# -- /upload, /fileinfo ----------------------------------------------------------------------------------


async def test_upload_returns_file_id_and_md5_of_the_bytes(client: CyberTiplineClient, sandbox: RunningSandbox) -> None:
    report_id = await _submit(client)
    content = b"synthetic-image-1" * 1000
    result = await client.upload(report_id, "synthetic-1.jpg", content)
    assert result.report_id == report_id
    assert result.hash == hashlib.md5(content).hexdigest()
    assert result.file_id is not None and re.fullmatch(r"[0-9a-f]{32}", result.file_id)
    assert result.file_id != result.hash
    listing = await sandbox.control("GET", f"/reports/{report_id}")
    assert listing["files"] == [
        {
            "file_id": result.file_id,
            "filename": "synthetic-1.jpg",
            "md5": result.hash,
            "size": len(content),
            "uploaded_at": listing["files"][0]["uploaded_at"],
            "file_details_xml": None,
            # The bytes have no known magic, so the name decides.
            "content_type": "image/jpeg",
        }
    ]
    assert listing["last_modified_at"] is not None


async def test_upload_streams_a_file_bigger_than_the_spool_threshold(
    client: CyberTiplineClient, tmp_path: Path
) -> None:
    report_id = await _submit(client)
    path = tmp_path / "synthetic.bin"
    chunk = b"synthetic-video-frame-" * 4096
    with path.open("wb") as handle:
        for _ in range(40):  # ~3.6 MB, past Starlette's 1 MB in-memory spool
            handle.write(chunk)
    with path.open("rb") as handle:
        result = await client.upload(report_id, "synthetic.bin", handle)
    assert result.hash == hashlib.md5(path.read_bytes()).hexdigest()


async def test_upload_form_errors(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    report_id = await _submit(client)
    async with sandbox.http() as http:
        no_file = await http.post("/ispws/upload", data={"id": str(report_id)}, files={"other": ("x", b"x")})
        no_id = await http.post("/ispws/upload", files={"file": ("a.jpg", b"synthetic-image-1")})
        bad_id = await http.post("/ispws/upload", data={"id": "abc"}, files={"file": ("a.jpg", b"x")})
        not_multipart = await http.post("/ispws/upload", content=b"synthetic", headers=XML_HEADERS)
    assert _code(no_file) == 4200
    assert _code(no_id) == 4000
    assert _code(bad_id) == 4000
    assert _code(not_multipart) == 4000
    assert sandbox.state.reports[report_id].files == {}


async def test_fileinfo_is_stored_on_the_file(client: CyberTiplineClient, sandbox: RunningSandbox) -> None:
    report_id = await _submit(client)
    upload = await client.upload(report_id, "synthetic-1.jpg", b"synthetic-image-1")
    assert upload.file_id is not None
    details = file_details_xml(
        report_id,
        upload.file_id,
        body="<originalFileName>synthetic-1.jpg</originalFileName><fileViewedByEsp>true</fileViewedByEsp>"
        "<fileRelevance>Reported</fileRelevance><fileAnnotations><potentialMeme/></fileAnnotations>"
        '<industryClassification>A1</industryClassification><originalFileHash hashType="MD5">'
        f"{upload.hash}</originalFileHash>",
    )
    result = await client.fileinfo(details)
    assert result.response_code == 0 and result.report_id == report_id
    assert sandbox.state.reports[report_id].files[upload.file_id].file_details_xml == details.decode()


async def test_fileinfo_for_unknown_file_or_report(client: CyberTiplineClient) -> None:
    report_id = await _submit(client)
    await _expect_code(5002, client.fileinfo(file_details_xml(report_id, "f" * 32)))
    await _expect_code(5001, client.fileinfo(file_details_xml(report_id + 1000, "f" * 32)))


async def test_fileinfo_validation(client: CyberTiplineClient) -> None:
    report_id = await _submit(client)
    upload = await client.upload(report_id, "a.jpg", b"synthetic-image-1")
    assert upload.file_id is not None
    # fileRelevance before originalFileName: out of XSD order
    misordered = file_details_xml(
        report_id, upload.file_id, body="<fileRelevance>Reported</fileRelevance><originalFileName>a</originalFileName>"
    )
    error = await _expect_code(4100, client.fileinfo(misordered))
    assert error.description is not None and "originalFileName" in error.description
    await _expect_code(4110, client.fileinfo(b"<fileDetails><reportId>1</fileDetails>"))


SUPPLEMENTAL_VIOLATIONS = {
    "industryClassification": "<fileRelevance>Supplemental Reported</fileRelevance>"
    "<industryClassification>B2</industryClassification>",
    "fileAnnotations potentialMeme": "<fileRelevance>Supplemental Reported</fileRelevance>"
    "<fileAnnotations><potentialMeme/></fileAnnotations>",
    "legacy potentialMeme": "<fileRelevance>Supplemental Reported</fileRelevance><potentialMeme>true</potentialMeme>",
    "locationOfFile with space": "<locationOfFile>https://example.com/a file.jpg</locationOfFile>",
    "hashType over 64": f'<originalFileHash hashType="{"H" * 65}">abc</originalFileHash>',
    "originalFileName over 2056": f"<originalFileName>{'n' * 2057}</originalFileName>",
}


@pytest.mark.parametrize("case", list(SUPPLEMENTAL_VIOLATIONS))
async def test_file_details_business_rules_give_4100(
    client: CyberTiplineClient, sandbox: RunningSandbox, case: str
) -> None:
    report_id = await _submit(client)
    upload = await client.upload(report_id, "a.jpg", b"synthetic-image-1")
    assert upload.file_id is not None
    await _expect_code(
        4100, client.fileinfo(file_details_xml(report_id, upload.file_id, body=SUPPLEMENTAL_VIOLATIONS[case]))
    )
    assert sandbox.state.reports[report_id].files[upload.file_id].file_details_xml is None


async def test_supplemental_file_without_classification_is_fine(client: CyberTiplineClient) -> None:
    report_id = await _submit(client)
    upload = await client.upload(report_id, "chat.csv", b"synthetic,chat,log")
    assert upload.file_id is not None
    body = "<fileRelevance>Supplemental Reported</fileRelevance><fileAnnotations><viral/></fileAnnotations>"
    assert (await client.fileinfo(file_details_xml(report_id, upload.file_id, body=body))).response_code == 0


# -- /finish, /retract state machine ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
async def test_finish_lists_uploaded_files_in_either_form_encoding(
    sandbox: RunningSandbox, client: CyberTiplineClient, encoding: str
) -> None:
    report_id = await _submit(client)
    first = await client.upload(report_id, "a.jpg", b"synthetic-image-1")
    second = await client.upload(report_id, "b.jpg", b"synthetic-image-2")
    async with sandbox.http() as http:
        if encoding == "urlencoded":
            response = await http.post("/ispws/finish", data={"id": str(report_id)})
            assert response.request.headers["content-type"] == "application/x-www-form-urlencoded"
        else:
            response = await http.post("/ispws/finish", files={"id": (None, str(report_id))})
            assert response.request.headers["content-type"].startswith("multipart/form-data")
    root = etree.fromstring(response.content)
    assert root.tag == "reportDoneResponse"
    assert root.findtext("responseCode") == "0"
    assert root.findtext("reportId") == str(report_id)
    assert root.find("responseDescription") is None
    assert [f.text for f in root.iterfind("files/fileId")] == [first.file_id, second.file_id]
    assert sandbox.state.reports[report_id].status == "finished"


async def test_retract_accepts_multipart_form(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    report_id = await _submit(client)
    async with sandbox.http() as http:
        response = await http.post("/ispws/retract", files={"id": (None, str(report_id))})
    assert _code(response) == 0
    assert sandbox.state.reports[report_id].status == "retracted"


async def test_finish_without_files_returns_empty_files_element(client: CyberTiplineClient) -> None:
    report_id = await _submit(client)
    done = await client.finish(report_id)
    assert done.file_ids == [] and "<files></files>" in done.raw_xml


async def test_missing_or_bad_id_is_4000(sandbox: RunningSandbox) -> None:
    async with sandbox.http() as http:
        for path in ("/ispws/finish", "/ispws/retract"):
            assert _code(await http.post(path)) == 4000
            assert _code(await http.post(path, data={"id": ""})) == 4000
            assert _code(await http.post(path, data={"id": "12x"})) == 4000


async def test_state_machine_codes(client: CyberTiplineClient) -> None:
    await _expect_code(5001, client.finish(1))
    await _expect_code(5001, client.retract(1))
    await _expect_code(5001, client.upload(1, "a.jpg", b"synthetic-image-1"))

    finished = await _submit(client)
    await client.finish(finished)
    await _expect_code(5102, client.finish(finished))
    await _expect_code(5102, client.retract(finished))
    await _expect_code(5102, client.upload(finished, "a.jpg", b"synthetic-image-1"))
    await _expect_code(5102, client.fileinfo(file_details_xml(finished, "a" * 32)))

    retracted = await _submit(client)
    await client.retract(retracted)
    await _expect_code(5101, client.retract(retracted))
    await _expect_code(5101, client.finish(retracted))
    await _expect_code(5101, client.upload(retracted, "a.jpg", b"synthetic-image-1"))
    await _expect_code(5101, client.fileinfo(file_details_xml(retracted, "a" * 32)))


async def test_another_users_report_does_not_exist(sandbox_config: SandboxConfig) -> None:
    sandbox_config.extra_users = {"other-esp": "other-password"}
    async with (
        running_sandbox(sandbox_config) as sandbox,
        sandbox.client() as owner,
        sandbox.client("other-esp", "other-password") as other,
    ):
        report_id = await _submit(owner)
        await _expect_code(5001, other.finish(report_id))
        await _expect_code(5001, other.retract(report_id))
        await _expect_code(5001, other.upload(report_id, "a.jpg", b"synthetic-image-1"))
        assert (await owner.finish(report_id)).report_id == report_id


async def test_configurable_http_status_for_errors(sandbox_config: SandboxConfig) -> None:
    sandbox_config.error_http_status = 400
    async with running_sandbox(sandbox_config) as sandbox, sandbox.client() as client:
        error = await _expect_code(4100, client.submit(out_of_order_report_xml()))
        assert error.http_status == 400
        error = await _expect_code(5001, client.finish(1))
        assert error.http_status == 400
        ok = await client.submit(report_xml())
        assert ok.http_status == 200


# -- expiry on the injectable clock ----------------------------------------------------------------------


async def test_idle_report_expires_24_hours_after_opening(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    report_id = await _submit(client)
    opened = sandbox.state.reports[report_id].opened_at
    assert (await sandbox.control("GET", f"/reports/{report_id}"))["expires_at"] == (
        opened + timedelta(hours=24)
    ).isoformat()
    await sandbox.control("POST", "/clock", {"advance_seconds": 24 * 3600 - 60})
    assert (await sandbox.control("GET", f"/reports/{report_id}"))["status"] == "open"
    await sandbox.control("POST", "/clock", {"advance_seconds": 61})
    assert (await sandbox.control("GET", f"/reports/{report_id}"))["status"] == "expired"
    await _expect_code(5001, client.finish(report_id))
    await _expect_code(5001, client.retract(report_id))


async def test_modification_extends_life_to_one_hour_after_last_change(
    sandbox: RunningSandbox, client: CyberTiplineClient
) -> None:
    clock = sandbox.state.clock
    report_id = await _submit(client)
    clock.advance(timedelta(hours=23, minutes=30))
    upload = await client.upload(report_id, "a.jpg", b"synthetic-image-1")
    assert upload.file_id is not None
    clock.advance(timedelta(minutes=45))  # 24h15m after opening, 45m after the upload
    assert (await sandbox.control("GET", f"/reports/{report_id}"))["status"] == "open"
    await client.fileinfo(file_details_xml(report_id, upload.file_id))  # modification at 24h15m
    clock.advance(timedelta(minutes=59))
    assert (await sandbox.control("GET", f"/reports/{report_id}"))["status"] == "open"
    clock.advance(timedelta(minutes=2))
    await _expect_code(5001, client.upload(report_id, "b.jpg", b"synthetic-image-2"))
    assert (await sandbox.control("GET", f"/reports/{report_id}"))["status"] == "expired"


async def test_finished_report_never_expires(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    report_id = await _submit(client)
    await client.finish(report_id)
    sandbox.state.clock.advance(timedelta(days=30))
    await _expect_code(5102, client.retract(report_id))


async def test_clock_can_be_set_and_injected(sandbox_config: SandboxConfig) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    clock = SandboxClock(start)
    async with running_sandbox(sandbox_config, clock) as sandbox, sandbox.client() as client:
        report_id = await _submit(client)
        assert abs(sandbox.state.reports[report_id].opened_at - start) < timedelta(minutes=1)
        moved = await sandbox.control("POST", "/clock", {"set": "2030-01-03T00:00:00+00:00"})
        assert moved["now"].startswith("2030-01-03T00:00")
        await _expect_code(5001, client.finish(report_id))


# -- faults ----------------------------------------------------------------------------------------------


async def test_error_rate_answers_503_and_commits_nothing(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    settings = await sandbox.control("POST", "/faults", {"error_rate": 1.0})
    assert settings["error_rate"] == 1.0
    with pytest.raises(CyberTiplineTransportError) as info:
        await client.submit(report_xml())
    assert info.value.http_status == 503
    assert await sandbox.control("GET", "/reports") == []
    # The same client (and its pooled connection) works again once the fault is gone.
    await sandbox.control("POST", "/faults", {"error_rate": 0.0})
    assert (await client.submit(report_xml())).response_code == 0


@pytest.mark.parametrize("mode", ["status_502", "abort", "random"])
async def test_drop_rate_commits_but_loses_the_answer(
    sandbox: RunningSandbox, client: CyberTiplineClient, mode: str
) -> None:
    await sandbox.control("POST", "/faults", {"drop_rate": 1.0, "drop_mode": mode, "seed": 7})
    with pytest.raises(CyberTiplineTransportError):
        await client.submit(report_xml())
    reports = await sandbox.control("GET", "/reports")
    assert [r["status"] for r in reports] == ["open"]
    # The dropped call did happen: retrying the finish after a drop sees "already finished".
    report_id = reports[0]["report_id"]
    with pytest.raises(CyberTiplineTransportError):
        await client.finish(report_id)
    await sandbox.control("POST", "/faults", {"drop_rate": 0.0})
    await _expect_code(5102, client.finish(report_id))


async def test_outage_and_latency(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    await sandbox.control("POST", "/faults", {"outage": True})
    with pytest.raises(CyberTiplineTransportError):
        await client.status()
    assert (await sandbox.control("GET", "/faults"))["outage"] is True  # control plane stays reachable
    await sandbox.control("POST", "/faults", {"outage": False, "latency_ms": 300})
    async with sandbox.client(timeout=0.05) as impatient:
        with pytest.raises(CyberTiplineTransportError):
            await impatient.status()
    await sandbox.control("POST", "/faults", {"latency_ms": 0})
    assert (await client.status()).response_code == 0


async def test_answer_delay_commits_before_the_answer_leaves(
    sandbox: RunningSandbox, client: CyberTiplineClient
) -> None:
    await sandbox.control("POST", "/faults", {"answer_delay_ms": 400})
    async with sandbox.client(timeout=0.1) as impatient:
        with pytest.raises(CyberTiplineTransportError):
            await impatient.submit(report_xml())
    await sandbox.control("POST", "/faults", {"answer_delay_ms": 0})
    reports = await sandbox.control("GET", "/reports")
    assert [r["status"] for r in reports] == ["open"]  # committed although the client never heard back


async def test_seeded_faults_are_reproducible(sandbox_config: SandboxConfig) -> None:
    # A sandbox of its own: one stray request from elsewhere in the session (a timed-out call still being served)
    # would take a draw from the seeded generator and shift every outcome after it.
    async with running_sandbox(sandbox_config) as sandbox, sandbox.client() as client:
        async def outcomes() -> list[bool]:
            await sandbox.control("POST", "/faults", {"error_rate": 0.5, "seed": 1234})
            results = []
            for _ in range(12):
                try:
                    await client.status()
                    results.append(True)
                except CyberTiplineTransportError:
                    results.append(False)
            return results

        first = await outcomes()
        assert first == await outcomes()
        assert True in first and False in first


async def test_invalid_fault_settings_are_rejected(sandbox: RunningSandbox) -> None:
    async with sandbox.http() as http:
        assert (await http.post("/_sandbox/faults", json={"error_rate": 1.5})).status_code == 422
        assert (await http.post("/_sandbox/faults", json={"bogus": 1})).status_code == 422


async def test_reset_clears_reports_faults_and_clock(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    await _submit(client)
    await sandbox.control("POST", "/clock", {"advance_seconds": 3600})
    await sandbox.control("POST", "/faults", {"latency_ms": 5})
    await sandbox.control("POST", "/reset")
    assert await sandbox.control("GET", "/reports") == []
    assert (await sandbox.control("GET", "/faults"))["latency_ms"] == 0
    now = datetime.fromisoformat((await sandbox.control("GET", "/clock"))["now"])
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)


# -- inspection and persistence --------------------------------------------------------------------------


async def test_reports_listing_shape(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    report_id = await _submit(client)
    await client.upload(report_id, "a.jpg", b"synthetic-image-1")
    await client.finish(report_id)
    [listed] = await sandbox.control("GET", "/reports")
    assert set(listed) >= {
        "report_id",
        "status",
        "opened_at",
        "last_modified_at",
        "expires_at",
        "finished_at",
        "retracted_at",
        "report_xml",
        "files",
    }
    assert listed["status"] == "finished" and listed["finished_at"] and listed["expires_at"] is None
    async with sandbox.http() as http:
        assert (await http.get("/_sandbox/reports/1")).status_code == 404


async def test_state_file_survives_a_new_app_instance(sandbox_config: SandboxConfig, tmp_path: Path) -> None:
    sandbox_config.state_file = tmp_path / "sandbox-state.json"
    async with running_sandbox(sandbox_config) as first, first.client() as client:
        finished = await _submit(client)
        upload = await client.upload(finished, "a.jpg", b"synthetic-image-1")
        await client.finish(finished)
        still_open = await _submit(client)
    assert sandbox_config.state_file.exists()
    assert not list(tmp_path.glob(".sandbox-state.json.*"))  # noqa: ASYNC240 - no temp files left behind

    async with running_sandbox(sandbox_config) as second, second.client() as client:
        restored = second.state.reports
        assert restored[finished].status == "finished"
        assert list(restored[finished].files) == [upload.file_id]
        assert restored[still_open].status == "open"
        await _expect_code(5102, client.finish(finished))
        assert (await client.finish(still_open)).file_ids == []
        assert (await client.submit(report_xml())).report_id == still_open + 1


async def test_moved_clock_survives_a_restart(sandbox_config: SandboxConfig, tmp_path: Path) -> None:
    sandbox_config.state_file = tmp_path / "sandbox-state.json"
    async with running_sandbox(sandbox_config) as first, first.client() as client:
        report_id = await _submit(client)
        await first.control("POST", "/clock", {"advance_seconds": 25 * 3600})
    async with running_sandbox(sandbox_config) as second, second.client() as client:
        assert second.state.clock.now() - datetime.now(UTC) > timedelta(hours=24)
        await _expect_code(5001, client.finish(report_id))


# -- serve_app -------------------------------------------------------------------------------------------


async def test_serve_app_binds_an_ephemeral_port_and_shuts_down(sandbox_config: SandboxConfig) -> None:
    from cybertipline.sandbox import create_sandbox_app

    async with serve_app(create_sandbox_app(sandbox_config)) as base_url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        async with httpx.AsyncClient(auth=(USERNAME, PASSWORD)) as http:
            assert (await http.get(f"{base_url}/ispws/status")).status_code == 200
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{base_url}/ispws/status")
