"""Business rules NCMEC enforces beyond the XSD (spec section 4.4). Each violation answers 4100.

Documents are schema-less (no namespace), so tags are matched by plain name. Every check returns messages
that name the offending element by its XPath, the way a validator message points at a line.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from lxml import etree

from cybertipline.sandbox.state import as_utc

_URL_TAGS = frozenset({"url", "profileUrl", "legalURL", "locationOfFile"})
_SUPPLEMENTAL = "Supplemental Reported"
_ASSOCIATED_ACCOUNT_STRINGS = frozenset(
    {
        "platform",
        "firstName",
        "middleName",
        "lastName",
        "espService",
        "espIdentifier",
        "screenName",
        "displayName",
        "groupIdentifier",
    }
)

# tag -> (parent tags the limit applies under, or None for anywhere; max length)
_LENGTH_LIMITS: dict[str, list[tuple[frozenset[str] | None, int]]] = {
    "firstName": [(None, 100)],
    "lastName": [(None, 100)],
    "espService": [(frozenset({"personOrUserReported", "victim"}), 100)],
    "caseNumber": [(None, 100)],
    "city": [(None, 100)],
    "nonUsaState": [(None, 100)],
    "email": [(None, 255)],
    "emailAddress": [(None, 255)],
    # The street line is an <address> inside an address-typed element of the same or another name.
    "address": [(frozenset({"address", "incidentAddress"}), 255)],
    "espIdentifier": [(None, 255)],
    "groupIdentifier": [(None, 255)],
    "schoolName": [(None, 255)],
    "agencyName": [(None, 255)],
    "chatClient": [(None, 255)],
    "chatRoomName": [(None, 255)],
    "gameName": [(None, 255)],
    "console": [(None, 255)],
    "locationName": [(None, 255)],
    "name": [(frozenset({"newsgroupIncident"}), 255), (frozenset({"nameValuePair"}), 64)],
    "client": [(frozenset({"peer2peerIncident"}), 255)],
    "idType": [(frozenset({"deviceId"}), 255)],
    "idValue": [(frozenset({"deviceId"}), 2083)],
    "platform": [(None, 256)],
    "screenName": [(None, 256)],
    "vehicleDescription": [(None, 300)],
    "legalURL": [(None, 2083)],
    "locationOfFile": [(None, 2083)],
    "originalFileName": [(None, 2056)],
    "phone": [(None, 50)],
    "phoneNumber": [(None, 50)],
    "zipCode": [(None, 20)],
}
_ATTRIBUTE_LIMITS: dict[tuple[str, str], int] = {
    ("originalFileHash", "hashType"): 64,
    ("phone", "extension"): 10,
    ("phoneNumber", "extension"): 10,
}
_RANGES: dict[str, tuple[frozenset[str] | None, int, int]] = {
    "age": (None, 0, 150),
    "approximateAge": (frozenset({"associatedAccount"}), 0, 150),
    "port": (frozenset({"ipCaptureEvent"}), 1, 65535),
}
# Free-text fields the docs say must be non-blank and at most 3000 characters.
_NON_BLANK_3000: list[tuple[str, str]] = [
    ("incidentSummary", "escalateToHighPriority"),
    ("incidentSummary", "incidentDateTimeDescription"),
    ("report", "additionalInfo"),
    ("reporter", "termsOfService"),
]


def _elements(root: etree._Element) -> Iterator[etree._Element]:
    # Comments and processing instructions have a non-string tag; only elements matter here.
    return (el for el in root.iter() if isinstance(el.tag, str))


def _parent_tag(el: etree._Element) -> str | None:
    parent = el.getparent()
    return None if parent is None else str(parent.tag)


def _where(el: etree._Element) -> str:
    return el.getroottree().getpath(el)


def _limit_for(el: etree._Element) -> int | None:
    tag, parent = str(el.tag), _parent_tag(el)
    if parent == "associatedAccount" and tag in _ASSOCIATED_ACCOUNT_STRINGS:
        return 256
    for parents, limit in _LENGTH_LIMITS.get(tag, []):
        if parents is None or parent in parents:
            return limit
    return None


def _has_whitespace_or_control(value: str) -> bool:
    return any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value)


def common_violations(root: etree._Element) -> list[str]:
    """Checks shared by ``<report>`` and ``<fileDetails>``: URL hygiene, lengths, numeric ranges."""
    problems: list[str] = []
    for el in _elements(root):
        tag, text = str(el.tag), el.text or ""
        if tag in _URL_TAGS and _has_whitespace_or_control(text):
            problems.append(f"{_where(el)}: URL contains whitespace or control characters")
        limit = _limit_for(el)
        if limit is not None and len(text) > limit:
            problems.append(f"{_where(el)}: length {len(text)} exceeds the maximum of {limit}")
        for attr, value in el.attrib.items():
            attr_limit = _ATTRIBUTE_LIMITS.get((tag, str(attr)))
            if attr_limit is not None and len(value) > attr_limit:
                problems.append(f"{_where(el)}/@{attr}: length {len(value)} exceeds the maximum of {attr_limit}")
        bounds = _RANGES.get(tag)
        if bounds is not None and (bounds[0] is None or _parent_tag(el) in bounds[0]):
            _, low, high = bounds
            try:
                number = int(text.strip())
            except ValueError:
                continue  # not an integer: the XSD's job to complain
            if not low <= number <= high:
                problems.append(f"{_where(el)}: {number} is outside {low}..{high}")
    return problems


def _parse_xs_datetime(value: str) -> datetime | None:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def report_violations(root: etree._Element, *, now: datetime, strict_reporting_person_email: bool) -> list[str]:
    problems: list[str] = []
    for el in root.iterfind("incidentSummary/incidentDateTime"):
        when = _parse_xs_datetime(el.text or "")
        if when is not None and when > now:
            problems.append(f"{_where(el)}: incidentDateTime {el.text} is in the future; it must be in the past")
    for parent_tag, tag in _NON_BLANK_3000:
        path = tag if parent_tag == "report" else f".//{parent_tag}/{tag}"
        for el in root.iterfind(path):
            text = el.text or ""
            if not text.strip():
                problems.append(f"{_where(el)}: must not be blank")
            elif len(text) > 3000:
                problems.append(f"{_where(el)}: length {len(text)} exceeds the maximum of 3000")
    if strict_reporting_person_email:
        for person in root.iterfind("reporter/reportingPerson"):
            if not any((email.text or "").strip() for email in person.iterfind("email")):
                problems.append(f"{_where(person)}: reportingPerson must contain an email")
    problems.extend(common_violations(root))
    return problems


def file_details_violations(root: etree._Element) -> list[str]:
    problems: list[str] = []
    relevance = (root.findtext("fileRelevance") or "").strip()
    if relevance == _SUPPLEMENTAL:
        flagged = [
            *root.iterfind("industryClassification"),
            *root.iterfind("potentialMeme"),
            *root.iterfind("fileAnnotations/potentialMeme"),
        ]
        for el in flagged:
            problems.append(f"{_where(el)}: {el.tag} is only allowed on files whose fileRelevance is Reported")
    problems.extend(common_violations(root))
    return problems
