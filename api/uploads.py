"""Multipart uploads streamed straight into the encrypted evidence store.

Starlette's form parser spools every file over 1 MB to the system temp directory in the clear. Media here is
suspected CSAM: it must never touch a disk unencrypted. So the request stream goes through python-multipart's
streaming parser, and the file part's bytes go chunk by chunk into the evidence store's sealing writer (see
``EvidenceStore.incoming_file``). The other parts are small form fields, kept in memory within a byte budget.

Nothing is stored until the whole request has arrived and its fields are valid: a refused or truncated request
leaves only a scratch file under a key that died with it, and that file is deleted at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api.problems import BodyTooLarge, FieldProblem, ProblemError
from models.case import EvidenceRef
from tipline.evidence import EvidenceStore
from tipline.logging import get_logger

T = TypeVar("T")
log = get_logger(__name__)
# Boundaries and part headers on top of the file and the fields (python-multipart caps each part's headers).
MULTIPART_OVERHEAD_BYTES = 64 * 1024
_MAX_PART_HEADERS = 8
_MAX_PART_HEADER_BYTES = 4096
# Media is handed to the sealing writer (encryption and digests, in a worker thread) in pieces of this size.
_WRITE_BYTES = 1 << 20


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int
    max_fields_bytes: int
    file_setting: str = "TIPLINE_MAX_UPLOAD_BYTES"
    fields_setting: str = "TIPLINE_MAX_JSON_BODY_BYTES"


@dataclass
class ReceivedUpload:
    """What arrived besides the media bytes: the form fields and the file part's own headers."""

    fields: dict[str, str]
    file_name: str | None = None
    file_content_type: str | None = None
    file_size: int = 0
    file_seen: bool = False


@dataclass
class _Part:
    name: str = ""
    is_file: bool = False
    data: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)


class _MultipartCollector:
    """python-multipart's callbacks: fields into memory (within budget), file bytes queued for the sealer."""

    def __init__(self, file_field: str, field_names: frozenset[str], limits: UploadLimits) -> None:
        self.file_field = file_field
        self.field_names = field_names
        self.limits = limits
        self.upload = ReceivedUpload(fields={})
        self.pending = bytearray()
        self.ended = False
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._fields_bytes = 0

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_part_begin": self._part_begin, "on_part_data": self._part_data, "on_part_end": self._part_end,
                "on_header_field": self._header_field, "on_header_value": self._header_value_data,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_finished,
                "on_end": self._end}

    def _part_begin(self) -> None:
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._part.headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise _invalid("body", "a multipart part has no name in its Content-Disposition")
        name = _text(options[b"name"], "body")
        self._part.name = name
        if name == self.file_field:
            if self.upload.file_seen:
                raise _invalid(f"body.{name}", "sent more than once")
            self.upload.file_seen = True
            self._part.is_file = True
            if b"filename" in options:
                self.upload.file_name = _text(options[b"filename"], f"body.{name}")
            if b"content-type" in self._part.headers:
                self.upload.file_content_type = _text(self._part.headers[b"content-type"], f"body.{name}")
        elif name not in self.field_names:
            raise _invalid(f"body.{name[:100]}", "unknown field")
        elif name in self.upload.fields:
            raise _invalid(f"body.{name}", "sent more than once")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._part.is_file:
            self.upload.file_size += len(piece)
            if self.upload.file_size > self.limits.max_file_bytes:
                raise BodyTooLarge(self.limits.max_file_bytes, self.limits.file_setting, f"body.{self.file_field}")
            self.pending += piece
        else:
            self._fields_bytes += len(piece)
            if self._fields_bytes > self.limits.max_fields_bytes:
                raise BodyTooLarge(self.limits.max_fields_bytes, self.limits.fields_setting,
                                  f"body.{self._part.name}")
            self._part.data += piece

    def _part_end(self) -> None:
        if not self._part.is_file:
            self.upload.fields[self._part.name] = _text(bytes(self._part.data), f"body.{self._part.name}")

    def _end(self) -> None:
        self.ended = True


async def receive_upload(request: Request, store: EvidenceStore, *, file_field: str, field_names: frozenset[str],
                         limits: UploadLimits, validate: Callable[[ReceivedUpload], T]) -> tuple[T, EvidenceRef]:
    """Stream a multipart request's ``file_field`` into ``store``; ``validate`` turns the rest into ``T``.

    ``validate`` runs once the whole request has arrived and before the media is stored: whatever it raises
    (a ``RequestValidationError`` or ``ProblemError``) leaves nothing behind.
    """
    media_type, params = parse_options_header(request.headers.get("content-type"))
    if media_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ProblemError(415, "Send this as multipart/form-data",
                           errors=[FieldProblem(field="body", message="expected multipart/form-data with a boundary")])
    collector = _MultipartCollector(file_field, field_names, limits)
    parser = MultipartParser(params[b"boundary"], collector.callbacks(),  # type: ignore[arg-type]
                             max_header_count=_MAX_PART_HEADERS, max_header_size=_MAX_PART_HEADER_BYTES)
    with store.incoming_file() as (path, sink):
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                if len(collector.pending) >= _WRITE_BYTES:
                    await run_in_threadpool(sink.write, bytes(collector.pending))
                    collector.pending.clear()
            parser.finalize()
        except FormParserError:
            raise _invalid("body", "not valid multipart/form-data") from None
        except ClientDisconnect:
            # Nobody is left to answer; one line instead of a traceback, and the scratch file goes.
            log.info("upload.client_disconnected", received_bytes=collector.upload.file_size)
            raise ProblemError(400, "The request ended before its body did") from None
        if not collector.ended:
            raise _invalid("body", "the multipart body ends before its closing boundary")
        upload = collector.upload
        if not upload.file_seen:
            raise _invalid(f"body.{file_field}", "field required")
        if upload.file_size == 0:
            raise _invalid(f"body.{file_field}", "the file is empty")
        result = validate(upload)
        await run_in_threadpool(sink.write, bytes(collector.pending))
        sink.close()
        return result, await run_in_threadpool(store.put_path, path)


def _text(raw: bytes, field_name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid(field_name, "not UTF-8 text") from None


def _invalid(field_name: str, message: str) -> ProblemError:
    return ProblemError(422, "The request is invalid", errors=[FieldProblem(field=field_name, message=message)])
