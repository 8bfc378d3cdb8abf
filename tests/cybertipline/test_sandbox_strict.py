"""The sandbox as strict as NCMEC: hostile XML, crashes and injected NCMEC errors all answer in NCMEC's shapes,
always with a Request-ID, and the client classifies every code it can get."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from lxml import etree
from PIL import Image

from cybertipline.client import CyberTiplineClient, CyberTiplineError, sniff_media_type
from cybertipline.sandbox import SandboxConfig
from cybertipline.xsd import load_schema
from tests.cybertipline.conftest import RunningSandbox, file_details_xml, report_xml, running_sandbox
from tests.hostile_xml import (
    SECRET_MARKER,
    billion_laughs,
    external_dtd,
    external_entity,
    internal_entity,
    write_secret,
)

XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
REPORT_BODY = report_xml().decode().removeprefix("<report>").removesuffix("</report>")


def _root(response: httpx.Response) -> etree._Element:
    return etree.fromstring(response.content)


def _hostile_reports(tmp_path: Path) -> list[bytes]:
    secret = write_secret(tmp_path)
    return [
        billion_laughs("report", REPORT_BODY),
        external_entity("report", secret, REPORT_BODY),
        internal_entity("report", REPORT_BODY),
        external_dtd("report", tmp_path / "evil.dtd", REPORT_BODY),
    ]


@pytest.mark.parametrize("error_status", [200, 400])
async def test_doctype_in_a_report_is_4110_with_request_id_and_stores_nothing(
    sandbox_config: SandboxConfig, tmp_path: Path, error_status: int
) -> None:
    # Schema validation is on (the XSD is configured): the validator must never see an entity.
    sandbox_config.error_http_status = error_status
    async with running_sandbox(sandbox_config) as sandbox, sandbox.http() as http:
        for document in _hostile_reports(tmp_path):
            response = await http.post("/ispws/submit", content=document, headers=XML_HEADERS)
            assert response.status_code == error_status
            assert response.headers["Request-ID"]
            root = _root(response)
            assert root.tag == "reportResponse" and root.findtext("responseCode") == "4110"
            assert "DOCTYPE" in (root.findtext("responseDescription") or "")
            assert SECRET_MARKER not in response.text
        assert await sandbox.control("GET", "/reports") == []


async def test_doctype_in_file_details_is_4110(sandbox: RunningSandbox, client: CyberTiplineClient,
                                               tmp_path: Path) -> None:
    report_id = (await client.submit(report_xml())).report_id
    assert report_id is not None
    uploaded = await client.upload(report_id, "a.png", b"synthetic-image-1")
    inner = f"<reportId>{report_id}</reportId><fileId>{uploaded.file_id}</fileId>"
    hostile = [external_entity("fileDetails", write_secret(tmp_path), inner), billion_laughs("fileDetails", inner)]
    for document in hostile:
        with pytest.raises(CyberTiplineError) as info:
            await client.fileinfo(document)
        assert info.value.code == 4110 and info.value.request_id
        assert SECRET_MARKER not in (info.value.raw_xml or "")
    files = (await sandbox.control("GET", f"/reports/{report_id}"))["files"]
    assert files[0]["file_details_xml"] is None


async def test_a_crash_answers_1000_in_ncmec_shape_with_request_id(
    sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sandbox.state.store, "open_report", broken)
    monkeypatch.setattr(sandbox.state.store, "finish", broken)
    async with sandbox.http() as http:
        submitted = await http.post("/ispws/submit", content=report_xml(), headers=XML_HEADERS)
        finished = await http.post("/ispws/finish", data={"id": "7"})
    for response, tag in ((submitted, "reportResponse"), (finished, "reportDoneResponse")):
        assert response.status_code == 500 and response.headers["Request-ID"]
        assert _root(response).tag == tag and _root(response).findtext("responseCode") == "1000"
        assert "disk on fire" not in response.text
    async with sandbox.client() as client:
        # The client reads a 1000 as NCMEC-side trouble: retry later.
        with pytest.raises(CyberTiplineError) as info:
            await client.finish(7)
        assert info.value.code == 1000 and info.value.transient


# -- /finish answers errors as reportDoneResponse --------------------------------------------------------


async def test_finish_errors_are_report_done_responses_that_validate(
    sandbox: RunningSandbox, client: CyberTiplineClient, xsd_path: Path
) -> None:
    schema = load_schema(xsd_path)
    finished = (await client.submit(report_xml())).report_id
    retracted = (await client.submit(report_xml())).report_id
    assert finished is not None and retracted is not None
    await client.finish(finished)
    await client.retract(retracted)
    async with sandbox.http() as http:
        cases = [
            ({"id": str(finished)}, "5102", str(finished)),
            ({"id": str(retracted)}, "5101", str(retracted)),
            ({"id": "1"}, "5001", "1"),
            ({"id": "12x"}, "4000", "0"),
            ({}, "4000", "0"),
        ]
        for form, code, report_id in cases:
            response = await http.post("/ispws/finish", data=form)
            root = _root(response)
            assert root.tag == "reportDoneResponse", response.text
            assert root.findtext("responseCode") == code and root.findtext("reportId") == report_id
            assert root.find("files") is not None and len(root.find("files")) == 0
            assert schema.validate(root), schema.error_log
            assert response.headers["Request-ID"]
    # What the public clients do with it: a non-zero code is an error with that code.
    with pytest.raises(CyberTiplineError) as info:
        await client.finish(finished)
    assert info.value.code == 5102 and not info.value.transient


# -- fault injection with NCMEC's own codes --------------------------------------------------------------

# code -> whether a retry of the same call can succeed
NCMEC_FAULTS = {1000: True, 1100: True, 1110: True, 1111: True, 1210: False, 1300: True,
                2000: False, 3000: False, 3100: False, 3300: False}


@pytest.mark.parametrize(("code", "transient"), NCMEC_FAULTS.items())
async def test_injected_ncmec_errors_are_classified_by_the_client(
    sandbox: RunningSandbox, client: CyberTiplineClient, code: int, transient: bool
) -> None:
    report_id = (await client.submit(report_xml())).report_id
    assert report_id is not None
    await sandbox.control("POST", "/faults", {"error_rate": 1.0, "error_codes": [code]})
    calls = {
        "submit": lambda: client.submit(report_xml()),
        "upload": lambda: client.upload(report_id, "a.png", b"synthetic-image-1"),
        "fileinfo": lambda: client.fileinfo(file_details_xml(report_id, "a" * 32)),
        "finish": lambda: client.finish(report_id),
        "retract": lambda: client.retract(report_id),
    }
    for name, call in calls.items():
        with pytest.raises(CyberTiplineError) as info:
            await call()
        error = info.value
        assert (error.code, error.transient) == (code, transient), name
        assert error.request_id, name
        assert error.http_status == (401 if code == 2000 else 200), name
    await sandbox.control("POST", "/faults", {"error_rate": 0.0})
    # An injected error commits nothing: the report is still open and empty, and no second report exists.
    reports = await sandbox.control("GET", "/reports")
    assert [(r["report_id"], r["status"], r["files"]) for r in reports] == [(report_id, "open", [])]


async def test_an_injected_error_on_a_large_upload_is_read_as_the_error_not_a_reset(
    sandbox: RunningSandbox, client: CyberTiplineClient
) -> None:
    report_id = (await client.submit(report_xml())).report_id
    assert report_id is not None
    await sandbox.control("POST", "/faults", {"error_rate": 1.0, "error_codes": [1111]})
    with pytest.raises(CyberTiplineError) as info:
        await client.upload(report_id, "big.bin", io.BytesIO(b"\0" * (3 << 20)))
    assert info.value.code == 1111 and info.value.transient


async def test_injected_errors_take_the_configured_status_and_the_finish_shape(sandbox_config: SandboxConfig) -> None:
    sandbox_config.error_http_status = 503
    async with running_sandbox(sandbox_config) as sandbox, sandbox.http() as http:
        await sandbox.control("POST", "/faults", {"error_rate": 1.0, "error_codes": [1100]})
        submitted = await http.post("/ispws/submit", content=report_xml(), headers=XML_HEADERS)
        finished = await http.post("/ispws/finish", data={"id": "5"})
        auth = await http.get("/ispws/status")
    assert submitted.status_code == finished.status_code == 503
    assert (_root(submitted).tag, _root(submitted).findtext("responseCode")) == ("reportResponse", "1100")
    assert (_root(finished).tag, _root(finished).findtext("responseCode")) == ("reportDoneResponse", "1100")
    assert auth.headers["Request-ID"]


async def test_injected_codes_are_drawn_from_the_list_and_unknown_codes_refused(sandbox: RunningSandbox,
                                                                                 client: CyberTiplineClient) -> None:
    await sandbox.control("POST", "/faults", {"error_rate": 1.0, "error_codes": [1000, 3000], "seed": 3})
    seen = set()
    for _ in range(16):
        with pytest.raises(CyberTiplineError) as info:
            await client.status()
        seen.add(info.value.code)
    assert seen == {1000, 3000}
    async with sandbox.http() as http:
        for bad in ([0], [4242], ["x"]):
            response = await http.post("/_sandbox/faults", json={"error_codes": bad})
            assert response.status_code == 422, bad
            assert "error_codes" in response.text


async def test_error_count_fails_exactly_the_next_calls(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    settings = await sandbox.control("POST", "/faults", {"error_rate": 1.0, "error_codes": [1300], "error_count": 2})
    assert settings["error_count"] == 2
    for _ in range(2):
        with pytest.raises(CyberTiplineError):
            await client.status()
    assert (await client.status()).response_code == 0
    assert (await sandbox.control("GET", "/faults"))["error_count"] == 0
    async with sandbox.http() as http:
        assert (await http.post("/_sandbox/faults", json={"error_count": -1})).status_code == 422


# -- uploads carry their real MIME type ------------------------------------------------------------------


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_media_type_is_sniffed_from_the_bytes_then_the_name() -> None:
    png = _png()
    assert sniff_media_type(png, "upload.bin") == "image/png"
    assert sniff_media_type(png, "misnamed.jpg") == "image/png"  # the bytes win over the name
    assert sniff_media_type(b"a,b\n1,2\n", "conversation-1.csv") == "text/csv"
    assert sniff_media_type(b"\x00\x01 nothing known", "no-extension") == "application/octet-stream"
    stream = io.BytesIO(b"prefix" + png)
    stream.seek(6)
    assert sniff_media_type(stream, "x") == "image/png" and stream.tell() == 6  # nothing consumed


async def test_uploads_are_sent_with_their_real_type(sandbox: RunningSandbox, client: CyberTiplineClient) -> None:
    report_id = (await client.submit(report_xml())).report_id
    assert report_id is not None
    png = _png()
    await client.upload(report_id, "photo.bin", io.BytesIO(png))
    await client.upload(report_id, "conversation-9.csv", b"sent_at,text\n")
    await client.upload(report_id, "clip", b"\x00unknown", content_type="video/mp4")
    files = (await sandbox.control("GET", f"/reports/{report_id}"))["files"]
    assert [(f["filename"], f["content_type"], f["size"]) for f in files] == [
        ("photo.bin", "image/png", len(png)),
        ("conversation-9.csv", "text/csv", 13),
        ("clip", "video/mp4", 8),
    ]
