"""What a platform tells Tipline about a user, a file and the people around them.

These models are request bodies of the public API. Their limits are NCMEC's (spec §4.4), taken from the
same annotated types the CyberTipline models use, so bad input is refused when it arrives, with the
field named, instead of at ``/submit`` hours later when nobody can fix it. ``models.reported_user``
maps them onto the report model.
"""

from __future__ import annotations

import ipaddress
from datetime import date
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from cybertipline.common_model import (
    Age,
    CountryCode,
    NonBlank50,
    NonBlank64,
    NonBlank255,
    NonBlank2083,
    Port,
    ReportId,
    Str20,
    Str100,
    Str255,
    Str256,
    Str2056,
    Timestamp,
    Url,
    Url2083,
    UsStateCode,
    XmlStr,
)
from cybertipline.enums import AddressType, AssociatedAccountType, EmailType, IpEventName, PhoneType

__all__ = [
    "AddressInfo",
    "AssociatedAccountInfo",
    "DeviceInfo",
    "EmailInfo",
    "EstimatedLocationInfo",
    "FileMetadata",
    "IntendedRecipientInfo",
    "IpAddress",
    "IpEvent",
    "PermanentDisable",
    "PersonInfo",
    "PhoneInfo",
    "TemporaryDisable",
    "UserMetadata",
    "VictimInfo",
    "merge_user_metadata",
]


def _ip_address(value: str) -> str:
    # NCMEC takes any string, but an analyst can do nothing with a malformed address. The canonical
    # form also lets the same address sent twice (e.g. IPv6 written two ways) merge into one event.
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise PydanticCustomError("ip_address", "must be an IPv4 or IPv6 address") from None


def _upper(value: Any) -> Any:
    # Platforms often send "us"; NCMEC's list is upper case only.
    return value.upper() if isinstance(value, str) else value


IpAddress = Annotated[str, AfterValidator(_ip_address)]
Country = Annotated[CountryCode, BeforeValidator(_upper)]
UsState = Annotated[UsStateCode, BeforeValidator(_upper)]
CallingCode = Annotated[str, Field(pattern=r"^\+[0-9]{1,3}$")]
Extension = Annotated[str, Field(pattern=r"^[0-9]{1,10}$")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------------------- building blocks


class EmailInfo(_Model):
    value: NonBlank255 = Field(description="The email address (at most 255 characters).")
    type: EmailType | None = Field(None, description="Home, Work, Business or Recovery.")
    verified: bool | None = Field(None, description="Whether the platform verified the user controls it.")
    verification_date: Timestamp | None = Field(None, description="When it was verified (with offset).")


class PhoneInfo(_Model):
    value: NonBlank50 = Field(description="The phone number as the platform holds it (at most 50 characters).")
    type: PhoneType | None = Field(None, description="Mobile, Home, Business, Work, Fax, Internet or Recovery.")
    country_calling_code: CallingCode | None = Field(None, description='International prefix, e.g. "+1".')
    extension: Extension | None = Field(None, description="Extension digits (at most 10).")
    verified: bool | None = Field(None, description="Whether the platform verified the user controls it.")
    verification_date: Timestamp | None = Field(None, description="When it was verified (with offset).")


class AddressInfo(_Model):
    type: AddressType | None = Field(None, description="Home, Business, Billing, Shipping or Technical.")
    address: Str255 | None = Field(None, description="Street address (at most 255 characters).")
    city: Str100 | None = Field(None, description="City (at most 100 characters).")
    zip_code: Str20 | None = Field(None, description="Postal code (at most 20 characters).")
    state: UsState | None = Field(None, description="Two-letter US state or territory code.")
    non_usa_state: Str100 | None = Field(None, description="State, province or region outside the US.")
    country: Country | None = Field(None, description="ISO 3166 alpha-2 country code, e.g. US.")


class PersonInfo(_Model):
    first_name: Str100 | None = Field(None, description="Given name (at most 100 characters).")
    last_name: Str100 | None = Field(None, description="Family name (at most 100 characters).")
    age: Age | None = Field(None, description="Age in years (0-150).")
    date_of_birth: date | None = Field(None, description="Date of birth (YYYY-MM-DD).")
    addresses: list[AddressInfo] = Field(default_factory=list, description="Postal addresses.")


class IpEvent(_Model):
    ip_address: IpAddress = Field(description="IPv4 or IPv6 address the user was seen at.")
    event: IpEventName | None = Field(
        None, description="What the user did from it: Login, Registration, Purchase, Upload, Other or Unknown."
    )
    at: Timestamp | None = Field(None, description="When (ISO 8601 with offset).")
    port: Port | None = Field(None, description="Source port (1-65535); needed to trace carrier-grade NAT.")
    possible_proxy: bool | None = Field(None, description="Whether the address may be a proxy or VPN.")


class DeviceInfo(_Model):
    id_type: NonBlank255 = Field(description="Kind of identifier, e.g. IMEI, ICCID, SSID, IDFA.")
    id_value: NonBlank2083 = Field(description="The identifier itself.")
    event: IpEventName | None = Field(None, description="What the user did with the device (same names as IP events).")
    at: Timestamp | None = Field(None, description="When (ISO 8601 with offset).")


class EstimatedLocationInfo(_Model):
    city: Str100 | None = Field(None, description="City (at most 100 characters).")
    region: XmlStr | None = Field(None, description="Region, state or province.")
    country_code: Country | None = Field(None, description="ISO 3166 alpha-2 country code.")
    verified: bool | None = Field(None, description="Whether the location is verified rather than inferred.")
    observed_at: Timestamp | None = Field(None, description="When the user was estimated to be there.")


class _Disable(_Model):
    disabled_at: Timestamp | None = Field(None, description="When the account was disabled.")
    user_notified: bool | None = Field(None, description="Whether the user was told.")
    user_notified_at: Timestamp | None = Field(None, description="When the user was told.")


class PermanentDisable(_Disable):
    """The account was disabled for good; the presence of this block means "disabled"."""


# Not a subclass of PermanentDisable: a suspension must not be accepted where a permanent disable is expected.
class TemporaryDisable(_Disable):
    """The account was suspended for a while; the presence of this block means "disabled"."""

    reenabled_at: Timestamp | None = Field(None, description="When the account was (or will be) re-enabled.")


class AssociatedAccountInfo(_Model):
    """Another account tied to the user: billing, linked, a parent's, the creator's …"""

    type: AssociatedAccountType = Field(description="Billing, Linked, Business, Creator, Parent/Guardian or Other.")
    platform: Str256 | None = Field(None, description="Platform or service the account is on.")
    third_party_platform: bool | None = Field(None, description="Whether that platform is not the reporting one.")
    first_name: Str256 | None = Field(None, description="Given name of the account holder.")
    middle_name: Str256 | None = Field(None, description="Middle name of the account holder.")
    last_name: Str256 | None = Field(None, description="Family name of the account holder.")
    approximate_age: Age | None = Field(None, description="Approximate age in years (0-150).")
    date_of_birth: date | None = Field(None, description="Date of birth (YYYY-MM-DD).")
    phones: list[PhoneInfo] = Field(default_factory=list, description="Phone numbers of the account.")
    emails: list[EmailInfo] = Field(default_factory=list, description="Email addresses of the account.")
    all_emails_reported: bool | None = Field(None, description="Whether every email of the account is listed.")
    addresses: list[AddressInfo] = Field(default_factory=list, description="Postal addresses.")
    esp_service: Str256 | None = Field(None, description="Product or service the account belongs to.")
    esp_identifier: Str256 | None = Field(None, description="The platform's stable id for the account.")
    profile_urls: list[Url] = Field(default_factory=list, description="Profile URLs (no whitespace).")
    screen_name: Str256 | None = Field(None, description="Handle or username.")
    display_names: list[Str256] = Field(default_factory=list, description="Display names, each at most 256.")
    profile_bio: XmlStr | None = Field(None, description="Profile text.")
    group_identifier: Str256 | None = Field(None, description="Group or community id the account belongs to.")
    compromised_account: bool | None = Field(None, description="Whether the account is believed compromised.")
    account_temporarily_disabled: TemporaryDisable | None = Field(None, description="Present if suspended.")
    account_permanently_disabled: PermanentDisable | None = Field(None, description="Present if disabled for good.")
    ip_events: list[IpEvent] = Field(default_factory=list, description="IP addresses seen for the account.")
    devices: list[DeviceInfo] = Field(default_factory=list, description="Device identifiers seen for it.")
    prior_report_ids: list[ReportId] = Field(default_factory=list, description="Earlier CyberTip report ids.")
    additional_info: XmlStr | None = Field(None, description="Anything else about this account.")

    @model_validator(mode="after")
    def _third_party_needs_platform(self) -> AssociatedAccountInfo:
        # NCMEC carries the flag as an attribute of <platform>; without a platform it would be dropped.
        if self.third_party_platform is not None and self.platform is None:
            raise PydanticCustomError("third_party_without_platform", "third_party_platform needs platform")
        return self


# ------------------------------------------------------------------------------------------- people


class _AccountHolder(_Model):
    """Fields every account-holding person shares: reported user, victim and intended recipient."""

    person: PersonInfo | None = Field(None, description="Real-world identity, as far as the platform knows it.")
    emails: list[EmailInfo] = Field(default_factory=list, description="Email addresses on the account.")
    phones: list[PhoneInfo] = Field(default_factory=list, description="Phone numbers on the account.")
    esp_service: Str100 | None = Field(
        None, description="Product or service of the platform the account is on (at most 100 characters)."
    )
    screen_name: Str256 | None = Field(None, description="Handle or username (at most 256 characters).")
    display_names: list[XmlStr] = Field(default_factory=list, description="Display names, current and past.")
    profile_urls: list[Url] = Field(default_factory=list, description="Profile URLs (no whitespace).")
    profile_bio: XmlStr | None = Field(None, description="Profile text.")
    ip_events: list[IpEvent] = Field(default_factory=list, description="IP addresses the account was seen at.")
    devices: list[DeviceInfo] = Field(default_factory=list, description="Device identifiers seen for the account.")
    estimated_location: EstimatedLocationInfo | None = Field(None, description="Where the user probably is.")
    account_temporarily_disabled: TemporaryDisable | None = Field(None, description="Present if suspended.")
    account_permanently_disabled: PermanentDisable | None = Field(None, description="Present if disabled for good.")
    compromised_account: bool | None = Field(None, description="Whether the account is believed compromised.")
    all_emails_reported: bool | None = Field(None, description="Whether every email of the account is listed.")
    additional_info: XmlStr | None = Field(None, description="Anything else NCMEC should know about this person.")


class UserMetadata(_AccountHolder):
    """Everything the platform knows about a user: sent with content, and again by the enrichment callback.

    Every field is optional; the platform's id for the user travels separately (it identifies the case).
    """

    group_identifier: Str255 | None = Field(None, description="Group or community id involved (at most 255).")
    associated_accounts: list[AssociatedAccountInfo] = Field(
        default_factory=list, description="Other accounts tied to this user."
    )


class VictimInfo(_AccountHolder):
    """A child the reviewer identified as a victim; the platform's own ids for them if they have an account."""

    esp_identifier: Str255 | None = Field(None, description="The platform's id for the victim's account.")
    school_name: Str255 | None = Field(None, description="School the victim attends (at most 255 characters).")
    prior_report_ids: list[ReportId] = Field(default_factory=list, description="Earlier CyberTip report ids.")
    associated_accounts: list[AssociatedAccountInfo] = Field(
        default_factory=list, description="Other accounts tied to the victim (e.g. a parent's)."
    )


class IntendedRecipientInfo(_AccountHolder):
    """The person the reported content was sent to, when it was sent to someone."""

    esp_identifier: Str255 | None = Field(None, description="The platform's id for the recipient's account.")
    group_identifier: Str255 | None = Field(None, description="Group or community id involved (at most 255).")
    prior_report_ids: list[ReportId] = Field(default_factory=list, description="Earlier CyberTip report ids.")


# ---------------------------------------------------------------------------------------------- files


class FileMetadata(_Model):
    """What the platform knows about one uploaded file."""

    original_file_name: Str2056 | None = Field(None, description="Name of the file when the user uploaded it.")
    uploaded_at: Timestamp | None = Field(None, description="When it was uploaded (ISO 8601 with offset).")
    location_url: Url2083 | None = Field(None, description="URL where the file was available (no whitespace).")
    publicly_available: bool | None = Field(None, description="Whether anyone could access it.")
    upload_ip: IpAddress | None = Field(None, description="IPv4 or IPv6 address it was uploaded from.")
    upload_port: Port | None = Field(None, description="Source port of the upload (1-65535).")
    devices: list[DeviceInfo] = Field(default_factory=list, description="Device identifiers of the upload.")
    exif: dict[NonBlank64, XmlStr] = Field(
        default_factory=dict, description="EXIF tags as name to value; names at most 64 characters."
    )
    additional_info: list[XmlStr] = Field(default_factory=list, description="Free-text notes about the file.")

    @model_validator(mode="after")
    def _port_needs_address(self) -> FileMetadata:
        if self.upload_port is not None and self.upload_ip is None:
            raise PydanticCustomError("port_without_ip", "upload_port needs upload_ip")
        return self


# -------------------------------------------------------------------------------------------- merging

M = TypeVar("M", bound=BaseModel)

# One observation, not a set of facts: a newer location replaces the older one instead of mixing with it.
_REPLACED_WHOLE = frozenset({"estimated_location"})


def merge_user_metadata(base: UserMetadata, update: UserMetadata) -> UserMetadata:
    """Combine metadata sent with content and metadata from a later enrichment callback.

    A value in ``update`` wins over ``base``; a value ``update`` leaves out (None) keeps ``base``'s, so a
    partial enrichment never erases what was known. Lists are unioned in order, base first. Emails
    (case-insensitively) and phones (number and extension) that appear in both are merged into one
    entry; other list items are duplicates only when equal.
    """
    return _merge(base, update)


def _merge(base: M, update: M) -> M:
    values: dict[str, Any] = {}
    for name in type(base).model_fields:
        old, new = getattr(base, name), getattr(update, name)
        if new is None or (old is None or name in _REPLACED_WHOLE):
            values[name] = old if new is None else new
        elif isinstance(old, BaseModel):
            values[name] = _merge(old, new)
        elif isinstance(old, list):
            values[name] = _union(old, new)
        elif isinstance(old, dict):
            values[name] = {**old, **new}
        else:
            values[name] = new
    return type(base).model_validate(values)


def _union(base: list[Any], update: list[Any]) -> list[Any]:
    merged = list(base)
    for item in update:
        key = _identity(item)
        for index, existing in enumerate(merged):
            if _identity(existing) == key:
                if isinstance(item, BaseModel):
                    merged[index] = _merge(existing, item)
                break
        else:
            merged.append(item)
    return merged


def _identity(item: Any) -> Any:
    if isinstance(item, EmailInfo):
        return ("email", item.value.casefold())
    if isinstance(item, PhoneInfo):
        return ("phone", item.value, item.extension)
    return item
