"""Property-based tests: any report the models accept serializes to XML that NCMEC's XSD accepts, and
inputs NCMEC would refuse are refused by ``parse_report``/the builder with the offending field named.

Strategies build plain dicts keyed by element names, the way an integration would feed ``parse_report``.
All data is synthetic: random text for names, ``example.com`` for every email and URL host.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from cybertipline import enums
from cybertipline.file_details_model import FileDetails
from cybertipline.report_model import Report
from cybertipline.report_xml import (
    ReportValidationError,
    file_details_to_xml,
    parse_file_details,
    parse_report,
    report_to_xml,
)
from cybertipline.xsd import schema_errors

from .conftest import ALL_FILE_ANNOTATIONS, require_schema

NOW = datetime(2025, 1, 1, tzinfo=UTC)
VALID = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INVALID = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Data = dict[str, Any]

# ----------------------------------------------------------------------------------------- scalars

# Everything XML 1.0 can carry: no C0 controls but tab/newline/CR, no surrogates, no U+FFFE/U+FFFF
# (unassigned, category Cn); C1 controls such as U+0085 are legal XML and included on purpose.
XML_CHAR = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")),
    st.sampled_from("\t\n\r\x85\x9f"),
)
URL_CHAR = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn", "Zs", "Zl", "Zp"))
FORBIDDEN_IN_XML = st.sampled_from("\x00\x01\x08\x0b\x0c\x1f\ufffe\uffff\ud800")
WHITESPACE = st.sampled_from(" \t\n\r\x0b\x0c\x85\xa0\u2028\u3000")


def text(limit: int = 2000, *, min_size: int = 0) -> st.SearchStrategy[str]:
    """Short text mostly, and sometimes exactly at the documented limit."""
    short = st.text(XML_CHAR, min_size=min_size, max_size=min(limit, 12))
    return st.one_of(short, st.text(XML_CHAR, min_size=limit, max_size=limit)) if limit <= 300 else short


def nonblank(limit: int = 2000) -> st.SearchStrategy[str]:
    return text(limit, min_size=1).filter(lambda value: value.strip() != "")


def prose() -> st.SearchStrategy[str]:
    """NCMEC's non-blank ≤3000 free text, including the 3000-character edge."""
    return st.one_of(nonblank(), st.just("x" * 2999 + "\n"), st.just("y" * 3000))


def url() -> st.SearchStrategy[str]:
    return st.builds(lambda path: f"https://example.com/{path}", st.text(URL_CHAR, max_size=30))


def email_address() -> st.SearchStrategy[str]:
    return st.from_regex(r"[a-z0-9._-]{1,30}", fullmatch=True).map(lambda local: f"{local}@example.com")


def choose(enum: type[enums.StrEnum]) -> st.SearchStrategy[str]:
    return st.sampled_from([member.value for member in enum])


ODD_OFFSETS = [
    UTC,
    timezone(timedelta(hours=5, minutes=45)),
    timezone(timedelta(hours=-14)),
    timezone(timedelta(hours=14)),
    timezone(timedelta(hours=23, minutes=59)),  # beyond xs:dateTime's ±14:00: normalised to UTC
    timezone(timedelta(minutes=19, seconds=32)),  # seconds: normalised to UTC
]
TIMEZONES = st.one_of(st.sampled_from(ODD_OFFSETS), st.timezones())
PAST_TIMES = st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2024, 12, 30), timezones=TIMEZONES)
DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31))
REPORT_IDS = st.integers(min_value=1, max_value=2**63 - 1)


def lists(strategy: st.SearchStrategy[Any], max_size: int = 2) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, max_size=max_size)


def block(required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[Data]:
    """A dict with every required key and any subset of the optional ones."""
    return st.fixed_dictionaries(required, optional=optional or {})


# ------------------------------------------------------------------------------------ shared blocks

phone = block(
    {"value": nonblank(50)},
    {
        "type": choose(enums.PhoneType),
        "verified": st.booleans(),
        "verificationDate": PAST_TIMES,
        "countryCallingCode": st.from_regex(r"\+[0-9]{1,3}", fullmatch=True),
        "extension": st.from_regex(r"[0-9]{1,10}", fullmatch=True),
    },
)
email = st.one_of(
    email_address(),  # bare text stands for {"value": ...}
    block(
        {"value": email_address()},
        {"type": choose(enums.EmailType), "verified": st.booleans(), "verificationDate": PAST_TIMES},
    ),
)
address = block(
    {},
    {
        "type": choose(enums.AddressType),
        "address": text(255),
        "city": text(100),
        "zipCode": text(20),
        "state": st.sampled_from(enums.US_STATE_CODES),
        "nonUsaState": text(100),
        "country": st.sampled_from(enums.COUNTRY_CODES),
    },
)
contact_fields = {
    "firstName": text(100),
    "lastName": text(100),
    "phone": lists(phone),
    "email": lists(email),
    "address": lists(address),
}
contact = block({}, contact_fields)
person = block({}, contact_fields | {"age": st.integers(0, 150), "dateOfBirth": DATES})
ip_event = block(
    {"ipAddress": nonblank()},
    {
        "eventName": choose(enums.IpEventName),
        "dateTime": PAST_TIMES,
        "possibleProxy": st.booleans(),
        "port": st.integers(1, 65535),
    },
)
device = block(
    {"idType": nonblank(255), "idValue": nonblank(2083)},
    {"eventName": choose(enums.DeviceEventName), "dateTime": PAST_TIMES},
)
location = block(
    {},
    {
        "verified": st.booleans(),
        "timestamp": PAST_TIMES,
        "city": text(100),
        "region": text(),
        "countryCode": st.sampled_from(enums.COUNTRY_CODES),
    },
)
disabled_attributes = {"disabledDate": PAST_TIMES, "userNotified": st.booleans(), "userNotifiedDate": PAST_TIMES}
temporarily_disabled = st.one_of(
    st.booleans(), block({"value": st.booleans()}, disabled_attributes | {"reenabledDate": PAST_TIMES})
)
permanently_disabled = st.one_of(st.booleans(), block({"value": st.booleans()}, disabled_attributes))
associated_account = block(
    {"type": choose(enums.AssociatedAccountType)},
    {
        "platform": st.one_of(text(256), block({"value": text(256)}, {"thirdPartyUser": st.booleans()})),
        "firstName": text(256),
        "middleName": text(256),
        "lastName": text(256),
        "approximateAge": st.integers(0, 150),
        "dateOfBirth": DATES,
        "phone": lists(phone),
        "email": lists(email),
        "allEmailsReported": st.booleans(),
        "address": lists(address),
        "espService": text(256),
        "espIdentifier": text(256),
        "profileUrl": lists(url()),
        "screenName": text(256),
        "displayName": lists(text(256)),
        "profileBio": text(),
        "groupIdentifier": text(256),
        "compromisedAccount": st.booleans(),
        "accountTemporarilyDisabled": temporarily_disabled,
        "accountPermanentlyDisabled": permanently_disabled,
        "ipCaptureEvent": lists(ip_event),
        "deviceId": lists(device),
        "priorCTReport": lists(REPORT_IDS),
        "additionalInfo": text(),
    },
)

# ---------------------------------------------------------------------------------- report blocks

incident_summary = block(
    {"incidentType": choose(enums.IncidentType), "incidentDateTime": PAST_TIMES},
    {
        "platform": text(256),
        "escalateToHighPriority": prose(),
        "reportAnnotations": block({}, {flag.value: st.booleans() for flag in enums.ReportAnnotation}),
        "incidentDateTimeDescription": prose(),
    },
)
incident_kinds: dict[str, st.SearchStrategy[Data]] = {
    "webPageIncident": block(
        {}, {"thirdPartyHostedContent": st.booleans(), "url": lists(url(), 3), "additionalInfo": text()}
    ),
    "emailIncident": block({}, {"emailAddress": lists(email), "content": text(), "additionalInfo": text()}),
    "newsgroupIncident": block(
        {},
        {"name": text(255), "emailAddress": lists(email), "content": text(), "additionalInfo": text()},
    ),
    "chatImIncident": block(
        {},
        {"chatClient": text(255), "chatRoomName": text(255), "content": text(), "additionalInfo": text()},
    ),
    "onlineGamingIncident": block(
        {}, {"gameName": text(255), "console": text(255), "content": text(), "additionalInfo": text()}
    ),
    "cellPhoneIncident": block(
        {},
        {
            "phoneNumber": phone,
            "latitude": st.floats(-90, 90),
            "longitude": st.floats(-180, 180),
            "additionalInfo": text(),
        },
    ),
    "nonInternetIncident": block(
        {}, {"locationName": text(255), "incidentAddress": lists(address), "additionalInfo": text()}
    ),
    "peer2peerIncident": block(
        {},
        {
            "client": text(255),
            "ipCaptureEvent": lists(ip_event),
            "fileNames": text(),
            "additionalInfo": text(),
        },
    ),
}
internet_details = st.one_of(
    [strategy.map(lambda value, kind=kind: {kind: value}) for kind, strategy in incident_kinds.items()]
)
law_enforcement = block(
    {"agencyName": nonblank(255)},
    {
        "caseNumber": text(100),
        "officerContact": contact,
        "reportedToLe": st.booleans(),
        "servedLegalProcessDomestic": st.booleans(),
        "servedLegalProcessInternational": st.one_of(
            st.booleans(),
            block({"value": st.booleans()}, {"fleaCountry": st.sampled_from(enums.COUNTRY_CODES)}),
        ),
    },
)
reporting_person = st.tuples(person, st.lists(email, min_size=1, max_size=2)).map(
    lambda pair: pair[0] | {"email": pair[1]}
)
reporter = block(
    {"reportingPerson": reporting_person},
    {
        "contactPerson": contact,
        "companyTemplate": text(),
        "termsOfService": prose(),
        "legalURL": st.one_of(url(), st.just("https://example.com/" + "a" * 2063)),
    },
)
profile_fields = {
    "espIdentifier": text(255),
    "espService": text(100),
    "compromisedAccount": st.booleans(),
    "screenName": text(256),
    "displayName": lists(text()),
    "profileUrl": lists(url()),
    "profileBio": text(),
    "ipCaptureEvent": lists(ip_event),
    "deviceId": lists(device),
    "priorCTReports": lists(REPORT_IDS),
    "accountTemporarilyDisabled": temporarily_disabled,
    "accountPermanentlyDisabled": permanently_disabled,
    "estimatedLocation": location,
    "allEmailsReported": st.booleans(),
}
person_or_user_reported = block(
    {},
    profile_fields
    | {
        "personOrUserReportedPerson": person,
        "vehicleDescription": text(300),
        "thirdPartyUserReported": st.booleans(),
        "groupIdentifier": text(255),
        "associatedAccount": lists(associated_account, 1),
        "additionalInfo": text(),
    },
)
intended_recipient = block(
    {},
    profile_fields | {"intendedRecipientPerson": person, "groupIdentifier": text(255), "additionalInfo": lists(text())},
)
victim = block(
    {"victimPerson": person},
    profile_fields
    | {"schoolName": text(255), "associatedAccount": lists(associated_account, 1), "additionalInfo": text()},
)
reports = block(
    {"incidentSummary": incident_summary, "reporter": reporter},
    {
        "batchedReport": st.just({"reason": "VIRAL_POTENTIAL_MEME"}) | st.just({}),
        "internetDetails": lists(internet_details, 3),
        "lawEnforcement": law_enforcement,
        "personOrUserReported": lists(person_or_user_reported),
        "intendedRecipient": lists(intended_recipient, 1),
        "victim": lists(victim, 1),
        "additionalInfo": prose(),
    },
)

# ------------------------------------------------------------------------------------- fileDetails

file_annotations = block({}, {name: st.booleans() for name in ALL_FILE_ANNOTATIONS})
details = block(
    {"nameValuePair": st.lists(block({"name": nonblank(64), "value": text()}), min_size=1, max_size=2)},
    {"type": choose(enums.DetailsType)},
)
file_common = {
    "fileName": text(),
    "originalFileName": st.one_of(text(), st.just("n" * 2056)),
    "uploadedToEspTimestamp": PAST_TIMES,
    "locationOfFile": url(),
    "fileViewedByEsp": st.booleans(),
    "exifViewedByEsp": st.booleans(),
    "publiclyAvailable": st.booleans(),
    "originalFileHash": lists(block({"value": nonblank(), "hashType": nonblank(64)})),
    "ipCaptureEvent": ip_event,
    "deviceId": lists(device),
    "details": lists(details),
    "additionalInfo": lists(text()),
}
file_ids = st.text(URL_CHAR, min_size=1, max_size=40)
# Reported (or unspecified) files: classification and either meme signal allowed, not both signals.
reported_files = block(
    {"reportId": REPORT_IDS, "fileId": file_ids},
    file_common
    | {
        "fileRelevance": st.just("Reported"),
        "industryClassification": choose(enums.IndustryClassification),
        "potentialMeme": st.booleans(),
    },
) | block(
    {"reportId": REPORT_IDS, "fileId": file_ids},
    file_common | {"fileAnnotations": file_annotations, "industryClassification": choose(enums.IndustryClassification)},
)
supplemental_files = block(
    {"reportId": REPORT_IDS, "fileId": file_ids, "fileRelevance": st.just("Supplemental Reported")},
    file_common | {"fileAnnotations": file_annotations.map(lambda flags: flags | {"potentialMeme": False})},
)
file_details = reported_files | supplemental_files

# ------------------------------------------------------------------------------------ valid inputs


@VALID
@given(reports)
def test_any_valid_report_serializes_to_schema_valid_xml(data: Data) -> None:
    xml = report_to_xml(parse_report(data, now=NOW), now=NOW)
    assert schema_errors(xml, require_schema()) == []


# Whole random reports rarely fill every corner of every block; these give each block its own budget.
BLOCKS: dict[str, st.SearchStrategy[Any]] = {
    "incidentSummary": incident_summary,
    "internetDetails": st.lists(internet_details, min_size=1, max_size=4),
    "lawEnforcement": law_enforcement,
    "reporter": reporter,
    "personOrUserReported": st.lists(person_or_user_reported, min_size=1, max_size=1),
    "intendedRecipient": st.lists(intended_recipient, min_size=1, max_size=1),
    "victim": st.lists(victim, min_size=1, max_size=1),
}


@pytest.mark.parametrize("key", sorted(BLOCKS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draw=st.data())
def test_each_block_serializes_to_schema_valid_xml(key: str, draw: st.DataObject) -> None:
    data = draw.draw(block({"incidentSummary": incident_summary, "reporter": reporter}))
    data[key] = draw.draw(BLOCKS[key], label=key)
    xml = report_to_xml(parse_report(data, now=NOW), now=NOW)
    assert schema_errors(xml, require_schema()) == []


@VALID
@given(file_details)
def test_any_valid_file_details_serialize_to_schema_valid_xml(data: Data) -> None:
    xml = file_details_to_xml(parse_file_details(data))
    assert schema_errors(xml, require_schema()) == []


@VALID
@given(reports)
def test_reports_round_trip_through_json_and_keep_every_block(data: Data) -> None:
    report = parse_report(data, now=NOW)
    # Workflows pass reports around as JSON (e.g. Temporal payloads); nothing may be lost on the way.
    assert parse_report(json.loads(report.model_dump_json(by_alias=True)), now=NOW) == report
    assert parse_report(report.model_dump(), now=NOW) == report
    root = etree.fromstring(report_to_xml(report, now=NOW))
    for key in ("internetDetails", "personOrUserReported", "intendedRecipient", "victim"):
        assert len(root.findall(key)) == len(data.get(key, []))


# ---------------------------------------------------------------------------------- invalid inputs

Mutation = Callable[[Data, st.DrawFn], str]  # mutates the dict in place, returns the expected field path


def _append(data: Data, key: str, item: Data) -> int:
    data.setdefault(key, []).append(item)
    return len(data[key]) - 1


def _too_long(limit: int) -> st.SearchStrategy[str]:
    return st.text(XML_CHAR, min_size=limit + 1, max_size=limit + 20)


def _spoiled_url(draw: st.DrawFn) -> str:
    base, space = draw(url()), draw(WHITESPACE)
    cut = draw(st.integers(0, len(base)))
    return base[:cut] + space + base[cut:]


def _with_forbidden_char(draw: st.DrawFn) -> str:
    base = draw(nonblank(50))
    return base + draw(FORBIDDEN_IN_XML) + base


def over_long_name(data: Data, draw: st.DrawFn) -> str:
    data["reporter"]["reportingPerson"]["firstName"] = draw(_too_long(100))
    return "reporter.reportingPerson.firstName"


def over_long_prose(data: Data, draw: st.DrawFn) -> str:
    where = draw(st.sampled_from(["escalateToHighPriority", "incidentDateTimeDescription"]))
    data["incidentSummary"][where] = "z" * draw(st.integers(3001, 3100))
    return f"incidentSummary.{where}"


def blank_prose(data: Data, draw: st.DrawFn) -> str:
    blank = draw(st.text(WHITESPACE, max_size=5))
    target = draw(st.sampled_from(["additionalInfo", "termsOfService", "escalateToHighPriority"]))
    if target == "additionalInfo":
        data["additionalInfo"] = blank
        return "additionalInfo"
    if target == "termsOfService":
        data["reporter"]["termsOfService"] = blank
        return "reporter.termsOfService"
    data["incidentSummary"]["escalateToHighPriority"] = blank
    return "incidentSummary.escalateToHighPriority"


def over_long_esp_service(data: Data, draw: st.DrawFn) -> str:
    index = _append(data, "personOrUserReported", {"espService": draw(_too_long(100))})
    return f"personOrUserReported[{index}].espService"


def bad_incident_type(data: Data, draw: st.DrawFn) -> str:
    known = {member.value for member in enums.IncidentType}
    data["incidentSummary"]["incidentType"] = draw(text().filter(lambda value: value not in known))
    return "incidentSummary.incidentType"


def bad_country(data: Data, draw: st.DrawFn) -> str:
    data["reporter"]["reportingPerson"]["address"] = [
        {"country": draw(text(5).filter(lambda value: not enums.is_country_code(value)))}
    ]
    return "reporter.reportingPerson.address[0].country"


def naive_time(data: Data, draw: st.DrawFn) -> str:
    data["incidentSummary"]["incidentDateTime"] = draw(st.datetimes(max_value=datetime(2024, 1, 1)))
    return "incidentSummary.incidentDateTime"


def whitespace_in_url(data: Data, draw: st.DrawFn) -> str:
    target = draw(st.sampled_from(["legalURL", "profileUrl", "url"]))
    if target == "legalURL":
        data["reporter"]["legalURL"] = _spoiled_url(draw)
        return "reporter.legalURL"
    if target == "profileUrl":
        index = _append(data, "victim", {"victimPerson": {}, "profileUrl": [draw(url()), _spoiled_url(draw)]})
        return f"victim[{index}].profileUrl[1]"
    index = _append(data, "internetDetails", {"webPageIncident": {"url": [_spoiled_url(draw)]}})
    return f"internetDetails[{index}].webPageIncident.url[0]"


def age_out_of_range(data: Data, draw: st.DrawFn) -> str:
    age = draw(st.integers(max_value=-1) | st.integers(min_value=151))
    index = _append(data, "victim", {"victimPerson": {"age": age}})
    return f"victim[{index}].victimPerson.age"


def port_out_of_range(data: Data, draw: st.DrawFn) -> str:
    port = draw(st.integers(max_value=0) | st.integers(min_value=65536))
    events = [{"ipAddress": "192.0.2.1"}, {"ipAddress": "192.0.2.2", "port": port}]
    index = _append(data, "personOrUserReported", {"ipCaptureEvent": events})
    return f"personOrUserReported[{index}].ipCaptureEvent[1].port"


def bad_calling_code(data: Data, draw: st.DrawFn) -> str:
    code = draw(text(6).filter(lambda value: not re.fullmatch(r"\+[0-9]{1,3}", value)))
    data["reporter"]["reportingPerson"]["phone"] = [{"value": "202-555-0100", "countryCallingCode": code}]
    return "reporter.reportingPerson.phone[0].countryCallingCode"


def forbidden_character(data: Data, draw: st.DrawFn) -> str:
    data["reporter"]["companyTemplate"] = _with_forbidden_char(draw)
    return "reporter.companyTemplate"


def two_incident_kinds(data: Data, draw: st.DrawFn) -> str:
    kinds = draw(st.lists(st.sampled_from(sorted(incident_kinds)), min_size=2, max_size=3, unique=True))
    index = _append(data, "internetDetails", {kind: {} for kind in kinds})
    return f"internetDetails[{index}]"


def reporter_without_email(data: Data, draw: st.DrawFn) -> str:
    data["reporter"]["reportingPerson"]["email"] = []
    return "reporter.reportingPerson.email"


MUTATIONS: list[Mutation] = [
    over_long_name,
    over_long_prose,
    blank_prose,
    over_long_esp_service,
    bad_incident_type,
    bad_country,
    naive_time,
    whitespace_in_url,
    age_out_of_range,
    port_out_of_range,
    bad_calling_code,
    forbidden_character,
    two_incident_kinds,
    reporter_without_email,
]


@INVALID
@given(reports, st.sampled_from(MUTATIONS), st.data())
def test_invalid_reports_are_refused_naming_the_field(data: Data, mutate: Mutation, draw: st.DataObject) -> None:
    expected = mutate(data, draw.draw)
    try:
        parse_report(data, now=NOW)
    except ReportValidationError as exc:
        assert expected in [error.field for error in exc.errors], exc.errors
    else:
        raise AssertionError(f"{mutate.__name__}: {expected} was accepted")


@VALID
@given(reports, st.datetimes(min_value=datetime(2025, 1, 2), max_value=datetime(2100, 1, 1), timezones=TIMEZONES))
def test_future_incident_time_is_refused_by_parser_and_builder(data: Data, moment: datetime) -> None:
    data["incidentSummary"]["incidentDateTime"] = moment
    for attempt in (lambda: parse_report(data, now=NOW), lambda: report_to_xml(Report.model_validate(data), now=NOW)):
        try:
            attempt()
        except ReportValidationError as exc:
            assert [error.field for error in exc.errors] == ["incidentSummary.incidentDateTime"]
        else:
            raise AssertionError("a future incidentDateTime was accepted")


def supplemental_with_classification(data: Data, draw: st.DrawFn) -> str:
    data["fileRelevance"] = "Supplemental Reported"
    data["industryClassification"] = draw(choose(enums.IndustryClassification))
    return "industryClassification"


def over_long_original_name(data: Data, draw: st.DrawFn) -> str:
    data["originalFileName"] = draw(_too_long(2056))
    return "originalFileName"


def whitespace_in_location(data: Data, draw: st.DrawFn) -> str:
    data["locationOfFile"] = _spoiled_url(draw)
    return "locationOfFile"


def bad_report_id(data: Data, draw: st.DrawFn) -> str:
    data["reportId"] = draw(st.integers(max_value=0) | st.integers(min_value=2**63))
    return "reportId"


def bad_annotation(data: Data, draw: st.DrawFn) -> str:
    data["fileAnnotations"] = {draw(st.sampled_from(["informational", "cartoon"])): True}
    data.pop("potentialMeme", None)
    return f"fileAnnotations.{next(iter(data['fileAnnotations']))}"


FILE_MUTATIONS: list[Mutation] = [
    supplemental_with_classification,
    over_long_original_name,
    whitespace_in_location,
    bad_report_id,
    bad_annotation,
]


@INVALID
@given(file_details, st.sampled_from(FILE_MUTATIONS), st.data())
def test_invalid_file_details_are_refused_naming_the_field(data: Data, mutate: Mutation, draw: st.DataObject) -> None:
    expected = mutate(data, draw.draw)
    try:
        parse_file_details(data)
    except ReportValidationError as exc:
        assert expected in [error.field for error in exc.errors], exc.errors
    else:
        raise AssertionError(f"{mutate.__name__}: {expected} was accepted")


def test_strategies_cover_every_model_field() -> None:
    """Keeps the strategies honest when a field is added to a model."""
    keys = set(file_common) | {"reportId", "fileId", "fileRelevance", "industryClassification"}
    keys |= {"potentialMeme", "fileAnnotations"}
    assert keys == {info.alias for info in FileDetails.model_fields.values()}
    report_keys = {"incidentSummary", "reporter", "batchedReport", "internetDetails", "lawEnforcement"}
    report_keys |= {"personOrUserReported", "intendedRecipient", "victim", "additionalInfo"}
    assert report_keys == {info.alias for info in Report.model_fields.values()}
