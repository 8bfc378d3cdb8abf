"""Fully populated, invented platform metadata, and a check that none of it is lost in the XML."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from lxml import etree

from cybertipline.enums import AddressType, AssociatedAccountType, EmailType, IpEventName, PhoneType
from models.platform_metadata import FileMetadata, IntendedRecipientInfo, UserMetadata, VictimInfo

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EST = timezone(timedelta(hours=-5))
IST = timezone(timedelta(hours=5, minutes=30))


def xml_values(xml: bytes) -> set[str]:
    """Every text and attribute value in the document."""
    values: set[str] = set()
    for node in etree.fromstring(xml).iter():
        if node.text is not None:
            values.add(node.text)
        values.update(node.attrib.values())
    return values


def supplied_values(model: Any) -> list[str]:
    """Every leaf value of a model as its XML lexical form (bools as true/false, times with offset)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(model, FileMetadata) and value is dumped and key == "exif":
                    for name, text in item.items():
                        walk(name)
                        walk(text)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, bool):
            found.append("true" if value else "false")
        elif isinstance(value, datetime | date):
            found.append(value.isoformat())
        elif isinstance(value, str) and value == "":
            return  # an empty element has no text node to find
        elif value is not None:
            found.append(str(getattr(value, "value", value)))

    dumped = model.model_dump()
    walk(dumped)
    return found


def assert_all_supplied_values_present(model: Any, xml: bytes) -> None:
    present = xml_values(xml)
    missing = [value for value in supplied_values(model) if value not in present]
    assert missing == [], f"lost in the XML: {missing}"


# ------------------------------------------------------------------------------------ full fixtures


def address(n: int) -> dict[str, Any]:
    return {
        "type": AddressType.HOME, "address": f"{n} Sample Street", "city": "Springfield", "zip_code": "62704",
        "state": "IL", "non_usa_state": "Sangamon County", "country": "US",
    }


def email(local: str) -> dict[str, Any]:
    return {"value": f"{local}@example.com", "type": EmailType.RECOVERY, "verified": True,
            "verification_date": datetime(2023, 1, 2, 3, 4, 5, tzinfo=EST)}


def phone(number: str) -> dict[str, Any]:
    return {"value": number, "type": PhoneType.MOBILE, "country_calling_code": "+1", "extension": "42",
            "verified": False, "verification_date": datetime(2023, 2, 3, 4, 5, 6, tzinfo=IST)}


def ip_event(ip: str, event: IpEventName) -> dict[str, Any]:
    return {"ip_address": ip, "event": event, "at": datetime(2024, 4, 5, 6, 7, 8, tzinfo=EST), "port": 51234,
            "possible_proxy": True}


def device(value: str) -> dict[str, Any]:
    return {"id_type": "IMEI", "id_value": value, "event": IpEventName.LOGIN,
            "at": datetime(2024, 4, 6, 7, 8, 9, tzinfo=IST)}


def disabled(temporarily: bool) -> dict[str, Any]:
    state = {"disabled_at": datetime(2024, 5, 1, 8, 0, tzinfo=EST), "user_notified": True,
             "user_notified_at": datetime(2024, 5, 1, 8, 5, tzinfo=EST)}
    if temporarily:
        state["reenabled_at"] = datetime(2024, 5, 8, 8, 0, tzinfo=EST)
    return state


def holder(prefix: str) -> dict[str, Any]:
    return {
        "person": {"first_name": f"{prefix}-Alex", "last_name": f"{prefix}-Doe", "age": 34,
                   "date_of_birth": date(1990, 7, 14), "addresses": [address(1), address(2)]},
        "emails": [email(f"{prefix}.one"), email(f"{prefix}.two")],
        "phones": [phone("202-555-0101"), phone("202-555-0102")],
        "esp_service": f"{prefix} Chat",
        "screen_name": f"{prefix}_handle",
        "display_names": [f"{prefix} Display", f"{prefix} Olden"],
        "profile_urls": [f"https://example.com/u/{prefix}", f"https://example.com/u/{prefix}-alt"],
        "profile_bio": f"{prefix} bio with <angle> & ampersand, ünïcödé",
        "ip_events": [ip_event("192.0.2.10", IpEventName.LOGIN), ip_event("2001:db8::10", IpEventName.UPLOAD)],
        "devices": [device(f"{prefix}-3569"), device(f"{prefix}-3570")],
        "estimated_location": {"city": "Lyon", "region": "Auvergne-Rhône-Alpes", "country_code": "FR",
                               "verified": False, "observed_at": datetime(2024, 6, 1, 10, 0, tzinfo=IST)},
        "account_temporarily_disabled": disabled(True),
        "account_permanently_disabled": disabled(False),
        "compromised_account": False,
        "all_emails_reported": True,
        "additional_info": f"{prefix} notes",
    }


def associated_account(prefix: str) -> dict[str, Any]:
    return {
        "type": AssociatedAccountType.PARENT_GUARDIAN, "platform": f"{prefix} Pay", "third_party_platform": True,
        "first_name": f"{prefix}-Sam", "middle_name": f"{prefix}-Q", "last_name": f"{prefix}-Roe",
        "approximate_age": 45, "date_of_birth": date(1979, 3, 3),
        "phones": [phone("202-555-0199")], "emails": [email(f"{prefix}.billing")], "all_emails_reported": False,
        "addresses": [address(9)], "esp_service": f"{prefix} Billing", "esp_identifier": f"{prefix}-acct-9",
        "profile_urls": [f"https://example.com/p/{prefix}"], "screen_name": f"{prefix}_parent",
        "display_names": [f"{prefix} Parent"], "profile_bio": f"{prefix} parent bio",
        "group_identifier": f"{prefix}-family", "compromised_account": True,
        "account_temporarily_disabled": disabled(True), "account_permanently_disabled": disabled(False),
        "ip_events": [ip_event("192.0.2.99", IpEventName.PURCHASE)], "devices": [device(f"{prefix}-ICCID")],
        "prior_report_ids": [111, 222], "additional_info": f"{prefix} linked via card",
    }


def full_user() -> UserMetadata:
    return UserMetadata.model_validate({
        **holder("user"),
        "group_identifier": "group-77",
        "associated_accounts": [associated_account("a1"), associated_account("a2")],
    })


def full_victim() -> VictimInfo:
    return VictimInfo.model_validate({
        **holder("victim"), "esp_identifier": "victim-1", "school_name": "Example Middle School",
        "prior_report_ids": [333], "associated_accounts": [associated_account("v1")],
    })


def full_recipient() -> IntendedRecipientInfo:
    return IntendedRecipientInfo.model_validate({
        **holder("recipient"), "esp_identifier": "recipient-1", "group_identifier": "group-88",
        "prior_report_ids": [444],
    })


def full_file() -> FileMetadata:
    return FileMetadata(
        original_file_name="holiday, 2024 (1).jpg",
        uploaded_at=datetime(2024, 7, 1, 15, 30, tzinfo=EST),
        location_url="https://cdn.example.com/m/abc123.jpg?size=orig",
        publicly_available=True,
        upload_ip="2001:db8::42",
        upload_port=44321,
        devices=[device("file-IMEI-1")],
        exif={"Make": "ExampleCam", "Model": "X-100", "DateTimeOriginal": "2024:07:01 15:29:58"},
        additional_info=["re-uploaded twice", "caption: <none>"],
    )


# ----------------------------------------------------------------------------------- reported user
