"""Async client for NCMEC's CyberTipline Reporting API (``/ispws``).

One method per endpoint, no retries: the caller (a Temporal activity) decides what to retry using
``CyberTiplineError.transient`` and the fact that ``CyberTiplineTransportError`` means "outcome unknown".
"""

from __future__ import annotations

import logging
import mimetypes
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Any, BinaryIO, Self

import filetype
import httpx
from lxml import etree

from cybertipline.responses import (
    AUTHENTICATION_REQUIRED,
    SUCCESS,
    FinishResponse,
    ReportResponse,
    UnparseableResponse,
    describe,
    finish_response_from_root,
    is_transient,
    parse_document,
    report_response_from_root,
)
from tipline.metrics import count_ncmec_answer

__all__ = [
    "CyberTiplineClient",
    "CyberTiplineError",
    "CyberTiplineTransportError",
    "FinishResponse",
    "ReportResponse",
]

logger = logging.getLogger(__name__)

_XML_CONTENT_TYPE = "text/xml; charset=utf-8"
_REQUEST_ID_HEADER = "Request-ID"


class CyberTiplineError(Exception):
    """NCMEC answered, and the answer is a non-zero ``responseCode`` (or HTTP 401)."""

    def __init__(
        self,
        code: int,
        description: str | None,
        *,
        request_id: str | None,
        http_status: int,
        raw_xml: str | None = None,
    ) -> None:
        self.code = code
        self.description = description
        self.request_id = request_id
        self.http_status = http_status
        self.transient = is_transient(code)
        self.raw_xml = raw_xml
        super().__init__(
            f"CyberTipline responseCode {code} ({description or describe(code)}), "
            f"HTTP {http_status}, Request-ID {request_id}"
        )


class CyberTiplineTransportError(Exception):
    """No usable answer (network error, timeout, dropped or unparseable response): outcome unknown."""

    transient = True

    def __init__(self, message: str, *, http_status: int | None = None, request_id: str | None = None) -> None:
        self.http_status = http_status
        self.request_id = request_id
        super().__init__(message)


class CyberTiplineClient:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # Credentials live only inside httpx's auth object; nothing here formats them into a message.
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            auth=httpx.BasicAuth(username, password),
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"CyberTiplineClient(base_url={self._base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- endpoints ---------------------------------------------------------------------------------------

    async def status(self) -> ReportResponse:
        return self._report_response(await self._send("GET", "/status"))

    async def xsd(self) -> str:
        response = await self._send("GET", "/xsd")
        try:
            root = parse_document(response.content)
        except UnparseableResponse as exc:
            raise self._unparseable(response, exc) from exc
        if root.tag == "reportResponse" or response.status_code != 200:
            # An error document (NCMEC answers errors with HTTP 200 too), a 401, or junk.
            self._checked(self._parse_report(response, root, response.content), response)
            raise CyberTiplineTransportError(
                f"/xsd answered HTTP {response.status_code} without a schema",
                http_status=response.status_code,
                request_id=_request_id(response),
            )
        count_ncmec_answer(response.request.url.path, SUCCESS)
        return response.text

    async def submit(self, report_xml: bytes) -> ReportResponse:
        result = self._report_response(await self._send_xml("/submit", report_xml))
        _require(result, "report_id", result.report_id)
        return result

    async def upload(
        self, report_id: int, filename: str, content: bytes | BinaryIO, content_type: str | None = None
    ) -> ReportResponse:
        """Upload one file; without ``content_type`` its type is sniffed from its first bytes (or its name)."""
        media_type = content_type or sniff_media_type(content, filename)
        # httpx streams a file object chunk by chunk, so large evidence files are never held in memory.
        response = await self._send(
            "POST",
            "/upload",
            data={"id": str(report_id)},
            files={"file": (filename, content, media_type)},
        )
        result = self._report_response(response)
        _require(result, "file_id", result.file_id)
        return result

    async def upload_stream(self, report_id: int, filename: str, chunks: AsyncIterable[bytes], size: int,
                            content_type: str) -> ReportResponse:
        """Upload one file of ``size`` bytes given as an async stream of chunks.

        For callers whose reads must not run on the event loop (the evidence store decrypts as it reads): the
        multipart body is framed here around their chunks, with its exact Content-Length, as httpx frames a
        file object (which it reads on the event loop)."""
        boundary = secrets.token_hex(16)
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="id"\r\n\r\n{report_id}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{_form_quoted(filename)}"'
                f'\r\nContent-Type: {content_type}\r\n\r\n').encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def body() -> AsyncIterator[bytes]:
            yield head
            sent = 0
            async for chunk in chunks:
                sent += len(chunk)
                yield chunk
            if sent != size:  # a short or long body would be framed wrongly: never send it as this file
                raise ValueError(f"the file stream gave {sent} bytes, not the {size} announced")
            yield tail

        response = await self._send(
            "POST", "/upload", content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                     "Content-Length": str(len(head) + size + len(tail))},
        )
        result = self._report_response(response)
        _require(result, "file_id", result.file_id)
        return result

    async def fileinfo(self, file_details_xml: bytes) -> ReportResponse:
        return self._report_response(await self._send_xml("/fileinfo", file_details_xml))

    async def finish(self, report_id: int) -> FinishResponse:
        response = await self._send("POST", "/finish", data={"id": str(report_id)})
        root, body = self._document(response)
        if root.tag == "reportResponse":
            # NCMEC's clients decode /finish refusals as reportDoneResponse; accept the other shape too.
            result = self._checked(self._parse_report(response, root, body), response)
            raise CyberTiplineTransportError(
                f"/finish answered code {result.response_code} without a reportDoneResponse",
                http_status=response.status_code,
                request_id=_request_id(response),
            )
        try:
            done = finish_response_from_root(
                root, body, http_status=response.status_code, request_id=_request_id(response)
            )
        except UnparseableResponse as exc:
            raise self._unparseable(response, exc) from exc
        code = AUTHENTICATION_REQUIRED if done.http_status == 401 else done.response_code
        count_ncmec_answer(response.request.url.path, code)
        if code != SUCCESS:
            raise CyberTiplineError(
                code,
                describe(code),
                request_id=done.request_id,
                http_status=done.http_status,
                raw_xml=done.raw_xml,
            )
        return done

    async def retract(self, report_id: int) -> ReportResponse:
        return self._report_response(await self._send("POST", "/retract", data={"id": str(report_id)}))

    # -- plumbing ----------------------------------------------------------------------------------------

    async def _send_xml(self, path: str, document: bytes) -> httpx.Response:
        return await self._send("POST", path, content=document, headers={"Content-Type": _XML_CONTENT_TYPE})

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.RequestError as exc:
            # The request may or may not have reached NCMEC: the caller must treat the outcome as unknown.
            logger.warning("cybertipline %s %s: transport error %s", method, path, type(exc).__name__)
            count_ncmec_answer(path, None)
            raise CyberTiplineTransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        logger.info(
            "cybertipline %s %s -> HTTP %s, Request-ID %s",
            method,
            path,
            response.status_code,
            _request_id(response),
        )
        return response

    def _document(self, response: httpx.Response) -> tuple[etree._Element, bytes]:
        body = response.content
        try:
            return parse_document(body), body
        except UnparseableResponse as exc:
            raise self._unparseable(response, exc) from exc

    def _report_response(self, response: httpx.Response) -> ReportResponse:
        root, body = self._document(response)
        return self._checked(self._parse_report(response, root, body), response)

    def _parse_report(self, response: httpx.Response, root: etree._Element, body: bytes) -> ReportResponse:
        try:
            return report_response_from_root(
                root, body, http_status=response.status_code, request_id=_request_id(response)
            )
        except UnparseableResponse as exc:
            raise self._unparseable(response, exc) from exc

    def _checked(self, result: ReportResponse, response: httpx.Response) -> ReportResponse:
        # Whatever the body says (2016 sent code 1000 "Authentication Required"), a 401 means bad
        # credentials: report 2000, which is never transient.
        code = AUTHENTICATION_REQUIRED if result.http_status == 401 else result.response_code
        count_ncmec_answer(response.request.url.path, code)
        if code != SUCCESS:
            raise CyberTiplineError(
                code,
                result.description,
                request_id=result.request_id,
                http_status=result.http_status,
                raw_xml=result.raw_xml,
            )
        return result

    def _unparseable(self, response: httpx.Response, exc: UnparseableResponse) -> Exception:
        count_ncmec_answer(response.request.url.path,
                           AUTHENTICATION_REQUIRED if response.status_code == 401 else None)
        if response.status_code == 401:
            # Current NCMEC answers bad credentials with an empty 401.
            return CyberTiplineError(
                AUTHENTICATION_REQUIRED,
                describe(AUTHENTICATION_REQUIRED),
                request_id=_request_id(response),
                http_status=401,
            )
        return CyberTiplineTransportError(
            f"{response.request.method} {response.request.url.path}: HTTP {response.status_code}, "
            f"no parseable answer ({exc})",
            http_status=response.status_code,
            request_id=_request_id(response),
        )


OCTET_STREAM = "application/octet-stream"
# filetype reads at most this many bytes to recognise a format.
_SNIFF_BYTES = 261


def _form_quoted(value: str) -> str:
    # As httpx (and browsers, per the HTML spec) escape a multipart parameter value.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def sniff_media_type(content: bytes | BinaryIO, filename: str = "") -> str:
    """The MIME type of ``content`` from its magic bytes, else from the file name, else octet-stream.

    A file object is read from its current position and put back there, so nothing is consumed.
    """
    if isinstance(content, bytes | bytearray):
        head = bytes(content[:_SNIFF_BYTES])
    elif content.seekable():
        position = content.tell()
        head = content.read(_SNIFF_BYTES)
        content.seek(position)
    else:
        head = b""
    sniffed = filetype.guess_mime(head) if head else None
    if sniffed:
        return str(sniffed)
    # Text formats (the conversation CSV) have no magic; their name is all there is.
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or OCTET_STREAM


def _request_id(response: httpx.Response) -> str | None:
    return response.headers.get(_REQUEST_ID_HEADER)


def _require(result: ReportResponse, field: str, value: object) -> None:
    if value is None:
        # Code 0 without the id we need is not an answer we can act on; the outcome is unknown.
        raise CyberTiplineTransportError(
            f"success response without {field}", http_status=result.http_status, request_id=result.request_id
        )
