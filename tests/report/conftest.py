"""Shared fixtures: NCMEC's XSD (operator-supplied, never in the repo) and synthetic report data.

All people, accounts and addresses here are invented; emails use example.com, IPs documentation ranges.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from cybertipline.xsd import load_schema

XSD_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "ncmec" / "cyber_tipline.xsd"

PAST = "2024-03-01T12:30:00+00:00"
LATER = "2024-03-02T08:00:00-05:00"


def require_schema() -> etree.XMLSchema:
    # A missing schema must fail the suite, not quietly skip the checks that matter most.
    assert XSD_PATH.exists(), f"NCMEC's XSD is expected at {XSD_PATH} (beside the checkout, in ../shared)"
    return load_schema(XSD_PATH.resolve())


def require_xsd_tree() -> etree._ElementTree:
    require_schema()
    return etree.parse(str(XSD_PATH.resolve()))


@pytest.fixture(scope="session")
def schema() -> etree.XMLSchema:
    return require_schema()


@pytest.fixture(scope="session")
def xsd_tree() -> etree._ElementTree:
    return require_xsd_tree()


def minimal_report_data() -> dict[str, Any]:
    return {
        "incidentSummary": {
            "incidentType": "Child Pornography (possession, manufacture, and distribution)",
            "incidentDateTime": PAST,
        },
        "reporter": {"reportingPerson": {"email": ["trust-safety@example.com"]}},
    }


def _phone(number: str = "202-555-0100") -> dict[str, Any]:
    return {
        "value": number,
        "type": "Mobile",
        "verified": True,
        "verificationDate": PAST,
        "countryCallingCode": "+1",
        "extension": "42",
    }


def _email(address: str) -> dict[str, Any]:
    return {"value": address, "type": "Work", "verified": False, "verificationDate": PAST}


def _address() -> dict[str, Any]:
    return {
        "type": "Home",
        "address": "1 Example Street",
        "city": "Springfield",
        "zipCode": "00000",
        "state": "VA",
        "nonUsaState": "Nowhere Province",
        "country": "US",
    }


def _person(first: str, last: str) -> dict[str, Any]:
    return {
        "firstName": first,
        "lastName": last,
        "phone": [_phone()],
        "email": [_email(f"{first.lower()}@example.com"), _email(f"{last.lower()}@example.com")],
        "address": [_address()],
        "age": 33,
        "dateOfBirth": "1990-05-17",
    }


def _contact(first: str, last: str) -> dict[str, Any]:
    person = _person(first, last)
    del person["age"], person["dateOfBirth"]
    return person


def _ip(address: str = "192.0.2.10") -> dict[str, Any]:
    return {"ipAddress": address, "eventName": "Login", "dateTime": PAST, "possibleProxy": False, "port": 443}


def _device() -> dict[str, Any]:
    return {"idType": "IMEI", "idValue": "490154203237518", "eventName": "Upload", "dateTime": LATER}


def _temporarily_disabled() -> dict[str, Any]:
    return {
        "value": True,
        "disabledDate": PAST,
        "userNotified": True,
        "userNotifiedDate": PAST,
        "reenabledDate": LATER,
    }


def _permanently_disabled() -> dict[str, Any]:
    return {"value": True, "disabledDate": PAST, "userNotified": False, "userNotifiedDate": LATER}


def _location() -> dict[str, Any]:
    return {
        "verified": False,
        "timestamp": PAST,
        "city": "Springfield",
        "region": "Virginia",
        "countryCode": "US",
    }


def _associated_account() -> dict[str, Any]:
    return {
        "type": "Parent/Guardian",
        "platform": {"value": "ExampleChat", "thirdPartyUser": True},
        "firstName": "Pat",
        "middleName": "Q",
        "lastName": "Sample",
        "approximateAge": 45,
        "dateOfBirth": "1979-01-01",
        "phone": [_phone("202-555-0111")],
        "email": [_email("pat@example.com")],
        "allEmailsReported": True,
        "address": [_address()],
        "espService": "ExampleChat",
        "espIdentifier": "acct-77",
        "profileUrl": ["https://example.com/u/pat"],
        "screenName": "pat_sample",
        "displayName": ["Pat S", "PS"],
        "profileBio": "Made-up bio.",
        "groupIdentifier": "group-9",
        "compromisedAccount": False,
        "accountTemporarilyDisabled": _temporarily_disabled(),
        "accountPermanentlyDisabled": _permanently_disabled(),
        "ipCaptureEvent": [_ip("198.51.100.7")],
        "deviceId": [_device()],
        "priorCTReport": [1234567, 7654321],
        "additionalInfo": "Linked through shared billing.",
    }


def _profile(prefix: str) -> dict[str, Any]:
    """The fields the three people blocks share, in no particular order (the model orders them)."""
    return {
        "espIdentifier": f"{prefix}-id-1",
        "espService": "ExampleChat",
        "compromisedAccount": False,
        "screenName": f"{prefix}_screen",
        "displayName": [f"{prefix} display"],
        "profileUrl": [f"https://example.com/{prefix}", f"https://example.com/{prefix}/alt"],
        "profileBio": "Synthetic profile.",
        "ipCaptureEvent": [_ip(), _ip("2001:db8::1")],
        "deviceId": [_device()],
        "priorCTReports": [4564654],
        "accountTemporarilyDisabled": _temporarily_disabled(),
        "accountPermanentlyDisabled": _permanently_disabled(),
        "estimatedLocation": _location(),
        "allEmailsReported": True,
    }


def full_report_data() -> dict[str, Any]:
    """Every block and every field of the report schema, with made-up values."""
    reported = _profile("suspect") | {
        "personOrUserReportedPerson": _person("Alex", "Example"),
        "vehicleDescription": "Grey sedan",
        "thirdPartyUserReported": False,
        "groupIdentifier": "group-1",
        "associatedAccount": [_associated_account()],
        "additionalInfo": "Reported user notes.",
    }
    recipient = _profile("recipient") | {
        "intendedRecipientPerson": _person("Jamie", "Placeholder"),
        "groupIdentifier": "group-2",
        "additionalInfo": ["First note.", "Second note."],
    }
    victim = _profile("victim") | {
        "victimPerson": _person("Robin", "Fictional"),
        "schoolName": "Example Middle School",
        "associatedAccount": [_associated_account()],
        "additionalInfo": "Victim notes.",
    }
    return {
        "batchedReport": {"reason": "VIRAL_POTENTIAL_MEME"},
        "incidentSummary": {
            "incidentType": "Online Enticement of Children for Sexual Acts",
            "platform": "ExampleChat for iOS",
            "escalateToHighPriority": "Child appears to be in immediate danger.",
            "reportAnnotations": {
                "sextortion": True,
                "csamSolicitation": True,
                "minorToMinorInteraction": True,
                "spam": True,
                "sadisticOnlineExploitation": True,
            },
            "incidentDateTime": PAST,
            "incidentDateTimeDescription": "Time the message was sent.",
        },
        "internetDetails": [
            {
                "webPageIncident": {
                    "thirdPartyHostedContent": True,
                    "url": ["https://example.com/a", "https://example.com/b?c=d"],
                    "additionalInfo": "Web page.",
                }
            },
            {
                "emailIncident": {
                    "emailAddress": [_email("sender@example.com")],
                    "content": "Message body.",
                    "additionalInfo": "Email.",
                }
            },
            {
                "newsgroupIncident": {
                    "name": "alt.example",
                    "emailAddress": [_email("poster@example.com")],
                    "content": "Post.",
                    "additionalInfo": "Newsgroup.",
                }
            },
            {
                "chatImIncident": {
                    "chatClient": "ExampleChat",
                    "chatRoomName": "lobby",
                    "content": "Chat log.",
                    "additionalInfo": "Chat.",
                }
            },
            {
                "onlineGamingIncident": {
                    "gameName": "Example Quest",
                    "console": "PC",
                    "content": "Game chat.",
                    "additionalInfo": "Gaming.",
                }
            },
            {
                "cellPhoneIncident": {
                    "phoneNumber": _phone(),
                    "latitude": 38.8977,
                    "longitude": -77.0365,
                    "additionalInfo": "Phone.",
                }
            },
            {
                "nonInternetIncident": {
                    "locationName": "Example Park",
                    "incidentAddress": [_address()],
                    "additionalInfo": "Offline.",
                }
            },
            {
                "peer2peerIncident": {
                    "client": "ExampleShare",
                    "ipCaptureEvent": [_ip()],
                    "fileNames": "a.jpg, b.jpg",
                    "additionalInfo": "P2P.",
                }
            },
        ],
        "lawEnforcement": {
            "agencyName": "Example County Sheriff",
            "caseNumber": "EX-2024-001",
            "officerContact": _contact("Officer", "Sample"),
            "reportedToLe": True,
            "servedLegalProcessDomestic": False,
            "servedLegalProcessInternational": {"value": True, "fleaCountry": "CA"},
        },
        "reporter": {
            "reportingPerson": _person("Reporting", "Analyst"),
            "contactPerson": _contact("Contact", "Person"),
            "companyTemplate": "Example Corp template",
            "termsOfService": "Users may not share abusive content.",
            "legalURL": "https://example.com/legal",
        },
        "personOrUserReported": [reported],
        "intendedRecipient": [recipient],
        "victim": [victim],
        "additionalInfo": "Synthetic test report.",
    }


def full_file_details_data() -> dict[str, Any]:
    return {
        "reportId": 4564654,
        "fileId": "b0754af766b426f2928a02c651ed4b99",
        "fileName": "stored-name.jpg",
        "originalFileName": "holiday photo.jpg",
        "uploadedToEspTimestamp": PAST,
        "locationOfFile": "https://cdn.example.com/f/123",
        "fileViewedByEsp": True,
        "exifViewedByEsp": False,
        "publiclyAvailable": False,
        "fileRelevance": "Reported",
        "fileAnnotations": {name: True for name in ALL_FILE_ANNOTATIONS},
        "industryClassification": "A1",
        "originalFileHash": [
            {"value": "fafa5efeaf3cbe3b23b2748d13e629a1", "hashType": "MD5"},
            {"value": "0" * 64, "hashType": "SHA256"},
        ],
        "ipCaptureEvent": _ip(),
        "deviceId": [_device()],
        "details": [
            {"type": "EXIF", "nameValuePair": [{"name": "Model", "value": "ExampleCam"}]},
            {"type": "HASH", "nameValuePair": [{"name": "a", "value": ""}, {"name": "b", "value": "c"}]},
        ],
        "additionalInfo": ["First.", "Second."],
    }


ALL_FILE_ANNOTATIONS = (
    "animeDrawingVirtualHentai",
    "potentialMeme",
    "viral",
    "possibleSelfProduction",
    "physicalHarm",
    "violenceGore",
    "bestiality",
    "liveStreaming",
    "infant",
    "generativeAi",
)


def with_value(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the dotted path (``a.b[0].c``) set to ``value``."""
    result = copy.deepcopy(data)
    *parents, last = _steps(path)
    node: Any = result
    for step in parents:
        node = node[step]
    node[last] = value
    return result


def _steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for part in path.split("."):
        name, *indexes = part.replace("]", "").split("[")
        steps.append(name)
        steps.extend(int(index) for index in indexes)
    return steps
