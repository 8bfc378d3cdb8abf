"""The one way Tipline parses XML it did not write: NCMEC's answers, hash-sharing feeds, reports sent to the sandbox.

None of those documents has any use for a DTD, so a document type declaration is refused outright rather
than parsed carefully: no entity is ever expanded (billion laughs), no external entity or DTD is ever
loaded (XXE: local files, network), and no validator ever sees an unresolved entity reference. The parser
options below hold on their own as well; the refusal makes the failure loud and names it.
"""

from __future__ import annotations

from lxml import etree

__all__ = ["MalformedXml", "UnsafeXml", "XmlRefused", "parse_xml", "safe_parser"]


class XmlRefused(ValueError):
    """The document was not parsed; ``str()`` says why, without echoing the document."""


class MalformedXml(XmlRefused):
    """The document is not well-formed XML."""


class UnsafeXml(XmlRefused):
    """The document declares a DOCTYPE (a DTD, entities): refused before anything in it is used."""


def safe_parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers are not safe to share across threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_pis=True,
    )


_DOCTYPE_SPELLINGS = tuple("<!DOCTYPE".encode(encoding) for encoding in ("utf-8", "utf-16-le", "utf-16-be"))
_DOCTYPE_REFUSED = "a DOCTYPE (DTD or entity declarations) is not allowed"


def _declares_doctype(data: bytes) -> bool:
    return any(spelling in data for spelling in _DOCTYPE_SPELLINGS)


def parse_xml(data: bytes | str) -> etree._Element:
    """Parse ``data`` and return its root element, or raise :class:`UnsafeXml` / :class:`MalformedXml`."""
    body = data.encode("utf-8") if isinstance(data, str) else data
    try:
        root = etree.fromstring(body, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        # libxml2 may give up on an entity bomb before lxml reports the DOCTYPE: name the real cause.
        if _declares_doctype(body):
            raise UnsafeXml(_DOCTYPE_REFUSED) from None
        raise MalformedXml(str(exc)) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml(_DOCTYPE_REFUSED)
    return root
