"""Validation against NCMEC's report schema.

The schema is data the operator supplies (NCMEC serves it at ``/ispws/xsd``); the project never ships a
copy. Tests point at ``../shared/ncmec/cyber_tipline.xsd``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lxml import etree

from tipline.safe_xml import MalformedXml, UnsafeXml, XmlRefused, parse_xml

__all__ = ["MalformedXml", "UnsafeXml", "XmlRefused", "load_schema", "schema_errors", "validate_root"]


@lru_cache(maxsize=4)
def load_schema(path: str | Path) -> etree.XMLSchema:
    # The schema file goes through the same hardened parser as everything else: it is operator data too.
    return etree.XMLSchema(parse_xml(Path(path).read_bytes()).getroottree())


def validate_root(root: etree._Element, schema: etree.XMLSchema) -> list[str]:
    """Every schema violation of an already (safely) parsed document, as the validator words it."""
    if schema.validate(root):
        return []
    return [f"line {error.line}: {error.message}" for error in schema.error_log]


def schema_errors(document: bytes | str, schema: etree.XMLSchema) -> list[str]:
    """Every schema violation in ``document``, as the validator words it; empty when valid.

    Raises ``MalformedXml`` when the document cannot be parsed at all, ``UnsafeXml`` when it has a DOCTYPE.
    """
    return validate_root(parse_xml(document), schema)
