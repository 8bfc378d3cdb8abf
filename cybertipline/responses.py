"""NCMEC's response documents: code table, parsing, and rendering (the sandbox renders, the client parses).

Codes follow the current scheme (API docs App. D, non-exhaustive). The 2014 scheme reused 1000-1022 with other
meanings; the client treats anything it does not know in 1000-1999 as a server-side failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from tipline.safe_xml import UnsafeXml, XmlRefused, parse_xml

SUCCESS = 0
SERVER_ERROR = 1000
SAVE_FAILED = 1100
UPLOAD_FAILED = 1110
FILE_UPLOAD_FAILED = 1111
RESOURCE_NOT_FOUND = 1210
UPDATE_FAILED = 1300
AUTHENTICATION_REQUIRED = 2000
NOT_AUTHORIZED = 3000
NOT_AUTHORIZED_SUBMIT = 3100
NOT_AUTHORIZED_UPDATE = 3300
INVALID_REQUEST = 4000
VALIDATION_FAILED = 4100
MALFORMED_XML = 4110
MALFORMED_FILE = 4200
REPORT_DOES_NOT_EXIST = 5001
FILE_DOES_NOT_EXIST = 5002
REPORT_ALREADY_RETRACTED = 5101
REPORT_ALREADY_FINISHED = 5102

RESPONSE_CODES: dict[int, str] = {
    SUCCESS: "Success",
    SERVER_ERROR: "Server error",
    SAVE_FAILED: "Save failed",
    UPLOAD_FAILED: "Upload failed",
    FILE_UPLOAD_FAILED: "File upload failed",
    RESOURCE_NOT_FOUND: "Resource not found",
    UPDATE_FAILED: "Update failed",
    AUTHENTICATION_REQUIRED: "Authentication required",
    NOT_AUTHORIZED: "User is not authorized to perform this action",
    NOT_AUTHORIZED_SUBMIT: "User does not have authorization to make submissions",
    NOT_AUTHORIZED_UPDATE: "User does not have authorization to make updates",
    INVALID_REQUEST: "Invalid request",
    VALIDATION_FAILED: "Validation failed",
    MALFORMED_XML: "Malformed XML submittal",
    MALFORMED_FILE: "Malformed file submittal",
    REPORT_DOES_NOT_EXIST: "Report does not exist",
    FILE_DOES_NOT_EXIST: "File does not exist",
    REPORT_ALREADY_RETRACTED: "Report already retracted",
    REPORT_ALREADY_FINISHED: "Report already finished",
}

# 1210 "Resource not found" sits in the 1xxx band but will not fix itself on retry.
_PERMANENT_1XXX = frozenset({RESOURCE_NOT_FOUND})


def is_transient(code: int) -> bool:
    """Whether retrying the same call later can succeed: NCMEC-side failures yes, our own mistakes no."""
    return 1000 <= code < 2000 and code not in _PERMANENT_1XXX


def describe(code: int) -> str:
    return RESPONSE_CODES.get(code, f"Unknown response code {code}")


@dataclass(frozen=True)
class ReportResponse:
    response_code: int
    description: str | None
    report_id: int | None
    file_id: str | None
    hash: str | None
    request_id: str | None
    http_status: int
    raw_xml: str


@dataclass(frozen=True)
class FinishResponse:
    response_code: int
    report_id: int
    file_ids: list[str]
    request_id: str | None
    http_status: int
    raw_xml: str


class UnparseableResponse(ValueError):
    """The body is not a ``reportResponse``/``reportDoneResponse`` we can read."""


def parse_document(body: bytes) -> etree._Element:
    """The root of an answer, parsed safely: an answer with a DOCTYPE is not one NCMEC sends, so it is refused."""
    if not body.strip():
        raise UnparseableResponse("empty body")
    try:
        return parse_xml(body)
    except UnsafeXml as exc:
        raise UnparseableResponse(f"refused: {exc}") from exc
    except XmlRefused as exc:
        raise UnparseableResponse(f"not XML: {exc}") from exc


def _text(root: etree._Element, tag: str) -> str | None:
    child = root.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _int(root: etree._Element, tag: str) -> int | None:
    value = _text(root, tag)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise UnparseableResponse(f"<{tag}> is not an integer: {value!r}") from exc


def _required_code(root: etree._Element) -> int:
    code = _int(root, "responseCode")
    if code is None:
        raise UnparseableResponse(f"<{root.tag}> without <responseCode>")
    return code


def _decode(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def report_response_from_root(
    root: etree._Element, body: bytes, *, http_status: int, request_id: str | None
) -> ReportResponse:
    if root.tag != "reportResponse":
        raise UnparseableResponse(f"expected <reportResponse>, got <{root.tag}>")
    description = _text(root, "responseDescription")
    return ReportResponse(
        response_code=_required_code(root),
        description=description or None,
        report_id=_int(root, "reportId"),
        file_id=_text(root, "fileId") or None,
        hash=_text(root, "hash") or None,
        request_id=request_id,
        http_status=http_status,
        raw_xml=_decode(body),
    )


def finish_response_from_root(
    root: etree._Element, body: bytes, *, http_status: int, request_id: str | None
) -> FinishResponse:
    if root.tag != "reportDoneResponse":
        raise UnparseableResponse(f"expected <reportDoneResponse>, got <{root.tag}>")
    report_id = _int(root, "reportId")
    if report_id is None:
        raise UnparseableResponse("<reportDoneResponse> without <reportId>")
    files = root.find("files")
    file_ids = [] if files is None else [(f.text or "").strip() for f in files.findall("fileId")]
    return FinishResponse(
        response_code=_required_code(root),
        report_id=report_id,
        file_ids=[f for f in file_ids if f],
        request_id=request_id,
        http_status=http_status,
        raw_xml=_decode(body),
    )


def parse_report_response(body: bytes, *, http_status: int, request_id: str | None = None) -> ReportResponse:
    return report_response_from_root(
        parse_document(body), body, http_status=http_status, request_id=request_id
    )


def parse_finish_response(body: bytes, *, http_status: int, request_id: str | None = None) -> FinishResponse:
    return finish_response_from_root(
        parse_document(body), body, http_status=http_status, request_id=request_id
    )


_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


def render_report_response(
    code: int,
    description: str | None = None,
    *,
    report_id: int | None = None,
    file_id: str | None = None,
    hash: str | None = None,
) -> bytes:
    """A ``reportResponse`` in the element order NCMEC's XSD requires."""
    parts = [
        _DECLARATION,
        "<reportResponse>",
        f"<responseCode>{code}</responseCode>",
        f"<responseDescription>{escape(description if description is not None else describe(code))}"
        "</responseDescription>",
    ]
    if report_id is not None:
        parts.append(f"<reportId>{report_id}</reportId>")
    if file_id is not None:
        parts.append(f"<fileId>{escape(file_id)}</fileId>")
    if hash is not None:
        parts.append(f"<hash>{escape(hash)}</hash>")
    parts.append("</reportResponse>")
    return "".join(parts).encode("utf-8")


def render_finish_response(report_id: int, file_ids: list[str]) -> bytes:
    files = "".join(f"<fileId>{escape(f)}</fileId>" for f in file_ids)
    return (
        f"{_DECLARATION}<reportDoneResponse><responseCode>0</responseCode>"
        f"<reportId>{report_id}</reportId><files>{files}</files></reportDoneResponse>"
    ).encode()


def render_finish_error(code: int, report_id: int | None) -> bytes:
    """A ``/finish`` refusal as NCMEC's clients decode it: ``reportDoneResponse`` with the non-zero code.

    The schema gives that element no description and requires ``reportId`` and ``files``; an id the request
    did not carry (or not as a number) is answered as 0.
    """
    return (
        f"{_DECLARATION}<reportDoneResponse><responseCode>{code}</responseCode>"
        f"<reportId>{report_id if report_id is not None else 0}</reportId><files/></reportDoneResponse>"
    ).encode()
