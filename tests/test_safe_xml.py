"""The one XML parser Tipline uses: no DOCTYPE, so no entity is ever expanded or loaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cybertipline.responses import UnparseableResponse, parse_document
from cybertipline.xsd import load_schema, schema_errors
from tests.hostile_xml import (
    SECRET_MARKER,
    billion_laughs,
    external_dtd,
    external_entity,
    internal_entity,
    write_secret,
)
from tipline.safe_xml import MalformedXml, UnsafeXml, parse_xml

XSD = Path(__file__).resolve().parents[1] / ".." / "shared" / "ncmec" / "cyber_tipline.xsd"


def _hostile(tmp_path: Path) -> dict[str, bytes]:
    secret = write_secret(tmp_path)
    return {
        "billion_laughs": billion_laughs("report"),
        "external_entity": external_entity("report", secret),
        "internal_entity": internal_entity("report"),
        "external_dtd": external_dtd("report", tmp_path / "evil.dtd"),
        "bare_doctype": b"<!DOCTYPE report><report/>",
        "utf16_doctype": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE report><report/>'.encode("utf-16"),
    }


@pytest.mark.parametrize("kind", ["billion_laughs", "external_entity", "internal_entity", "external_dtd",
                                  "bare_doctype", "utf16_doctype"])
def test_any_doctype_is_refused_fast_and_nothing_leaks(tmp_path: Path, kind: str) -> None:
    document = _hostile(tmp_path)[kind]
    started = time.monotonic()
    with pytest.raises(UnsafeXml) as info:
        parse_xml(document)
    assert time.monotonic() - started < 1.0
    assert "DOCTYPE" in str(info.value)
    assert SECRET_MARKER not in str(info.value)


def test_plain_documents_parse() -> None:
    root = parse_xml(b'<?xml version="1.0" encoding="UTF-8"?><reportResponse><responseCode>0</responseCode>'
                     b"<responseDescription>caf\xc3\xa9 &amp; co</responseDescription></reportResponse>")
    assert root.findtext("responseDescription") == "café & co"
    assert parse_xml("<a>text</a>").text == "text"


@pytest.mark.parametrize("document", [b"<report>", b"<report>&undeclared;</report>", b"not xml", b""])
def test_broken_documents_are_malformed_not_unsafe(document: bytes) -> None:
    with pytest.raises(MalformedXml):
        parse_xml(document)


@pytest.mark.parametrize(
    "make",
    [lambda p: billion_laughs("reportResponse", "<responseCode>0</responseCode>"),
     lambda p: external_entity("reportResponse", write_secret(p), "<responseCode>0</responseCode>")],
)
def test_an_ncmec_answer_with_a_doctype_is_not_an_answer(tmp_path: Path, make: Callable[[Path], bytes]) -> None:
    with pytest.raises(UnparseableResponse, match="DOCTYPE"):
        parse_document(make(tmp_path))


def test_schema_validation_refuses_before_the_validator_sees_an_entity(tmp_path: Path) -> None:
    schema = load_schema(XSD.resolve())
    for document in _hostile(tmp_path).values():
        with pytest.raises(UnsafeXml):
            schema_errors(document, schema)


REPO = Path(__file__).resolve().parents[1]
# Ways to parse XML that bypass tipline/safe_xml.py. Building documents (etree.Element, tostring) is fine.
_RAW_PARSING = ("etree.fromstring(", "etree.parse(", "etree.XML(", "etree.XMLParser(", "etree.iterparse(",
                "xml.etree", "xml.dom", "xml.sax.parse", "minidom")


def test_no_code_parses_xml_except_through_the_safe_parser() -> None:
    offenders = []
    for path in REPO.glob("**/*.py"):
        relative = path.relative_to(REPO)
        if relative.parts[0] in {".venv", "tests", "build"} or relative == Path("tipline/safe_xml.py"):
            continue
        text = path.read_text()
        offenders += [f"{relative}: {pattern}" for pattern in _RAW_PARSING if pattern in text]
    assert offenders == []
