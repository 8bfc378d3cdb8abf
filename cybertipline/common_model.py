"""Types shared by the ``<report>`` and ``<fileDetails>`` models, and the machinery all models stand on.

How to read the models (here, in ``report_model`` and in ``file_details_model``):

- One class per XSD type. Fields are declared **in XSD order, and that order is the element order on
  the wire**: ``report_xml`` walks the fields in declaration order, so NCMEC's sequence is written down
  only once. Reordering fields breaks submissions (NCMEC answers 4100).
- Each field's alias is the exact element or attribute name, so searching for an XML name such as
  ``incidentDateTime`` lands on the one line that defines it. Python code may use either the snake_case
  name or the alias (``populate_by_name``).
- ``element`` / ``repeated`` / ``attribute`` / ``text_content`` / ``flag`` say how a field is written:
  child element, repeated child element, XML attribute, the element's own text, or a presence flag
  (``<spam/>`` when true, absent when false; the XSD fixes these to ``true`` so ``false`` would fail).
- Length limits come from NCMEC's documented validation rules (spec §4.4), not from the XSD, which types
  almost everything as unbounded ``xs:string``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from cybertipline.enums import (
    AddressType,
    AssociatedAccountType,
    EmailType,
    IpEventName,
    PhoneType,
    is_country_code,
    is_us_state_code,
)

# --------------------------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class FieldError:
    """One refused value. ``field`` is the XML path, e.g. ``personOrUserReported[0].ipCaptureEvent[1].port``."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ReportValidationError(ValueError):
    """A report or fileDetails that NCMEC would refuse; raised before anything is sent."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors) or "invalid CyberTipline document")


def rule_violation(at: str, message: str) -> PydanticCustomError:
    """An error raised by a model-level rule; ``at`` is the path below the model that it names."""
    return PydanticCustomError("cybertip_rule", message, {"at": at})


def field_errors(exc: ValidationError, model: type[BaseModel]) -> list[FieldError]:
    """Translate pydantic's locations (Python names or aliases) into XML paths below ``model``."""
    errors = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        at = (error.get("ctx") or {}).get("at")
        if at:
            loc.extend(str(at).split("."))
        errors.append(FieldError(_xml_path(loc, model), error["msg"]))
    return errors


def _xml_path(loc: list[int | str], model: type[BaseModel] | None) -> str:
    path = ""
    for segment in loc:
        if isinstance(segment, int):
            path += f"[{segment}]"
            continue
        name, info = segment, _find_field(model, segment)
        model = None
        if info is not None:
            if xml_role(info) == "text":
                continue  # the element's own text: the element path already names it
            name = info.alias or segment
            model = model_in(info.annotation)
        path = f"{path}.{name}" if path else name
    return path


def _find_field(model: type[BaseModel] | None, key: str) -> FieldInfo | None:
    if model is None:
        return None
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``X``, ``X | None`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------------------------- field markers


def xml_role(info: FieldInfo) -> str:
    """``element`` (default), ``attribute``, ``text`` or ``flag``."""
    extra = info.json_schema_extra
    return str(extra.get("xml", "element")) if isinstance(extra, dict) else "element"


def element(alias: str, default: Any = ..., **constraints: Any) -> Any:
    return Field(default, alias=alias, **constraints)


def repeated(alias: str, **constraints: Any) -> Any:
    return Field(default_factory=list, alias=alias, **constraints)


def attribute(alias: str, default: Any = None) -> Any:
    return Field(default, alias=alias, json_schema_extra={"xml": "attribute"})


def text_content(default: Any = ...) -> Any:
    return Field(default, alias="value", json_schema_extra={"xml": "text"})


def flag(alias: str) -> Any:
    return Field(False, alias=alias, json_schema_extra={"xml": "flag"})


class XmlModel(BaseModel):
    """Base of every CyberTipline model: immutable, strict about unknown keys, errors as XML paths."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def __init__(self, /, **data: Any) -> None:
        # Callers build models directly as often as through parse_report; both get the same error type.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ReportValidationError(field_errors(exc, type(self))) from None

    # Tells pydantic this __init__ only wraps errors, so nested validation keeps calling the core
    # validator (and keeps pydantic's own error locations) instead of going through __init__.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _bare_text_content(cls, data: Any) -> Any:
        # Lets ``email=["a@example.com"]`` stand for ``email=[{"value": "a@example.com"}]``.
        if isinstance(data, dict | BaseModel):
            return data
        for name, info in cls.model_fields.items():
            if xml_role(info) == "text":
                return {name: data}
        return data


# ------------------------------------------------------------------------------------ scalar types

# Characters XML 1.0 cannot carry at all; lxml refuses them and NCMEC would answer 4110.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# NCMEC answers 4100 for whitespace or control characters in URL-like fields although the XSD allows them.
_NOT_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _xml_safe(value: str) -> str:
    if _NOT_XML.search(value):
        raise PydanticCustomError("xml_character", "contains a character XML 1.0 cannot carry")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


def _url(value: str) -> str:
    if _NOT_URL.search(value):
        raise PydanticCustomError("url_whitespace", "must not contain whitespace or control characters")
    return _not_blank(value)


def _country(value: str) -> str:
    if not is_country_code(value):
        raise PydanticCustomError("country_code", "must be a two-letter country code from NCMEC's list")
    return value


def _us_state(value: str) -> str:
    if not is_us_state_code(value):
        raise PydanticCustomError("us_state_code", "must be a two-letter US state or territory code")
    return value


def _limit(length: int) -> StringConstraints:
    return StringConstraints(max_length=length)


XmlStr = Annotated[str, AfterValidator(_xml_safe)]
Str20 = Annotated[str, _limit(20), AfterValidator(_xml_safe)]
Str100 = Annotated[str, _limit(100), AfterValidator(_xml_safe)]
Str255 = Annotated[str, _limit(255), AfterValidator(_xml_safe)]
Str256 = Annotated[str, _limit(256), AfterValidator(_xml_safe)]
Str300 = Annotated[str, _limit(300), AfterValidator(_xml_safe)]
Str2056 = Annotated[str, _limit(2056), AfterValidator(_xml_safe)]
NonBlank = Annotated[str, AfterValidator(_xml_safe), AfterValidator(_not_blank)]
NonBlank50 = Annotated[str, _limit(50), AfterValidator(_xml_safe), AfterValidator(_not_blank)]
NonBlank64 = Annotated[str, _limit(64), AfterValidator(_xml_safe), AfterValidator(_not_blank)]
NonBlank255 = Annotated[str, _limit(255), AfterValidator(_xml_safe), AfterValidator(_not_blank)]
NonBlank2083 = Annotated[str, _limit(2083), AfterValidator(_xml_safe), AfterValidator(_not_blank)]
# Free text NCMEC documents as "non-blank, at most 3000 characters".
Prose3000 = Annotated[str, _limit(3000), AfterValidator(_xml_safe), AfterValidator(_not_blank)]
Url = Annotated[str, AfterValidator(_xml_safe), AfterValidator(_url)]
Url2083 = Annotated[str, _limit(2083), AfterValidator(_xml_safe), AfterValidator(_url)]
Token = Annotated[str, AfterValidator(_xml_safe), AfterValidator(_url)]  # xs:token ids: no inner spaces
Age = Annotated[int, Field(ge=0, le=150)]
Port = Annotated[int, Field(ge=1, le=65535)]
ReportId = Annotated[int, Field(ge=1, le=2**63 - 1)]  # xs:long; NCMEC ids are positive
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
CountryCode = Annotated[str, AfterValidator(_country)]
UsStateCode = Annotated[str, AfterValidator(_us_state)]


def xsd_offset(value: datetime) -> datetime:
    """The same instant with the fixed offset xs:dateTime will carry: whole minutes, within ±14:00.

    Models store exactly what goes on the wire: a zone name (ZoneInfo) is replaced by its offset at
    that instant, so JSON round trips and comparisons are exact, even for times in a DST gap. Offsets
    xs:dateTime cannot write (historic ones like +00:19:32, or beyond ±14:00) become UTC.
    """
    offset = value.utcoffset()
    if offset is None:
        return value
    if offset % timedelta(minutes=1) or abs(offset) > timedelta(hours=14):
        return value.astimezone(UTC)
    return value.astimezone(timezone(offset))


# Every xs:dateTime must carry its offset: a naive time would be read in NCMEC's zone, not ours.
Timestamp = Annotated[AwareDatetime, AfterValidator(xsd_offset)]

# ---------------------------------------------------------------------------------- shared blocks


class Email(XmlModel):
    value: NonBlank255 = text_content()
    type: EmailType | None = attribute("type")
    verified: bool | None = attribute("verified")
    verification_date: Timestamp | None = attribute("verificationDate")


class Phone(XmlModel):
    value: NonBlank50 = text_content()
    type: PhoneType | None = attribute("type")
    verified: bool | None = attribute("verified")
    verification_date: Timestamp | None = attribute("verificationDate")
    country_calling_code: Annotated[str, Field(pattern=r"^\+[0-9]{1,3}$")] | None = attribute("countryCallingCode")
    extension: Annotated[str, Field(pattern=r"^[0-9]{1,10}$")] | None = attribute("extension")


class Address(XmlModel):
    type: AddressType | None = attribute("type")
    address: Str255 | None = element("address", None)
    city: Str100 | None = element("city", None)
    zip_code: Str20 | None = element("zipCode", None)
    state: UsStateCode | None = element("state", None)
    non_usa_state: Str100 | None = element("nonUsaState", None)
    country: CountryCode | None = element("country", None)


class ContactPerson(XmlModel):
    first_name: Str100 | None = element("firstName", None)
    last_name: Str100 | None = element("lastName", None)
    phone: list[Phone] = repeated("phone")
    email: list[Email] = repeated("email")
    address: list[Address] = repeated("address")


class Person(XmlModel):
    """The XSD's ``person``: a reported user's, victim's or reporter's identity."""

    first_name: Str100 | None = element("firstName", None)
    last_name: Str100 | None = element("lastName", None)
    phone: list[Phone] = repeated("phone")
    email: list[Email] = repeated("email")
    address: list[Address] = repeated("address")
    age: Age | None = element("age", None)
    date_of_birth: date | None = element("dateOfBirth", None)


class IpCaptureEvent(XmlModel):
    ip_address: NonBlank = element("ipAddress")
    event_name: IpEventName | None = element("eventName", None)
    date_time: Timestamp | None = element("dateTime", None)
    possible_proxy: bool | None = element("possibleProxy", None)
    port: Port | None = element("port", None)


class DeviceId(XmlModel):
    id_type: NonBlank255 = element("idType")  # e.g. IMEI, ICCID, SSID
    id_value: NonBlank2083 = element("idValue")
    event_name: IpEventName | None = element("eventName", None)
    date_time: Timestamp | None = element("dateTime", None)


class EstimatedLocation(XmlModel):
    verified: bool | None = attribute("verified")
    timestamp: Timestamp | None = attribute("timestamp")
    city: Str100 | None = element("city", None)
    region: XmlStr | None = element("region", None)
    country_code: CountryCode | None = element("countryCode", None)


class AccountTemporarilyDisabled(XmlModel):
    value: bool = text_content()
    disabled_date: Timestamp | None = attribute("disabledDate")
    user_notified: bool | None = attribute("userNotified")
    user_notified_date: Timestamp | None = attribute("userNotifiedDate")
    reenabled_date: Timestamp | None = attribute("reenabledDate")


class AccountPermanentlyDisabled(XmlModel):
    value: bool = text_content()
    disabled_date: Timestamp | None = attribute("disabledDate")
    user_notified: bool | None = attribute("userNotified")
    user_notified_date: Timestamp | None = attribute("userNotifiedDate")


class AssociatedAccountPlatform(XmlModel):
    value: Str256 = text_content()
    third_party_user: bool | None = attribute("thirdPartyUser")


class AssociatedAccount(XmlModel):
    """Another account tied to a reported user or victim. Its order differs from the other blocks'."""

    type: AssociatedAccountType = attribute("type", ...)
    platform: AssociatedAccountPlatform | None = element("platform", None)
    first_name: Str256 | None = element("firstName", None)
    middle_name: Str256 | None = element("middleName", None)
    last_name: Str256 | None = element("lastName", None)
    approximate_age: Age | None = element("approximateAge", None)
    date_of_birth: date | None = element("dateOfBirth", None)
    phone: list[Phone] = repeated("phone")
    email: list[Email] = repeated("email")
    all_emails_reported: bool | None = element("allEmailsReported", None)
    address: list[Address] = repeated("address")
    esp_service: Str256 | None = element("espService", None)
    esp_identifier: Str256 | None = element("espIdentifier", None)
    profile_url: list[Url] = repeated("profileUrl")
    screen_name: Str256 | None = element("screenName", None)
    display_name: list[Str256] = repeated("displayName")
    profile_bio: XmlStr | None = element("profileBio", None)
    group_identifier: Str256 | None = element("groupIdentifier", None)
    compromised_account: bool | None = element("compromisedAccount", None)
    account_temporarily_disabled: AccountTemporarilyDisabled | None = element("accountTemporarilyDisabled", None)
    account_permanently_disabled: AccountPermanentlyDisabled | None = element("accountPermanentlyDisabled", None)
    ip_capture_event: list[IpCaptureEvent] = repeated("ipCaptureEvent")
    device_id: list[DeviceId] = repeated("deviceId")
    # Singular here, ``priorCTReports`` everywhere else: the XSD's spelling, not a typo.
    prior_ct_report: list[ReportId] = repeated("priorCTReport")
    additional_info: XmlStr | None = element("additionalInfo", None)
