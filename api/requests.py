"""What every request body the API accepts has in common: unknown fields are refused, never dropped."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path
from pydantic import BaseModel, ConfigDict

# A MIME type as RFC 6838 and RFC 9110 spell it (type/subtype and parameters): no spaces inside, no control
# characters, so a platform's claim can never smuggle CR/LF into a header.
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
CONTENT_TYPE_PATTERN = rf'^{_TOKEN}/{_TOKEN}(\s*;\s*{_TOKEN}=({_TOKEN}|"[^"\x00-\x1f\x7f]*"))*$'
# Text without control characters (file names, which may end up in headers and save dialogs).
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# An Idempotency-Key: long enough for a UUID, a ULID or a hash in base64, short enough for a workflow update id.
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._~:+/=-]{1,200}$"


class RequestBody(BaseModel):
    """Base of every API request model: a misspelt field (``incidnet_type``) is a 422 naming it, not lost."""

    model_config = ConfigDict(extra="forbid")


# Case and screening refs are workflow ids Tipline made: plain ASCII, bounded, so nothing odd reaches Temporal.
WorkflowRef = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$",
                                  description="A ref Tipline returned")]
IdempotencyKey = Annotated[str | None, Header(
    max_length=200, pattern=IDEMPOTENCY_KEY_PATTERN,
    description="Makes a retried request return the first answer: 1-200 letters, digits or ._~:+/=-")]
# Tipline's report row ids (a 32-bit integer column).
ReportId = Annotated[int, Path(ge=1, le=2**31 - 1)]
