"""Conversation threads exported as CSV, attached to a CyberTip as "Supplemental Reported" files.

NCMEC analysts and investigators open these in spreadsheet programs, so besides correct quoting every
cell is guarded against formula injection: a message reading ``=HYPERLINK(...)`` must stay text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from cybertipline.enums import FileRelevance
from models.platform_metadata import IpAddress

__all__ = ["CSV_HEADER", "ConversationMessage", "conversation_csv", "supplemental_file_details_fields"]

CSV_HEADER = ("time", "sender", "recipient", "content", "type", "ip")

# OWASP's list of characters that make a spreadsheet treat a cell as a formula (or shift it into one).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _encodable(value: str) -> str:
    # A lone surrogate (possible from JSON "\ud800") cannot be written as UTF-8; refuse it on arrival.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("utf8", "contains a character that cannot be encoded as UTF-8") from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]


class ConversationMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: Text = Field(description="The platform's id for the message.")
    sent_at: AwareDatetime = Field(description="When it was sent (ISO 8601 with offset).")
    sender: Text = Field(description="Sender's screen name or id.")
    recipient: Text = Field(description="Recipient's screen name, id, or the group or channel.")
    content: Text = Field(description="Message text, or a description of a non-text message.")
    message_type: Text = Field("text", description='Kind of message, e.g. "text", "image", "video".')
    ip_address: IpAddress | None = Field(None, description="IP address the message was sent from.")


def conversation_csv(messages: Sequence[ConversationMessage], *, bom: bool = False) -> bytes:
    """The thread as UTF-8 CSV (RFC 4180 line ends), oldest message first.

    Messages sent at the same instant keep their given order. ``bom`` prepends a UTF-8 byte order mark,
    which some spreadsheet programs need to show non-ASCII text correctly.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_HEADER)
    for message in sorted(messages, key=lambda m: m.sent_at):
        writer.writerow([
            message.sent_at.isoformat(),
            _cell(message.sender),
            _cell(message.recipient),
            _cell(message.content),
            _cell(message.message_type),
            message.ip_address or "",
        ])
    data = buffer.getvalue().encode("utf-8")
    return b"\xef\xbb\xbf" + data if bom else data


def supplemental_file_details_fields(file_name: str) -> dict[str, Any]:
    """``fileDetails`` fields for a supplemental file (conversation CSV, screenshot).

    No classification or annotations: NCMEC only accepts those on Reported files. The name goes in
    ``originalFileName`` because NCMEC's 2026 documentation no longer lists ``fileName``.
    """
    return {"original_file_name": file_name, "file_relevance": FileRelevance.SUPPLEMENTAL_REPORTED}


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value
