"""Validation against NCMEC's report schema.

The schema is data the operator supplies (NCMEC serves it at ``/ispws/xsd``); the project never ships a
copy. Tests point at ``../shared/ncmec/cyber_tipline.xsd``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lxml import etree


class MalformedXml(ValueError):
    """The document is not well-formed XML (NCMEC answers 4110)."""


@lru_cache(maxsize=4)
def load_schema(path: str | Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path)))


def schema_errors(document: bytes | str, schema: etree.XMLSchema) -> list[str]:
    """Every schema violation in ``document``, as the validator words it; empty when valid.

    Raises ``MalformedXml`` when the document cannot be parsed at all.
    """
    data = document.encode() if isinstance(document, str) else document
    try:
        tree = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(str(exc)) from exc
    if schema.validate(tree):
        return []
    return [f"line {error.line}: {error.message}" for error in schema.error_log]
