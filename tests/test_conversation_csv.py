"""Conversation threads as CSV: correct quoting, time order, and no formulas for the analyst's spreadsheet."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cybertipline.report_xml import file_details_to_xml, parse_file_details
from cybertipline.xsd import load_schema, schema_errors
from models.conversation_csv import (
    CSV_HEADER,
    ConversationMessage,
    conversation_csv,
    supplemental_file_details_fields,
)

XSD_PATH = Path(__file__).resolve().parents[1] / ".." / "shared" / "ncmec" / "cyber_tipline.xsd"
EST = timezone(timedelta(hours=-5))
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def message(n: int, content: str = "hi", *, at: datetime | None = None, **extra: object) -> ConversationMessage:
    return ConversationMessage(
        message_id=f"msg-{n}",
        sent_at=at or T0 + timedelta(minutes=n),
        sender="sam_1" if n % 2 else "alex_2",
        recipient="alex_2" if n % 2 else "sam_1",
        content=content,
        **extra,  # type: ignore[arg-type]
    )


def rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_header_and_one_row_per_message() -> None:
    data = conversation_csv([message(1, ip_address="192.0.2.7"), message(2, message_type="image")])
    assert rows(data) == [
        list(CSV_HEADER),
        ["2024-03-01T12:01:00+00:00", "sam_1", "alex_2", "hi", "text", "192.0.2.7"],
        ["2024-03-01T12:02:00+00:00", "alex_2", "sam_1", "hi", "image", ""],
    ]
    assert data.startswith(b"time,sender,recipient,content,type,ip\r\n")


def test_empty_thread_is_just_the_header() -> None:
    assert conversation_csv([]) == b"time,sender,recipient,content,type,ip\r\n"


def test_messages_are_in_time_order_across_offsets() -> None:
    # 07:30-05:00 is 12:30 UTC: after 12:00 UTC, before 13:00 UTC.
    messages = [
        message(3, "third", at=datetime(2024, 3, 1, 13, 0, tzinfo=UTC)),
        message(1, "first", at=T0),
        message(2, "second", at=datetime(2024, 3, 1, 7, 30, tzinfo=EST)),
    ]
    table = rows(conversation_csv(messages))
    assert [row[3] for row in table[1:]] == ["first", "second", "third"]
    assert table[2][0] == "2024-03-01T07:30:00-05:00"  # the sender's own offset is kept


def test_simultaneous_messages_keep_their_given_order() -> None:
    messages = [message(n, f"m{n}", at=T0) for n in (5, 1, 3)]
    assert [row[3] for row in rows(conversation_csv(messages))[1:]] == ["m5", "m1", "m3"]


@pytest.mark.parametrize(
    "content",
    ['a, b, and c', 'she said "hi"', "line one\nline two", "crlf\r\ninside", '",\n"', "", "   padded   "],
)
def test_quoting_round_trips(content: str) -> None:
    assert rows(conversation_csv([message(1, content)]))[1][3] == content


@pytest.mark.parametrize("content", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x")'])
def test_formula_injection_is_neutralised(content: str) -> None:
    assert rows(conversation_csv([message(1, content)]))[1][3] == "'" + content


def test_every_text_cell_is_guarded() -> None:
    m = ConversationMessage(message_id="1", sent_at=T0, sender="=a", recipient="+b", content="@c", message_type="-d")
    assert rows(conversation_csv([m]))[1][1:5] == ["'=a", "'+b", "'@c", "'-d"]


def test_harmless_cells_are_untouched() -> None:
    for content in ["a=b", "1-2", "x@example.com", " =not at start? it is after a space"]:
        assert rows(conversation_csv([message(1, content)]))[1][3] == content


def test_non_ascii_text_is_utf8() -> None:
    content = "héllo 👋 Привет 你好 مرحبا"
    data = conversation_csv([message(1, content)])
    assert content.encode("utf-8") in data
    assert rows(data)[1][3] == content


def test_optional_byte_order_mark() -> None:
    data = conversation_csv([message(1, "é")], bom=True)
    assert data.startswith(b"\xef\xbb\xbftime,")
    assert list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[1][3] == "é"


def test_naive_times_and_bad_ips_are_refused() -> None:
    with pytest.raises(ValidationError):
        ConversationMessage(message_id="1", sent_at=datetime(2024, 3, 1), sender="a", recipient="b", content="c")
    with pytest.raises(ValidationError):
        message(1, ip_address="not-an-ip")
    with pytest.raises(ValidationError):
        message(1, "lone \ud800 surrogate")


def test_ipv6_is_written_canonically() -> None:
    assert rows(conversation_csv([message(1, ip_address="2001:DB8:0::5")]))[1][5] == "2001:db8::5"


@settings(max_examples=100, deadline=None)
@given(contents=st.lists(st.text(st.characters(exclude_categories=("Cs",))), min_size=1, max_size=5))
def test_any_text_round_trips(contents: list[str]) -> None:
    messages = [message(n, content) for n, content in enumerate(contents)]
    table = rows(conversation_csv(messages))
    assert len(table) == len(contents) + 1
    for row, content in zip(table[1:], contents, strict=True):
        expected = "'" + content if content[:1] in ("=", "+", "-", "@", "\t", "\r") else content
        assert row[3] == expected


def test_supplemental_file_details_are_schema_valid_and_unclassified() -> None:
    fields = supplemental_file_details_fields("conversation-user-123.csv")
    assert fields["file_relevance"] == "Supplemental Reported"
    details = parse_file_details({"report_id": 4564654, "file_id": "b0754af7", **fields})
    assert details.industry_classification is None and details.file_annotations is None
    xml = file_details_to_xml(details)
    assert b"<fileRelevance>Supplemental Reported</fileRelevance>" in xml
    assert b"<originalFileName>conversation-user-123.csv</originalFileName>" in xml
    assert XSD_PATH.exists(), f"NCMEC's XSD is expected at {XSD_PATH}"
    assert schema_errors(xml, load_schema(XSD_PATH.resolve())) == []
