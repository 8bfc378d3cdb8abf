"""The platform-facing metadata models: NCMEC's limits enforced on arrival, with the field named; merging.

Synthetic data only: example.com emails, documentation IP ranges, invented people.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from models.platform_metadata import (
    AssociatedAccountInfo,
    FileMetadata,
    IntendedRecipientInfo,
    UserMetadata,
    VictimInfo,
    merge_user_metadata,
)

T1 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2024, 3, 2, 12, 0, tzinfo=timezone(timedelta(hours=-5)))


def refused_at(model: type, data: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [error["loc"] for error in caught.value.errors()]


# ----------------------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"screen_name": "x" * 257}, ("screen_name",)),
        ({"esp_service": "x" * 101}, ("esp_service",)),
        ({"group_identifier": "x" * 256}, ("group_identifier",)),
        ({"emails": [{"value": "a" * 244 + "@example.com"}]}, ("emails", 0, "value")),
        ({"emails": [{"value": "  "}]}, ("emails", 0, "value")),
        ({"phones": [{"value": "1" * 51}]}, ("phones", 0, "value")),
        ({"phones": [{"value": "202-555-0100", "extension": "1" * 11}]}, ("phones", 0, "extension")),
        ({"phones": [{"value": "202-555-0100", "country_calling_code": "1"}]}, ("phones", 0, "country_calling_code")),
        ({"phones": [{"value": "202-555-0100", "type": "Pager"}]}, ("phones", 0, "type")),
        ({"ip_events": [{"ip_address": "192.0.2.300"}]}, ("ip_events", 0, "ip_address")),
        ({"ip_events": [{"ip_address": "192.0.2.1", "port": 0}]}, ("ip_events", 0, "port")),
        ({"ip_events": [{"ip_address": "192.0.2.1", "port": 65536}]}, ("ip_events", 0, "port")),
        ({"ip_events": [{"ip_address": "192.0.2.1", "event": "Logout"}]}, ("ip_events", 0, "event")),
        ({"ip_events": [{"ip_address": "192.0.2.1", "at": "2024-03-01T12:00:00"}]}, ("ip_events", 0, "at")),
        ({"devices": [{"id_type": "x" * 256, "id_value": "1"}]}, ("devices", 0, "id_type")),
        ({"devices": [{"id_type": "IMEI", "id_value": "1" * 2084}]}, ("devices", 0, "id_value")),
        ({"estimated_location": {"country_code": "USA"}}, ("estimated_location", "country_code")),
        ({"estimated_location": {"city": "x" * 101}}, ("estimated_location", "city")),
        ({"profile_urls": ["https://example.com/a b"]}, ("profile_urls", 0)),
        ({"profile_bio": "bell \x07"}, ("profile_bio",)),
        ({"person": {"age": 151}}, ("person", "age")),
        ({"person": {"first_name": "x" * 101}}, ("person", "first_name")),
        ({"person": {"addresses": [{"zip_code": "1" * 21}]}}, ("person", "addresses", 0, "zip_code")),
        ({"person": {"addresses": [{"state": "ZZ"}]}}, ("person", "addresses", 0, "state")),
        ({"account_permanently_disabled": {"reenabled_at": "2024-03-01T12:00:00Z"}},
         ("account_permanently_disabled", "reenabled_at")),
        ({"associated_accounts": [{"platform": "Example Pay"}]}, ("associated_accounts", 0, "type")),
        ({"associated_accounts": [{"type": "Sibling"}]}, ("associated_accounts", 0, "type")),
        ({"associated_accounts": [{"type": "Other", "screen_name": "x" * 257}]},
         ("associated_accounts", 0, "screen_name")),
        ({"associated_accounts": [{"type": "Other", "prior_report_ids": [0]}]},
         ("associated_accounts", 0, "prior_report_ids", 0)),
        ({"nickname": "sam"}, ("nickname",)),
    ],
)
def test_user_metadata_refuses_what_ncmec_would_refuse_naming_the_field(data: dict[str, Any], loc: tuple) -> None:
    assert loc in refused_at(UserMetadata, data)


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"original_file_name": "x" * 2057}, ("original_file_name",)),
        ({"location_url": "https://example.com/" + "x" * 2064}, ("location_url",)),
        ({"location_url": "https://example.com/a\tb"}, ("location_url",)),
        ({"upload_ip": "not-an-ip"}, ("upload_ip",)),
        ({"uploaded_at": "2024-03-01T12:00:00"}, ("uploaded_at",)),
        ({"exif": {"x" * 65: "1"}}, ("exif", "x" * 65, "[key]")),
        ({"exif": {"Make": "\x00"}}, ("exif", "Make")),
    ],
)
def test_file_metadata_refuses_what_ncmec_would_refuse(data: dict[str, Any], loc: tuple) -> None:
    assert loc in refused_at(FileMetadata, data)


def test_port_without_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="upload_port needs upload_ip"):
        FileMetadata(upload_port=443)


def test_third_party_flag_needs_a_platform() -> None:
    with pytest.raises(ValidationError, match="third_party_platform needs platform"):
        AssociatedAccountInfo(type="Linked", third_party_platform=True)


def test_values_at_the_limits_are_accepted() -> None:
    user = UserMetadata.model_validate({
        "screen_name": "x" * 256, "esp_service": "x" * 100, "group_identifier": "x" * 255,
        "emails": [{"value": "a" * 243 + "@example.com"}],
        "phones": [{"value": "1" * 50, "extension": "1" * 10, "country_calling_code": "+999"}],
        "ip_events": [{"ip_address": "192.0.2.1", "port": 65535}, {"ip_address": "2001:db8::1", "port": 1}],
        "person": {"age": 150, "first_name": "x" * 100, "addresses": [{"zip_code": "1" * 20}]},
    })
    assert user.screen_name == "x" * 256


def test_normalisations() -> None:
    user = UserMetadata.model_validate({
        "ip_events": [{"ip_address": " 2001:DB8:0:0::1 "}],
        "estimated_location": {"country_code": "fr"},
        "person": {"addresses": [{"state": "ny", "country": "us"}]},
    })
    assert user.ip_events[0].ip_address == "2001:db8::1"
    assert user.estimated_location.country_code == "FR"
    assert (user.person.addresses[0].state, user.person.addresses[0].country) == ("NY", "US")


def test_times_keep_their_offset() -> None:
    user = UserMetadata.model_validate({"ip_events": [{"ip_address": "192.0.2.1", "at": "2024-03-01T07:00:00-05:00"}]})
    assert user.ip_events[0].at.isoformat() == "2024-03-01T07:00:00-05:00"


def test_models_are_frozen() -> None:
    user = UserMetadata(screen_name="sam")
    with pytest.raises(ValidationError):
        user.screen_name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("model", [UserMetadata, FileMetadata, VictimInfo, IntendedRecipientInfo])
def test_every_field_is_optional_and_described(model: type) -> None:
    model()  # nothing is required
    schema = model.model_json_schema()
    undescribed = [name for name, prop in schema["properties"].items() if not prop.get("description")]
    assert undescribed == []
    for name, definition in schema.get("$defs", {}).items():
        missing = [field for field, prop in definition.get("properties", {}).items() if not prop.get("description")]
        assert missing == [], name


def test_victim_and_recipient_have_their_own_fields() -> None:
    victim = VictimInfo(school_name="Example Middle School", esp_identifier="v-1", prior_report_ids=[3])
    assert victim.school_name == "Example Middle School"
    recipient = IntendedRecipientInfo(group_identifier="g-1", esp_identifier="r-1")
    assert recipient.group_identifier == "g-1"
    assert "group_identifier" in refused_at(VictimInfo, {"group_identifier": "g-1"})[0]
    assert "school_name" in refused_at(IntendedRecipientInfo, {"school_name": "x"})[0]


# ---------------------------------------------------------------------------------------- merging


def test_later_scalars_win_and_missing_ones_keep_the_earlier_value() -> None:
    base = UserMetadata(screen_name="sam_old", profile_bio="bio", compromised_account=False)
    update = UserMetadata(screen_name="sam_new", compromised_account=True)
    merged = merge_user_metadata(base, update)
    assert merged.screen_name == "sam_new"
    assert merged.profile_bio == "bio"
    assert merged.compromised_account is True


def test_lists_are_unioned_in_order_without_duplicates() -> None:
    base = UserMetadata(
        display_names=["Sam", "Sammy"],
        profile_urls=["https://example.com/u/sam"],
        ip_events=[{"ip_address": "192.0.2.1", "at": T1}, {"ip_address": "192.0.2.2"}],
    )
    update = UserMetadata(
        display_names=["Sammy", "S."],
        profile_urls=["https://example.com/u/sam", "https://example.com/u/sam2"],
        ip_events=[{"ip_address": "192.0.2.2"}, {"ip_address": "192.0.2.1", "at": T2}],
    )
    merged = merge_user_metadata(base, update)
    assert merged.display_names == ["Sam", "Sammy", "S."]
    assert merged.profile_urls == ["https://example.com/u/sam", "https://example.com/u/sam2"]
    # The same address at another time is another event: both are kept.
    assert [(e.ip_address, e.at) for e in merged.ip_events] == [
        ("192.0.2.1", T1), ("192.0.2.2", None), ("192.0.2.1", T2)]


def test_the_same_email_or_phone_merges_into_one_entry() -> None:
    base = UserMetadata(
        emails=[{"value": "Sam@Example.com", "verified": True, "verification_date": T1}],
        phones=[{"value": "202-555-0100", "type": "Mobile"}],
    )
    update = UserMetadata(
        emails=[{"value": "sam@example.com", "type": "Recovery"}, {"value": "other@example.com"}],
        phones=[{"value": "202-555-0100", "country_calling_code": "+1"}, {"value": "202-555-0100", "extension": "7"}],
    )
    merged = merge_user_metadata(base, update)
    assert [(e.value, e.type, e.verified, e.verification_date) for e in merged.emails] == [
        ("sam@example.com", "Recovery", True, T1), ("other@example.com", None, None, None)]
    assert [(p.value, p.type, p.country_calling_code, p.extension) for p in merged.phones] == [
        ("202-555-0100", "Mobile", "+1", None), ("202-555-0100", None, None, "7")]


def test_nested_blocks_merge_field_by_field_but_a_location_is_replaced_whole() -> None:
    base = UserMetadata(
        person={"first_name": "Sam", "age": 30, "addresses": [{"city": "Springfield"}]},
        account_temporarily_disabled={"disabled_at": T1, "user_notified": True},
        estimated_location={"city": "Lyon", "country_code": "FR"},
    )
    update = UserMetadata(
        person={"last_name": "Doe", "age": 31, "addresses": [{"city": "Shelbyville"}]},
        account_temporarily_disabled={"reenabled_at": T2},
        estimated_location={"country_code": "BE"},
    )
    merged = merge_user_metadata(base, update)
    assert (merged.person.first_name, merged.person.last_name, merged.person.age) == ("Sam", "Doe", 31)
    assert [a.city for a in merged.person.addresses] == ["Springfield", "Shelbyville"]
    disabled = merged.account_temporarily_disabled
    assert (disabled.disabled_at, disabled.user_notified, disabled.reenabled_at) == (T1, True, T2)
    assert (merged.estimated_location.city, merged.estimated_location.country_code) == (None, "BE")


def test_merge_with_empty_is_identity_and_merging_twice_changes_nothing() -> None:
    user = UserMetadata.model_validate({
        "screen_name": "sam", "emails": [{"value": "sam@example.com"}],
        "associated_accounts": [{"type": "Billing", "platform": "Example Pay", "emails": [{"value": "b@example.com"}]}],
        "person": {"date_of_birth": date(2010, 1, 1)},
    })
    assert merge_user_metadata(user, UserMetadata()) == user
    assert merge_user_metadata(UserMetadata(), user) == user
    assert merge_user_metadata(user, user) == user
    assert isinstance(merge_user_metadata(user, user), UserMetadata)
