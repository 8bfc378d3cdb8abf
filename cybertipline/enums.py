"""Every closed vocabulary of NCMEC's CyberTipline schema, spelled exactly as the XSD spells it.

The member *values* are what goes on the wire; a typo here is a 4100 from NCMEC, so the tests compare each
enum against the XSD's enumerations. Country and state codes are plain tuples rather than enums: they are
long, carry no meaning the code branches on, and an enum's error message would list all 258 values.
"""

from __future__ import annotations

from enum import StrEnum


class IncidentType(StrEnum):
    """``incidentSummary/incidentType``. The long first value is NCMEC's legal wording and must stay verbatim."""

    CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
    CHILD_SEX_TRAFFICKING = "Child Sex Trafficking"
    CHILD_SEX_TOURISM = "Child Sex Tourism"
    CHILD_SEXUAL_MOLESTATION = "Child Sexual Molestation"
    MISLEADING_DOMAIN_NAME = "Misleading Domain Name"
    MISLEADING_WORDS_OR_DIGITAL_IMAGES = "Misleading Words or Digital Images on the Internet"
    # Plural "Acts": one public client drops the s and fails validation.
    ONLINE_ENTICEMENT = "Online Enticement of Children for Sexual Acts"
    UNSOLICITED_OBSCENE_MATERIAL = "Unsolicited Obscene Material Sent to a Child"


class BatchedReportReason(StrEnum):
    """``batchedReport/@reason``: the schema's only value."""

    VIRAL_POTENTIAL_MEME = "VIRAL_POTENTIAL_MEME"


class ReportAnnotation(StrEnum):
    """Presence flags of ``incidentSummary/reportAnnotations`` (element names)."""

    SEXTORTION = "sextortion"
    CSAM_SOLICITATION = "csamSolicitation"
    MINOR_TO_MINOR_INTERACTION = "minorToMinorInteraction"
    SPAM = "spam"
    SADISTIC_ONLINE_EXPLOITATION = "sadisticOnlineExploitation"


class FileAnnotation(StrEnum):
    """Presence flags of ``fileDetails/fileAnnotations`` (element names)."""

    ANIME_DRAWING_VIRTUAL_HENTAI = "animeDrawingVirtualHentai"
    POTENTIAL_MEME = "potentialMeme"
    VIRAL = "viral"
    POSSIBLE_SELF_PRODUCTION = "possibleSelfProduction"
    PHYSICAL_HARM = "physicalHarm"
    VIOLENCE_GORE = "violenceGore"
    BESTIALITY = "bestiality"
    LIVE_STREAMING = "liveStreaming"
    INFANT = "infant"
    GENERATIVE_AI = "generativeAi"


class FileRelevance(StrEnum):
    """``fileDetails/fileRelevance``; NCMEC treats an absent value as ``Reported``."""

    REPORTED = "Reported"
    SUPPLEMENTAL_REPORTED = "Supplemental Reported"


class IndustryClassification(StrEnum):
    """``fileDetails/industryClassification`` (Industry Hash Sharing MOU signatories only).

    A = prepubescent, B = pubescent; 1 = sex act, 2 = lascivious exhibition.
    """

    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"


class IpEventName(StrEnum):
    """``eventName`` of ipCaptureEvent, and of deviceId too: the XSD types both ``ipCaptureType``."""

    LOGIN = "Login"
    REGISTRATION = "Registration"
    PURCHASE = "Purchase"
    UPLOAD = "Upload"
    OTHER = "Other"
    UNKNOWN = "Unknown"


# The schema has no separate type for device events; the alias keeps call sites self-explanatory.
DeviceEventName = IpEventName


class AddressType(StrEnum):
    HOME = "Home"
    BUSINESS = "Business"
    BILLING = "Billing"
    SHIPPING = "Shipping"
    TECHNICAL = "Technical"


class EmailType(StrEnum):
    HOME = "Home"
    WORK = "Work"
    BUSINESS = "Business"
    RECOVERY = "Recovery"


class PhoneType(StrEnum):
    MOBILE = "Mobile"
    HOME = "Home"
    BUSINESS = "Business"
    WORK = "Work"
    FAX = "Fax"
    INTERNET = "Internet"
    RECOVERY = "Recovery"


class AssociatedAccountType(StrEnum):
    BILLING = "Billing"
    LINKED = "Linked"
    BUSINESS = "Business"
    CREATOR = "Creator"
    PARENT_GUARDIAN = "Parent/Guardian"
    OTHER = "Other"


class DetailsType(StrEnum):
    """``fileDetails/details/@type`` (the XSD's ``metadataTypes``)."""

    EXIF = "EXIF"
    HASH = "HASH"


# The XSD's ``country`` enumeration in its own order: ISO 3166 alpha-2 plus GeoIP's A1 (anonymous proxy),
# A2 (satellite provider), O1 (other), a few retired codes (AN, FX, AP, EU) and the empty string the
# schema also allows. A full country name fails validation.
COUNTRY_CODES: tuple[str, ...] = (
    "", "A1", "A2", "O1", "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AN", "AO", "AP", "AQ", "AR",
    "AS", "AT", "AU", "AW", "AX", "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL",
    "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG",
    "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CX", "CW", "CY", "CZ", "DE", "DJ",
    "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "EU", "FI", "FJ", "FK", "FM",
    "FO", "FR", "FX", "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ",
    "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM",
    "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN",
    "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY",
    "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS",
    "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP",
    "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT",
    "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI",
    "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF",
    "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM",
    "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA",
    "ZM", "ZW",
)  # fmt: skip

# The XSD's ``state`` enumeration: 50 states, DC, PR, GU, VI, and the empty string.
US_STATE_CODES: tuple[str, ...] = (
    "", "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "GU", "HI", "IA", "ID",
    "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE",
    "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "PR", "RI", "SC", "SD", "TN", "TX", "UT",
    "VA", "VI", "VT", "WA", "WI", "WV", "WY",
)  # fmt: skip

_COUNTRY_SET = frozenset(COUNTRY_CODES)
_STATE_SET = frozenset(US_STATE_CODES)


def is_country_code(value: str) -> bool:
    return value in _COUNTRY_SET


def is_us_state_code(value: str) -> bool:
    return value in _STATE_SET
