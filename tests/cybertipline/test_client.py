"""CyberTiplineClient: error classification against canned answers, and the happy path against the sandbox."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybertipline.client import (
    CyberTiplineClient,
    CyberTiplineError,
    CyberTiplineTransportError,
    FinishResponse,
    ReportResponse,
)
from cybertipline.responses import (
    describe,
    is_transient,
    parse_finish_response,
    parse_report_response,
    render_finish_error,
    render_finish_response,
    render_report_response,
)
from tests.cybertipline.conftest import PASSWORD, USERNAME, RunningSandbox, file_details_xml, report_xml

BASE = "https://exttest.example.org/ispws"
SECRET = "s3cret-Pa55word"


def canned(
    status: int, body: bytes = b"", *, seen: list[httpx.Request] | None = None, headers: dict[str, str] | None = None
) -> CyberTiplineClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=body, headers={"Request-ID": "req-1", **(headers or {})})

    return CyberTiplineClient(BASE, USERNAME, SECRET, transport=httpx.MockTransport(handler))


def failing(exc_factory: Callable[[httpx.Request], Exception]) -> CyberTiplineClient:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_factory(request)

    return CyberTiplineClient(BASE, USERNAME, SECRET, transport=httpx.MockTransport(handler))


# -- classification --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        (1000, True),
        (1100, True),
        (1110, True),
        (1111, True),
        (1300, True),
        (1999, True),
        (2000, False),
        (3000, False),
        (3100, False),
        (4000, False),
        (4100, False),
        (4110, False),
        (4200, False),
        (5001, False),
        (5002, False),
        (5101, False),
        (5102, False),
    ],
)
def test_transient_classification(code: int, transient: bool) -> None:
    assert is_transient(code) is transient


async def test_401_with_empty_body_is_code_2000() -> None:
    async with canned(401, headers={"WWW-Authenticate": 'Basic realm="ESP Web Services"'}) as client:
        with pytest.raises(CyberTiplineError) as info:
            await client.status()
    assert (info.value.code, info.value.http_status, info.value.transient) == (2000, 401, False)
    assert info.value.request_id == "req-1"


async def test_401_with_2016_xml_body_is_still_2000_and_permanent() -> None:
    body = render_report_response(1000, "Authentication Required")
    async with canned(401, body) as client:
        with pytest.raises(CyberTiplineError) as info:
            await client.submit(report_xml())
    assert info.value.code == 2000 and not info.value.transient
    assert info.value.description == "Authentication Required"


async def test_error_code_read_from_body_whatever_the_http_status() -> None:
    for status in (200, 400, 422):
        async with canned(status, render_report_response(4100, "Validation failed - boom")) as client:
            with pytest.raises(CyberTiplineError) as info:
                await client.submit(report_xml())
        assert (info.value.code, info.value.http_status) == (4100, status)
        assert info.value.description == "Validation failed - boom"


async def test_server_error_code_in_a_500_is_a_transient_cybertipline_error() -> None:
    async with canned(500, render_report_response(1100)) as client:
        with pytest.raises(CyberTiplineError) as info:
            await client.submit(report_xml())
    assert info.value.code == 1100 and info.value.transient


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, b""),
        (503, b"<html><body>Service Unavailable</body></html>"),
        (504, b"upstream timed out"),
        (200, b""),
        (200, b"<reportResponse><responseCode>0</responseCode>"),  # truncated
        (200, b"<somethingElse/>"),
        (404, b"<html>Not Found</html>"),
    ],
)
async def test_no_parseable_answer_is_a_transport_error(status: int, body: bytes) -> None:
    async with canned(status, body) as client:
        with pytest.raises(CyberTiplineTransportError) as info:
            await client.submit(report_xml())
    assert info.value.http_status == status and info.value.transient


@pytest.mark.parametrize(
    "exc_factory",
    [
        lambda request: httpx.ConnectError("refused", request=request),
        lambda request: httpx.ReadTimeout("slow", request=request),
        lambda request: httpx.RemoteProtocolError("peer closed connection", request=request),
    ],
)
async def test_network_failures_are_transport_errors(exc_factory: Callable[[httpx.Request], Exception]) -> None:
    async with failing(exc_factory) as client:
        with pytest.raises(CyberTiplineTransportError):
            await client.finish(1234567)


async def test_success_without_report_id_is_not_trusted() -> None:
    async with canned(200, render_report_response(0, "Success")) as client:
        with pytest.raises(CyberTiplineTransportError):
            await client.submit(report_xml())


async def test_finish_error_comes_back_as_report_response() -> None:
    async with canned(200, render_report_response(5102)) as client:
        with pytest.raises(CyberTiplineError) as info:
            await client.finish(1234567)
    assert info.value.code == 5102 and not info.value.transient


@pytest.mark.parametrize(("code", "transient"), [(5102, False), (5001, False), (1100, True), (3000, False)])
async def test_finish_error_as_report_done_response(code: int, transient: bool) -> None:
    # The shape NCMEC's own clients decode: reportDoneResponse with a non-zero code and <files/>.
    async with canned(200, render_finish_error(code, 1234567)) as client:
        with pytest.raises(CyberTiplineError) as info:
            await client.finish(1234567)
    assert (info.value.code, info.value.transient) == (code, transient)
    assert info.value.description == describe(code) and info.value.request_id == "req-1"


async def test_finish_parses_report_done_response() -> None:
    body = render_finish_response(4564654, ["b0754af766b426f2928a02c651ed4b99", "b6636ef679532f0dc1207b96ee15e943"])
    async with canned(200, body) as client:
        done = await client.finish(4564654)
    assert done == FinishResponse(
        response_code=0,
        report_id=4564654,
        file_ids=["b0754af766b426f2928a02c651ed4b99", "b6636ef679532f0dc1207b96ee15e943"],
        request_id="req-1",
        http_status=200,
        raw_xml=body.decode(),
    )


async def test_2016_style_empty_files_element() -> None:
    body = (
        b"<reportDoneResponse><responseCode>0</responseCode><reportId>7855778</reportId><files/></reportDoneResponse>"
    )
    async with canned(200, body) as client:
        assert (await client.finish(7855778)).file_ids == []


# Text XML 1.0 can carry: no control characters, no surrogates.
xml_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=200)


@settings(max_examples=50)
@given(
    code=st.integers(min_value=0, max_value=2**31 - 1),
    description=xml_text,
    report_id=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    file_id=st.none() | st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
)
def test_report_response_roundtrip(code: int, description: str, report_id: int | None, file_id: str | None) -> None:
    body = render_report_response(code, description, report_id=report_id, file_id=file_id, hash=file_id)
    parsed = parse_report_response(body, http_status=200, request_id="r")
    assert (parsed.response_code, parsed.report_id, parsed.file_id, parsed.hash) == (code, report_id, file_id, file_id)
    assert parsed.description == (description.strip() or None)


@settings(max_examples=50)
@given(
    report_id=st.integers(min_value=1, max_value=2**63 - 1),
    file_ids=st.lists(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
)
def test_finish_response_roundtrip(report_id: int, file_ids: list[str]) -> None:
    parsed = parse_finish_response(render_finish_response(report_id, file_ids), http_status=200)
    assert (parsed.report_id, parsed.file_ids) == (report_id, file_ids)


# -- what goes on the wire -------------------------------------------------------------------------------


async def test_requests_on_the_wire() -> None:
    seen: list[httpx.Request] = []
    ok = render_report_response(0, "Success", report_id=4564654, file_id="b0754af766b426f2928a02c651ed4b99", hash="x")
    async with canned(200, ok, seen=seen) as client:
        await client.submit(report_xml())
        await client.fileinfo(file_details_xml(4564654, "b0754af766b426f2928a02c651ed4b99"))
        await client.upload(4564654, "synthetic-1.jpg", io.BytesIO(b"synthetic-image-1"))
        await client.retract(4564654)
    submit, fileinfo, upload, retract = seen
    for request in (submit, fileinfo):
        assert request.method == "POST"
        assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert submit.url == httpx.URL(f"{BASE}/submit")
    assert fileinfo.url == httpx.URL(f"{BASE}/fileinfo")
    assert submit.headers["Authorization"].startswith("Basic ")
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    upload_body = upload.read()
    assert b'name="id"' in upload_body and b"4564654" in upload_body
    assert b'name="file"; filename="synthetic-1.jpg"' in upload_body and b"synthetic-image-1" in upload_body
    assert retract.url == httpx.URL(f"{BASE}/retract")
    assert retract.content == b"id=4564654"


async def test_credentials_never_logged_or_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with canned(200, render_report_response(4100, "Validation failed")) as client:
        assert SECRET not in repr(client)
        with pytest.raises(CyberTiplineError) as info:
            await client.submit(report_xml())
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text


# -- against the sandbox ---------------------------------------------------------------------------------


async def test_full_lifecycle_against_sandbox(client: CyberTiplineClient) -> None:
    status = await client.status()
    assert status.response_code == 0 and status.report_id is None
    assert "<xs:schema" in await client.xsd()

    submitted = await client.submit(report_xml())
    assert isinstance(submitted, ReportResponse) and submitted.request_id
    assert submitted.report_id is not None
    upload = await client.upload(submitted.report_id, "synthetic-1.jpg", b"synthetic-image-1")
    assert upload.file_id is not None
    details = await client.fileinfo(file_details_xml(submitted.report_id, upload.file_id))
    assert details.report_id == submitted.report_id
    done = await client.finish(submitted.report_id)
    assert done.report_id == submitted.report_id and done.file_ids == [upload.file_id]
    assert done.raw_xml.startswith("<?xml")


async def test_bad_password_against_sandbox(sandbox: RunningSandbox) -> None:
    async with sandbox.client(USERNAME, PASSWORD + "-wrong") as client:
        with pytest.raises(CyberTiplineError) as info:
            await client.status()
        assert (info.value.code, info.value.http_status) == (2000, 401)
        assert info.value.request_id
        with pytest.raises(CyberTiplineError) as info:
            await client.xsd()
        assert info.value.code == 2000


async def test_retract_lifecycle_against_sandbox(client: CyberTiplineClient) -> None:
    report_id = (await client.submit(report_xml())).report_id
    assert report_id is not None
    retracted = await client.retract(report_id)
    assert (retracted.response_code, retracted.report_id) == (0, report_id)
    with pytest.raises(CyberTiplineError) as info:
        await client.retract(report_id)
    assert info.value.code == 5101
