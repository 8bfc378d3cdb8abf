"""Platform metadata mapped onto NCMEC's report model: schema-valid, and nothing the platform sent is lost.

All people, accounts and addresses are invented; emails use example.com, IPs documentation ranges.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from cybertipline.enums import (
    COUNTRY_CODES,
    US_STATE_CODES,
    AddressType,
    AssociatedAccountType,
    EmailType,
    IpEventName,
    PhoneType,
)
from cybertipline.report_xml import file_details_to_xml, parse_file_details, parse_report, report_to_xml
from cybertipline.xsd import load_schema, schema_errors
from models.platform_metadata import FileMetadata, IntendedRecipientInfo, UserMetadata, VictimInfo
from models.reported_user import file_metadata_fields, intended_recipient_block, reported_user_block, victim_block
from tests.metadata_fixtures import (
    assert_all_supplied_values_present,
    full_file,
    full_recipient,
    full_user,
    full_victim,
    xml_values,
)

XSD_PATH = Path(__file__).resolve().parents[1] / ".." / "shared" / "ncmec" / "cyber_tipline.xsd"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EST = timezone(timedelta(hours=-5))
IST = timezone(timedelta(hours=5, minutes=30))


def schema() -> etree.XMLSchema:
    assert XSD_PATH.exists(), f"NCMEC's XSD is expected at {XSD_PATH}"
    return load_schema(XSD_PATH.resolve())


def report_xml(**blocks: Any) -> bytes:
    report = parse_report({
        "incident_summary": {
            "incident_type": "Child Pornography (possession, manufacture, and distribution)",
            "incident_date_time": datetime(2025, 5, 1, 9, 0, tzinfo=UTC),
        },
        "reporter": {"reporting_person": {"email": ["trust-safety@example.com"]}},
        **blocks,
    }, now=NOW)
    return report_to_xml(report, now=NOW)


def file_xml(fields: dict[str, Any]) -> bytes:
    return file_details_to_xml(parse_file_details({"report_id": 4564654, "file_id": "b0754af7", **fields}))


def assert_valid(xml: bytes) -> None:
    assert schema_errors(xml, schema()) == [], xml.decode()


def test_full_reported_user_is_schema_valid_and_loses_nothing() -> None:
    user = full_user()
    block = reported_user_block("user-123", user, [7855778, 250799407], "Example Platform")
    xml = report_xml(person_or_user_reported=[block])
    assert_valid(xml)
    assert_all_supplied_values_present(user, xml)
    values = xml_values(xml)
    assert {"user-123", "7855778", "250799407"} <= values


def test_reported_user_elements_land_where_ncmec_expects_them() -> None:
    xml = report_xml(person_or_user_reported=[reported_user_block("user-123", full_user(), [5], None)])
    root = etree.fromstring(xml)
    user = root.find("personOrUserReported")
    assert user.findtext("espIdentifier") == "user-123"
    assert user.findtext("espService") == "user Chat"  # the metadata's own service wins over the default
    person = user.find("personOrUserReportedPerson")
    assert [e.text for e in person.findall("email")] == ["user.one@example.com", "user.two@example.com"]
    assert person.find("email").get("type") == "Recovery"
    assert person.find("phone").get("countryCallingCode") == "+1"
    assert person.findtext("age") == "34" and person.findtext("dateOfBirth") == "1990-07-14"
    assert [a.findtext("address") for a in person.findall("address")] == ["1 Sample Street", "2 Sample Street"]
    events = user.findall("ipCaptureEvent")
    assert [(e.findtext("ipAddress"), e.findtext("eventName")) for e in events] == [
        ("192.0.2.10", "Login"), ("2001:db8::10", "Upload")]
    assert events[0].findtext("port") == "51234" and events[0].findtext("possibleProxy") == "true"
    assert [d.findtext("idValue") for d in user.findall("deviceId")] == ["user-3569", "user-3570"]
    assert user.findtext("priorCTReports") == "5"
    assert user.findtext("groupIdentifier") == "group-77"
    temporarily = user.find("accountTemporarilyDisabled")
    assert temporarily.text == "true" and temporarily.get("reenabledDate") == "2024-05-08T08:00:00-05:00"
    assert temporarily.get("userNotified") == "true"
    permanently = user.find("accountPermanentlyDisabled")
    assert permanently.text == "true" and permanently.get("reenabledDate") is None
    location = user.find("estimatedLocation")
    assert location.get("verified") == "false" and location.findtext("countryCode") == "FR"
    assert user.findtext("allEmailsReported") == "true"
    accounts = user.findall("associatedAccount")
    assert [a.get("type") for a in accounts] == ["Parent/Guardian", "Parent/Guardian"]
    assert accounts[0].find("platform").get("thirdPartyUser") == "true"
    assert [p.text for p in accounts[0].findall("priorCTReport")] == ["111", "222"]
    assert user.findtext("additionalInfo") == "user notes"


def test_minimal_reported_user_is_just_the_identifier() -> None:
    block = reported_user_block("user-1", None, [], None)
    assert block == {"esp_identifier": "user-1"}
    assert_valid(report_xml(person_or_user_reported=[block]))


def test_default_service_and_prior_reports_are_used_and_deduplicated() -> None:
    block = reported_user_block("user-1", UserMetadata(screen_name="sam"), [9, 8, 9], "Example Platform")
    assert block["esp_service"] == "Example Platform"
    assert block["prior_ct_reports"] == [9, 8]
    assert_valid(report_xml(person_or_user_reported=[block]))


def test_emails_alone_make_a_person_block() -> None:
    block = reported_user_block("user-1", UserMetadata(emails=[{"value": "sam@example.com"}]), [], None)
    assert block["person_or_user_reported_person"] == {"email": [{"value": "sam@example.com"}]}


# ------------------------------------------------------------------------------ victim, recipient


def test_full_victim_is_schema_valid_and_loses_nothing() -> None:
    victim = full_victim()
    xml = report_xml(victim=[victim_block(victim)])
    assert_valid(xml)
    assert_all_supplied_values_present(victim, xml)
    assert etree.fromstring(xml).find("victim").findtext("schoolName") == "Example Middle School"


def test_empty_victim_still_has_the_required_person() -> None:
    block = victim_block(VictimInfo(screen_name="kid_1"))
    assert block["victim_person"] == {}
    xml = report_xml(victim=[block])
    assert_valid(xml)
    assert etree.fromstring(xml).find("victim/victimPerson") is not None


def test_full_intended_recipient_is_schema_valid_and_loses_nothing() -> None:
    recipient = full_recipient()
    xml = report_xml(intended_recipient=[intended_recipient_block(recipient)])
    assert_valid(xml)
    assert_all_supplied_values_present(recipient, xml)
    assert etree.fromstring(xml).find("intendedRecipient").findtext("additionalInfo") == "recipient notes"


def test_all_three_blocks_in_one_report() -> None:
    xml = report_xml(
        person_or_user_reported=[reported_user_block("user-123", full_user(), [1], "Example Platform")],
        intended_recipient=[intended_recipient_block(full_recipient())],
        victim=[victim_block(full_victim())],
    )
    assert_valid(xml)


# ------------------------------------------------------------------------------------------ files


def test_full_file_metadata_is_schema_valid_and_loses_nothing() -> None:
    meta = full_file()
    fields = file_metadata_fields(meta)
    xml = file_xml(fields)
    assert_valid(xml)
    assert_all_supplied_values_present(meta, xml)
    root = etree.fromstring(xml)
    upload = root.find("ipCaptureEvent")
    assert upload.findtext("ipAddress") == "2001:db8::42"
    assert upload.findtext("eventName") == "Upload"
    assert upload.findtext("dateTime") == "2024-07-01T15:30:00-05:00"
    assert upload.findtext("port") == "44321"
    details = root.find("details")
    assert details.get("type") == "EXIF"
    pairs = [(p.findtext("name"), p.findtext("value")) for p in details.findall("nameValuePair")]
    assert pairs == list(meta.exif.items())
    assert [a.text for a in root.findall("additionalInfo")] == ["re-uploaded twice", "caption: <none>"]


def test_file_metadata_fields_of_nothing() -> None:
    assert file_metadata_fields(None) == {}
    assert file_metadata_fields(FileMetadata()) == {}
    assert_valid(file_xml(file_metadata_fields(FileMetadata())))


def test_file_without_upload_ip_has_no_capture_event() -> None:
    fields = file_metadata_fields(FileMetadata(uploaded_at=datetime(2024, 7, 1, tzinfo=UTC)))
    assert "ip_capture_event" not in fields
    assert_valid(file_xml(fields))


# ------------------------------------------------------------------------- property: always valid

# Characters XML can carry and NCMEC's models accept: no controls, surrogates or noncharacters.
TEXT_CHARS = st.characters(exclude_categories=("Cs", "Cc", "Cn"), include_characters="\t\n")
URL_CHARS = st.characters(exclude_categories=("Cs", "Cc", "Cn", "Zs", "Zl", "Zp"), exclude_characters="\x85")
times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1),
                     timezones=st.sampled_from([UTC, EST, IST, timezone(timedelta(hours=14))]))


def text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(TEXT_CHARS, max_size=max_size)


def non_blank(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(TEXT_CHARS, min_size=1, max_size=max_size).filter(str.strip)


def at_most(limit: int) -> st.SearchStrategy[str]:
    # Mostly short values, sometimes ones exactly at NCMEC's limit.
    return st.one_of(text(20), st.text(TEXT_CHARS, min_size=limit, max_size=limit))


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


urls = st.builds(lambda path: "https://example.com/" + path, st.text(URL_CHARS, max_size=30))
emails_ = st.lists(st.fixed_dictionaries({"value": non_blank(255).map(lambda s: s[:255])}, optional={
    "type": st.sampled_from(EmailType), "verified": st.booleans(), "verification_date": times}), max_size=2)
phones_ = st.lists(st.fixed_dictionaries({"value": non_blank(50)}, optional={
    "type": st.sampled_from(PhoneType), "country_calling_code": st.from_regex(r"\+[0-9]{1,3}", fullmatch=True),
    "extension": st.from_regex(r"[0-9]{1,10}", fullmatch=True), "verified": st.booleans(),
    "verification_date": times}), max_size=2)
addresses_ = st.lists(optional(
    type=st.sampled_from(AddressType), address=at_most(255), city=at_most(100), zip_code=text(20),
    state=st.sampled_from(US_STATE_CODES), non_usa_state=at_most(100), country=st.sampled_from(COUNTRY_CODES),
), max_size=2)
ip_events_ = st.lists(st.fixed_dictionaries({"ip_address": st.ip_addresses().map(str)}, optional={
    "event": st.sampled_from(IpEventName), "at": times, "port": st.integers(1, 65535),
    "possible_proxy": st.booleans()}), max_size=2)
devices_ = st.lists(st.fixed_dictionaries({"id_type": non_blank(), "id_value": non_blank()}, optional={
    "event": st.sampled_from(IpEventName), "at": times}), max_size=2)
disable_ = optional(disabled_at=times, user_notified=st.booleans(), user_notified_at=times)
temporary_ = optional(disabled_at=times, user_notified=st.booleans(), user_notified_at=times, reenabled_at=times)
report_ids = st.lists(st.integers(1, 2**63 - 1), max_size=2)
associated_ = st.lists(st.fixed_dictionaries({"type": st.sampled_from(AssociatedAccountType)}, optional={
    "platform": at_most(256), "first_name": at_most(256), "middle_name": text(), "last_name": text(),
    "approximate_age": st.integers(0, 150), "date_of_birth": st.dates(), "phones": phones_, "emails": emails_,
    "all_emails_reported": st.booleans(), "addresses": addresses_, "esp_service": at_most(256),
    "esp_identifier": text(), "profile_urls": st.lists(urls, max_size=2), "screen_name": at_most(256),
    "display_names": st.lists(at_most(256), max_size=2), "profile_bio": text(), "group_identifier": text(),
    "compromised_account": st.booleans(), "account_temporarily_disabled": temporary_,
    "account_permanently_disabled": disable_, "ip_events": ip_events_, "devices": devices_,
    "prior_report_ids": report_ids, "additional_info": text(),
}), max_size=2)
holder_fields = {
    "person": optional(first_name=at_most(100), last_name=text(), age=st.integers(0, 150),
                       date_of_birth=st.dates(), addresses=addresses_),
    "emails": emails_, "phones": phones_, "esp_service": at_most(100), "screen_name": at_most(256),
    "display_names": st.lists(text(), max_size=2), "profile_urls": st.lists(urls, max_size=2),
    "profile_bio": text(), "ip_events": ip_events_, "devices": devices_,
    "estimated_location": optional(city=at_most(100), region=text(), country_code=st.sampled_from(COUNTRY_CODES),
                                   verified=st.booleans(), observed_at=times),
    "account_temporarily_disabled": temporary_, "account_permanently_disabled": disable_,
    "compromised_account": st.booleans(), "all_emails_reported": st.booleans(), "additional_info": text(),
}
users = st.fixed_dictionaries({}, optional={
    **holder_fields, "group_identifier": at_most(255), "associated_accounts": associated_,
}).map(UserMetadata.model_validate)
victims = st.fixed_dictionaries({}, optional={
    **holder_fields, "esp_identifier": at_most(255), "school_name": at_most(255), "prior_report_ids": report_ids,
    "associated_accounts": associated_,
}).map(VictimInfo.model_validate)
recipients = st.fixed_dictionaries({}, optional={
    **holder_fields, "esp_identifier": at_most(255), "group_identifier": at_most(255),
    "prior_report_ids": report_ids,
}).map(IntendedRecipientInfo.model_validate)
files = st.fixed_dictionaries({}, optional={
    "original_file_name": at_most(2056), "uploaded_at": times, "location_url": urls,
    "publicly_available": st.booleans(), "upload_ip": st.ip_addresses().map(str),
    "devices": devices_, "exif": st.dictionaries(non_blank(64), text(), max_size=3),
    "additional_info": st.lists(text(), max_size=2),
}).map(FileMetadata.model_validate)

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(user=users, esp_identifier=at_most(255), prior=report_ids, service=st.none() | at_most(100))
def test_any_user_metadata_yields_a_schema_valid_report(
    user: UserMetadata, esp_identifier: str, prior: list[int], service: str | None
) -> None:
    xml = report_xml(person_or_user_reported=[reported_user_block(esp_identifier, user, prior, service)])
    assert_valid(xml)
    assert_all_supplied_values_present(user, xml)


@PROPERTY
@given(victim=victims, recipient=recipients)
def test_any_victim_and_recipient_yield_a_schema_valid_report(
    victim: VictimInfo, recipient: IntendedRecipientInfo
) -> None:
    xml = report_xml(victim=[victim_block(victim)], intended_recipient=[intended_recipient_block(recipient)])
    assert_valid(xml)
    assert_all_supplied_values_present(victim, xml)
    assert_all_supplied_values_present(recipient, xml)


@PROPERTY
@given(meta=files)
def test_any_file_metadata_yields_schema_valid_file_details(meta: FileMetadata) -> None:
    xml = file_xml(file_metadata_fields(meta))
    assert_valid(xml)
    assert_all_supplied_values_present(meta, xml)
