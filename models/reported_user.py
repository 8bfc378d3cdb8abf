"""Platform metadata (``models.platform_metadata``) mapped onto NCMEC's report model.

Pure functions returning dicts for ``cybertipline.report_xml.parse_report`` / ``parse_file_details``,
keyed by the report model's snake_case field names. The rule is "send every identifier we have": an
analyst or investigator can act on an IP event or a recovery email, never on what we left out.
Unset values are omitted rather than sent empty, so the dicts stay readable in logs and tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cybertipline.enums import DetailsType, IpEventName
from models.platform_metadata import (
    AddressInfo,
    AssociatedAccountInfo,
    DeviceInfo,
    EmailInfo,
    EstimatedLocationInfo,
    FileMetadata,
    IntendedRecipientInfo,
    IpEvent,
    PermanentDisable,
    PersonInfo,
    PhoneInfo,
    TemporaryDisable,
    UserMetadata,
    VictimInfo,
)

__all__ = ["file_metadata_fields", "intended_recipient_block", "reported_user_block", "victim_block"]


def reported_user_block(
    esp_identifier: str,
    user: UserMetadata | None,
    prior_report_ids: list[int],
    esp_service: str | None,
) -> dict[str, Any]:
    """A ``personOrUserReported`` entry.

    ``esp_service`` is the default (usually the org's platform name); a service named in the user's own
    metadata is more specific and wins. ``prior_report_ids`` are the CyberTips earlier cases of this
    user filed, which NCMEC uses to link follow-up reports.
    """
    user = user or UserMetadata()
    return _compact({
        "person_or_user_reported_person": _person(user.person, user.emails, user.phones),
        "esp_identifier": esp_identifier,
        **_holder_fields(user),
        "esp_service": user.esp_service if user.esp_service is not None else esp_service,
        "prior_ct_reports": _unique(prior_report_ids),
        "group_identifier": user.group_identifier,
        "associated_account": [_associated_account(a) for a in user.associated_accounts],
    })


def victim_block(victim: VictimInfo) -> dict[str, Any]:
    """A ``victim`` entry. NCMEC requires ``victimPerson``, so it is sent (possibly empty) in any case."""
    return _compact({
        "victim_person": _person(victim.person, victim.emails, victim.phones) or {},
        "esp_identifier": victim.esp_identifier,
        **_holder_fields(victim),
        "school_name": victim.school_name,
        "prior_ct_reports": _unique(victim.prior_report_ids),
        "associated_account": [_associated_account(a) for a in victim.associated_accounts],
    })


def intended_recipient_block(recipient: IntendedRecipientInfo) -> dict[str, Any]:
    """An ``intendedRecipient`` entry."""
    fields = _holder_fields(recipient)
    info = fields.pop("additional_info", None)
    return _compact({
        "intended_recipient_person": _person(recipient.person, recipient.emails, recipient.phones),
        "esp_identifier": recipient.esp_identifier,
        **fields,
        "prior_ct_reports": _unique(recipient.prior_report_ids),
        "group_identifier": recipient.group_identifier,
        "additional_info": [info] if info is not None else [],  # repeatable in intendedRecipient only
    })


def file_metadata_fields(meta: FileMetadata | None) -> dict[str, Any]:
    """The ``fileDetails`` fields the platform's file metadata fills; merge them into the fileinfo dict."""
    if meta is None:
        return {}
    upload = None
    if meta.upload_ip is not None:
        upload = _compact({
            "ip_address": meta.upload_ip,
            "event_name": IpEventName.UPLOAD,
            "date_time": meta.uploaded_at,
            "port": meta.upload_port,
        })
    exif = [{"name": name, "value": value} for name, value in meta.exif.items()]
    return _compact({
        "original_file_name": meta.original_file_name,
        "uploaded_to_esp_timestamp": meta.uploaded_at,
        "location_of_file": meta.location_url,
        "publicly_available": meta.publicly_available,
        "ip_capture_event": upload,
        "device_id": [_device(d) for d in meta.devices],
        "details": [{"type": DetailsType.EXIF, "name_value_pair": exif}] if exif else [],
        "additional_info": list(meta.additional_info),
    })


# ------------------------------------------------------------------------------------------ pieces


def _holder_fields(holder: UserMetadata | VictimInfo | IntendedRecipientInfo) -> dict[str, Any]:
    """Fields the three account-holder blocks share, under the same element names in each."""
    return {
        "esp_service": holder.esp_service,
        "compromised_account": holder.compromised_account,
        "screen_name": holder.screen_name,
        "display_name": list(holder.display_names),
        "profile_url": list(holder.profile_urls),
        "profile_bio": holder.profile_bio,
        "ip_capture_event": [_ip_event(e) for e in holder.ip_events],
        "device_id": [_device(d) for d in holder.devices],
        "account_temporarily_disabled": _temporarily_disabled(holder.account_temporarily_disabled),
        "account_permanently_disabled": _permanently_disabled(holder.account_permanently_disabled),
        "estimated_location": _location(holder.estimated_location),
        "all_emails_reported": holder.all_emails_reported,
        "additional_info": holder.additional_info,
    }


def _person(person: PersonInfo | None, emails: list[EmailInfo], phones: list[PhoneInfo]) -> dict[str, Any] | None:
    # NCMEC keeps emails and phones inside the person block, even for an otherwise anonymous account.
    person = person or PersonInfo()
    block = _compact({
        "first_name": person.first_name,
        "last_name": person.last_name,
        "phone": [_phone(p) for p in phones],
        "email": [_email(e) for e in emails],
        "address": [_address(a) for a in person.addresses],
        "age": person.age,
        "date_of_birth": person.date_of_birth,
    })
    return block or None


def _email(email: EmailInfo) -> dict[str, Any]:
    return _compact({
        "value": email.value,
        "type": email.type,
        "verified": email.verified,
        "verification_date": email.verification_date,
    })


def _phone(phone: PhoneInfo) -> dict[str, Any]:
    return _compact({
        "value": phone.value,
        "type": phone.type,
        "verified": phone.verified,
        "verification_date": phone.verification_date,
        "country_calling_code": phone.country_calling_code,
        "extension": phone.extension,
    })


def _address(address: AddressInfo) -> dict[str, Any]:
    return _compact(address.model_dump())  # same field names as the report model's Address


def _ip_event(event: IpEvent) -> dict[str, Any]:
    return _compact({
        "ip_address": event.ip_address,
        "event_name": event.event,
        "date_time": event.at,
        "possible_proxy": event.possible_proxy,
        "port": event.port,
    })


def _device(device: DeviceInfo) -> dict[str, Any]:
    return _compact({
        "id_type": device.id_type,
        "id_value": device.id_value,
        "event_name": device.event,
        "date_time": device.at,
    })


def _location(location: EstimatedLocationInfo | None) -> dict[str, Any] | None:
    if location is None:
        return None
    return _compact({
        "verified": location.verified,
        "timestamp": location.observed_at,
        "city": location.city,
        "region": location.region,
        "country_code": location.country_code,
    })


def _temporarily_disabled(state: TemporaryDisable | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return _compact({
        "value": True,
        "disabled_date": state.disabled_at,
        "user_notified": state.user_notified,
        "user_notified_date": state.user_notified_at,
        "reenabled_date": state.reenabled_at,
    })


def _permanently_disabled(state: PermanentDisable | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return _compact({
        "value": True,
        "disabled_date": state.disabled_at,
        "user_notified": state.user_notified,
        "user_notified_date": state.user_notified_at,
    })


def _associated_account(account: AssociatedAccountInfo) -> dict[str, Any]:
    platform = None
    if account.platform is not None:
        platform = _compact({"value": account.platform, "third_party_user": account.third_party_platform})
    return _compact({
        "type": account.type,
        "platform": platform,
        "first_name": account.first_name,
        "middle_name": account.middle_name,
        "last_name": account.last_name,
        "approximate_age": account.approximate_age,
        "date_of_birth": account.date_of_birth,
        "phone": [_phone(p) for p in account.phones],
        "email": [_email(e) for e in account.emails],
        "all_emails_reported": account.all_emails_reported,
        "address": [_address(a) for a in account.addresses],
        "esp_service": account.esp_service,
        "esp_identifier": account.esp_identifier,
        "profile_url": list(account.profile_urls),
        "screen_name": account.screen_name,
        "display_name": list(account.display_names),
        "profile_bio": account.profile_bio,
        "group_identifier": account.group_identifier,
        "compromised_account": account.compromised_account,
        "account_temporarily_disabled": _temporarily_disabled(account.account_temporarily_disabled),
        "account_permanently_disabled": _permanently_disabled(account.account_permanently_disabled),
        "ip_capture_event": [_ip_event(e) for e in account.ip_events],
        "device_id": [_device(d) for d in account.devices],
        "prior_ct_report": _unique(account.prior_report_ids),  # singular: the XSD's spelling here
        "additional_info": account.additional_info,
    })


def _unique(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(values))


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None and value != []}
