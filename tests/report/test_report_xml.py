"""Example-based tests of the report/fileDetails models and their XML, checked against NCMEC's XSD."""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from lxml import etree
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from cybertipline import enums
from cybertipline.common_model import Email, Person, model_in, xml_role
from cybertipline.file_details_model import FileAnnotations, FileDetails
from cybertipline.report_model import IncidentSummary, Report, ReportAnnotations, Reporter
from cybertipline.report_xml import (
    FieldError,
    ReportValidationError,
    file_details_to_xml,
    parse_file_details,
    parse_report,
    report_to_xml,
)
from cybertipline.xsd import schema_errors

from .conftest import (
    full_file_details_data,
    full_report_data,
    minimal_report_data,
    with_value,
)

XS = "{http://www.w3.org/2001/XMLSchema}"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def refused_fields(call: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ReportValidationError) as info:
        call(*args, **kwargs)
    assert all(isinstance(error, FieldError) for error in info.value.errors)
    return [error.field for error in info.value.errors]


# ------------------------------------------------------------------------------------ valid documents


def test_minimal_report_validates(schema: etree.XMLSchema) -> None:
    xml = report_to_xml(parse_report(minimal_report_data()), now=NOW)
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<report>')
    assert schema_errors(xml, schema) == []


def test_full_report_validates(schema: etree.XMLSchema) -> None:
    report = parse_report(full_report_data())
    assert schema_errors(report_to_xml(report, now=NOW), schema) == []


def test_full_report_fills_every_field() -> None:
    """Guards the fixture: 'full' must really exercise every field of every block."""
    report = parse_report(full_report_data())
    assert _unset_fields(report, "report") == []
    kinds = {alias for details in report.internet_details for alias in _set_aliases(details)}
    assert len(kinds) == 8


def test_full_file_details_validate(schema: etree.XMLSchema) -> None:
    details = parse_file_details(full_file_details_data())
    assert _unset_fields(details, "fileDetails") == ["fileDetails.potentialMeme"]  # the XSD's choice
    assert schema_errors(file_details_to_xml(details), schema) == []


def test_legacy_potential_meme_validates(schema: etree.XMLSchema) -> None:
    data = full_file_details_data()
    del data["fileAnnotations"]
    data["potentialMeme"] = False
    xml = file_details_to_xml(parse_file_details(data))
    assert b"<potentialMeme>false</potentialMeme>" in xml
    assert schema_errors(xml, schema) == []


def test_minimal_file_details_validate(schema: etree.XMLSchema) -> None:
    xml = file_details_to_xml(parse_file_details({"reportId": 1, "fileId": "abc"}))
    assert xml.endswith(b"<fileDetails><reportId>1</reportId><fileId>abc</fileId></fileDetails>")
    assert schema_errors(xml, schema) == []


def test_supplemental_file_without_classification_validates(schema: etree.XMLSchema) -> None:
    data = full_file_details_data() | {"fileRelevance": "Supplemental Reported"}
    del data["industryClassification"]
    data["fileAnnotations"] = {"viral": True, "generativeAi": True}
    assert schema_errors(file_details_to_xml(parse_file_details(data)), schema) == []


# ------------------------------------------------------------------------------------- wire details


def test_top_level_order_follows_xsd() -> None:
    root = etree.fromstring(report_to_xml(parse_report(full_report_data()), now=NOW))
    tags = [child.tag for child in root]
    assert tags == [
        "batchedReport",
        "incidentSummary",
        *["internetDetails"] * 8,
        "lawEnforcement",
        "reporter",
        "personOrUserReported",
        "intendedRecipient",
        "victim",
        "additionalInfo",
    ]
    summary = [child.tag for child in root.find("incidentSummary")]
    assert summary == [
        "incidentType",
        "platform",
        "escalateToHighPriority",
        "reportAnnotations",
        "incidentDateTime",
        "incidentDateTimeDescription",
    ]


def test_output_order_matches_xsd_everywhere(xsd_tree: etree._ElementTree) -> None:
    """Every element's children appear in the order its XSD type declares them."""
    root = etree.fromstring(report_to_xml(parse_report(full_report_data()), now=NOW))
    file_root = etree.fromstring(file_details_to_xml(parse_file_details(full_file_details_data())))
    for document in (root, file_root):
        for node in document.iter():
            declared = _xsd_type_for_path(xsd_tree, node)
            if declared is None:
                continue
            order = [_decl_name(decl) for decl in _particles(declared)]
            if declared.find(f"{XS}all") is not None:
                continue  # xs:all: any order is valid
            positions = [order.index(child.tag) for child in node]
            assert positions == sorted(positions), f"{node.getroottree().getpath(node)}: {positions}"


def test_flags_booleans_and_datetimes_serialize_as_xsd_wants() -> None:
    report = parse_report(full_report_data())
    root = etree.fromstring(report_to_xml(report, now=NOW))
    annotations = root.find("incidentSummary/reportAnnotations")
    assert [(flag.tag, flag.text) for flag in annotations] == [(name.value, None) for name in enums.ReportAnnotation]
    assert root.findtext("incidentSummary/incidentDateTime") == "2024-03-01T12:30:00+00:00"
    assert root.findtext("lawEnforcement/reportedToLe") == "true"
    assert root.findtext("lawEnforcement/servedLegalProcessDomestic") == "false"
    international = root.find("lawEnforcement/servedLegalProcessInternational")
    assert (international.text, international.get("fleaCountry")) == ("true", "CA")
    assert root.find("reporter/reportingPerson/phone").attrib["countryCallingCode"] == "+1"
    web = root.find("internetDetails/webPageIncident")
    assert web.get("thirdPartyHostedContent") == "true"
    account = root.find("personOrUserReported/associatedAccount")
    assert [node.text for node in account.findall("priorCTReport")] == ["1234567", "7654321"]
    assert account.find("priorCTReports") is None
    assert root.find("personOrUserReported/priorCTReports").text == "4564654"


def test_false_flags_are_left_out() -> None:
    data = with_value(minimal_report_data(), "incidentSummary.reportAnnotations", {"spam": True})
    xml = report_to_xml(parse_report(data), now=NOW)
    assert b"<reportAnnotations><spam/></reportAnnotations>" in xml


def test_offsets_xsd_cannot_express_are_normalised_to_utc(schema: etree.XMLSchema) -> None:
    odd = timezone(timedelta(minutes=19, seconds=32))  # Amsterdam mean time, pre-1937
    summary = IncidentSummary(
        incident_type=enums.IncidentType.CHILD_SEX_TRAFFICKING,
        incident_date_time=datetime(1930, 6, 1, 12, 0, tzinfo=odd),
    )
    report = parse_report(minimal_report_data() | {"incidentSummary": summary})
    xml = report_to_xml(report, now=NOW)
    assert b"<incidentDateTime>1930-06-01T11:40:28+00:00</incidentDateTime>" in xml
    assert schema_errors(xml, schema) == []


def test_python_names_and_bare_text_are_accepted() -> None:
    reporter = Reporter(reporting_person=Person(first_name="Sam", email=["sam@example.com"]))
    assert reporter.reporting_person.email == [Email(value="sam@example.com")]
    flags = FileAnnotations.of([enums.FileAnnotation.GENERATIVE_AI, enums.FileAnnotation.VIRAL])
    assert flags.generative_ai and flags.viral and not flags.infant
    assert ReportAnnotations.of(enums.ReportAnnotation.SPAM).spam


def test_date_fields_serialize_as_xs_date() -> None:
    person = Person(email=["a@example.com"], date_of_birth=date(2010, 2, 3))
    report = parse_report(minimal_report_data() | {"reporter": {"reportingPerson": person}})
    assert b"<dateOfBirth>2010-02-03</dateOfBirth>" in report_to_xml(report, now=NOW)


def test_models_are_frozen() -> None:
    report = parse_report(minimal_report_data())
    with pytest.raises(ValueError):
        report.additional_info = "changed"  # type: ignore[misc]


# ------------------------------------------------------------------------------------ refused values

LONG = "x" * 3001
# (path to spoil in the full report, bad value[, field named in the error when not the path itself])
REFUSED_REPORT_VALUES: list[tuple[Any, ...]] = [
    ("incidentSummary.incidentType", "Child Sexual Act"),
    ("incidentSummary.escalateToHighPriority", "   "),
    ("incidentSummary.escalateToHighPriority", LONG),
    ("incidentSummary.incidentDateTimeDescription", ""),
    ("incidentSummary.incidentDateTimeDescription", LONG),
    ("incidentSummary.incidentDateTime", "2024-03-01T12:30:00"),
    ("incidentSummary.platform", "p" * 257),
    ("incidentSummary.reportAnnotations.informational", True),
    ("additionalInfo", LONG),
    ("additionalInfo", " \n"),
    ("reporter.termsOfService", LONG),
    ("reporter.termsOfService", "\t"),
    ("reporter.legalURL", "https://example.com/a b"),
    ("reporter.legalURL", "https://example.com/\x7f"),
    ("reporter.legalURL", "https://example.com/" + "a" * 2064),
    ("reporter.reportingPerson.email", []),
    ("reporter.reportingPerson.email[0]", "e" * 256),
    ("reporter.reportingPerson.age", 151),
    ("reporter.reportingPerson.age", -1),
    ("reporter.reportingPerson.firstName", "f" * 101),
    ("reporter.reportingPerson.phone[0].countryCallingCode", "1"),
    ("reporter.reportingPerson.phone[0].countryCallingCode", "+1234"),
    ("reporter.reportingPerson.phone[0].extension", "12a"),
    ("reporter.reportingPerson.phone[0].extension", "1" * 11),
    ("reporter.reportingPerson.phone[0].value", "5" * 51, "reporter.reportingPerson.phone[0]"),
    ("reporter.reportingPerson.phone[0].type", "Pager"),
    ("reporter.reportingPerson.address[0].country", "United States"),
    ("reporter.reportingPerson.address[0].state", "ZZ"),
    ("reporter.reportingPerson.address[0].zipCode", "9" * 21),
    ("reporter.reportingPerson.address[0].type", "Office"),
    ("personOrUserReported[0].ipCaptureEvent[1].port", 0),
    ("personOrUserReported[0].ipCaptureEvent[1].port", 65536),
    ("personOrUserReported[0].ipCaptureEvent[0].eventName", "Logout"),
    ("personOrUserReported[0].ipCaptureEvent[0].dateTime", "2024-01-01T00:00:00"),
    ("personOrUserReported[0].profileUrl[1]", "https://example.com/\nx"),
    ("personOrUserReported[0].vehicleDescription", "v" * 301),
    ("personOrUserReported[0].espService", "s" * 101),
    ("personOrUserReported[0].deviceId[0].idValue", "d" * 2084),
    ("personOrUserReported[0].associatedAccount[0].type", "Friend"),
    ("personOrUserReported[0].associatedAccount[0].approximateAge", 200),
    ("personOrUserReported[0].associatedAccount[0].priorCTReports", [1]),
    ("victim[0].victimPerson.age", 151),
    ("victim[0].groupIdentifier", "g"),
    ("intendedRecipient[0].vehicleDescription", "car"),
    ("victim[0].estimatedLocation.countryCode", "USA"),
    ("internetDetails[0].emailIncident", {"content": "x"}, "internetDetails[0]"),
    ("internetDetails[1]", {}),
    ("internetDetails[0].webPageIncident.url[0]", "https://example.com/ x"),
    ("internetDetails[5].cellPhoneIncident.latitude", 91.0),
    ("lawEnforcement.agencyName", " "),
    ("lawEnforcement.caseNumber", "c" * 101),
    ("lawEnforcement.servedLegalProcessInternational.fleaCountry", "Canada"),
    ("batchedReport.reason", "VIRAL"),
    ("reporter.companyTemplate", "bad \x00 char"),
]


@pytest.mark.parametrize("case", REFUSED_REPORT_VALUES, ids=lambda case: case[0])
def test_refused_report_values_name_the_field(case: tuple[Any, ...]) -> None:
    path, value, *field = case
    assert (field or [path])[0] in refused_fields(parse_report, with_value(full_report_data(), path, value))


def test_missing_required_blocks_are_named() -> None:
    fields = refused_fields(parse_report, {"incidentSummary": {"incidentType": "Child Sex Tourism"}})
    assert set(fields) == {"incidentSummary.incidentDateTime", "reporter"}
    assert refused_fields(parse_report, with_value(minimal_report_data(), "reporter", {})) == [
        "reporter.reportingPerson"
    ]


def test_not_a_mapping_is_refused_at_the_root() -> None:
    assert refused_fields(parse_report, ["not", "a", "report"]) == ["report"]  # type: ignore[arg-type]


def test_future_incident_time_is_refused() -> None:
    report = parse_report(minimal_report_data())
    moment = report.incident_summary.incident_date_time
    assert refused_fields(report_to_xml, report, now=moment) == ["incidentSummary.incidentDateTime"]
    assert refused_fields(report_to_xml, report, now=moment - timedelta(seconds=1)) == [
        "incidentSummary.incidentDateTime"
    ]
    assert report_to_xml(report, now=moment + timedelta(microseconds=1))
    future = with_value(minimal_report_data(), "incidentSummary.incidentDateTime", "2999-01-01T00:00:00Z")
    assert refused_fields(parse_report, future) == ["incidentSummary.incidentDateTime"]
    with pytest.raises(ValueError, match="timezone-aware"):
        report_to_xml(report, now=datetime(2030, 1, 1))


def test_direct_construction_raises_report_validation_error() -> None:
    with pytest.raises(ReportValidationError) as info:
        Person(age=200, email=[{"value": "x@example.com", "countryCallingCode": "+1"}])
    assert {error.field for error in info.value.errors} == {"age", "email[0].countryCallingCode"}


def test_supplemental_file_with_classification_is_refused() -> None:
    data = full_file_details_data() | {"fileRelevance": "Supplemental Reported"}
    data["fileAnnotations"] = {"viral": True}
    assert refused_fields(parse_file_details, data) == ["industryClassification"]


def test_supplemental_file_with_potential_meme_is_refused() -> None:
    base = full_file_details_data() | {"fileRelevance": "Supplemental Reported"}
    del base["industryClassification"]
    assert refused_fields(parse_file_details, base) == ["fileAnnotations.potentialMeme"]
    legacy = base | {"potentialMeme": False}
    del legacy["fileAnnotations"]
    assert refused_fields(parse_file_details, legacy) == ["potentialMeme"]


REFUSED_FILE_VALUES: list[tuple[str, Any, str]] = [
    ("reportId", 0, "reportId"),
    ("reportId", 2**63, "reportId"),
    ("fileId", "has space", "fileId"),
    ("fileId", "", "fileId"),
    ("potentialMeme", True, "potentialMeme"),  # alongside fileAnnotations: the XSD's choice
    ("originalFileName", "n" * 2057, "originalFileName"),
    ("locationOfFile", "https://example.com/a\tb", "locationOfFile"),
    ("locationOfFile", "https://example.com/" + "a" * 2064, "locationOfFile"),
    ("uploadedToEspTimestamp", "2024-01-01T00:00:00", "uploadedToEspTimestamp"),
    ("fileRelevance", "Supplemental", "fileRelevance"),
    ("industryClassification", "C1", "industryClassification"),
    ("fileAnnotations.cartoon", True, "fileAnnotations.cartoon"),
    ("originalFileHash[0].hashType", "h" * 65, "originalFileHash[0].hashType"),
    ("originalFileHash[1]", {"value": "abc"}, "originalFileHash[1].hashType"),
    ("ipCaptureEvent.port", 70000, "ipCaptureEvent.port"),
    ("details[0].type", "XMP", "details[0].type"),
    ("details[0].nameValuePair", [], "details[0].nameValuePair"),
    ("details[1].nameValuePair[0].name", "n" * 65, "details[1].nameValuePair[0].name"),
    ("deviceId[0].idType", "t" * 256, "deviceId[0].idType"),
]


@pytest.mark.parametrize(("path", "value", "field"), REFUSED_FILE_VALUES)
def test_refused_file_values_name_the_field(path: str, value: Any, field: str) -> None:
    assert field in refused_fields(parse_file_details, with_value(full_file_details_data(), path, value))


# ------------------------------------------------------------------- the models mirror the XSD exactly


ENUMS_AND_XSD_TYPES = [
    (enums.IncidentType, "incidentType"),
    (enums.BatchedReportReason, "batchedReportReason"),
    (enums.IndustryClassification, "fileClassification"),
    (enums.FileRelevance, "fileRelevance"),
    (enums.IpEventName, "ipCaptureType"),
    (enums.AddressType, "addressType"),
    (enums.EmailType, "emailType"),
    (enums.PhoneType, "phoneType"),
    (enums.AssociatedAccountType, "associatedAccountType"),
    (enums.DetailsType, "metadataTypes"),
]


@pytest.mark.parametrize(("enum", "xsd_name"), ENUMS_AND_XSD_TYPES)
def test_enums_equal_xsd(enum: type[enums.StrEnum], xsd_name: str, xsd_tree: etree._ElementTree) -> None:
    assert [member.value for member in enum] == _enumeration(xsd_tree, xsd_name)


def test_code_lists_and_flags_equal_xsd(xsd_tree: etree._ElementTree) -> None:
    assert list(enums.COUNTRY_CODES) == _enumeration(xsd_tree, "country")
    assert list(enums.US_STATE_CODES) == _enumeration(xsd_tree, "state")
    for enum, xsd_type in ((enums.ReportAnnotation, "reportAnnotations"), (enums.FileAnnotation, "fileAnnotations")):
        declared = xsd_tree.find(f"{XS}complexType[@name='{xsd_type}']")
        assert [member.value for member in enum] == [_decl_name(d) for d in _particles(declared)]


@pytest.mark.parametrize(("model", "root"), [(Report, "report"), (FileDetails, "fileDetails")])
def test_models_mirror_xsd(model: type[BaseModel], root: str, xsd_tree: etree._ElementTree) -> None:
    """Names, order, attributes, cardinality and nesting of every model equal the XSD's declarations."""
    declaration = xsd_tree.find(f"{XS}element[@name='{root}']")
    problems: list[str] = []
    _compare(model, _complex_type(xsd_tree, declaration), root, xsd_tree, problems)
    assert problems == []


# ------------------------------------------------------------------------------------------- helpers


def _unset_fields(model: BaseModel, path: str) -> list[str]:
    """Paths of fields left at None / [] / False anywhere below ``model`` (choices excepted)."""
    unset: list[str] = []
    is_choice = type(model).__name__ == "InternetDetails"
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        here = f"{path}.{info.alias}"
        if value is None or value == [] or value is False and xml_role(info) == "flag":
            if not is_choice:
                unset.append(here)
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                unset.extend(_unset_fields(item, here))
    return unset


def _set_aliases(model: BaseModel) -> list[str]:
    return [info.alias or name for name, info in type(model).model_fields.items() if getattr(model, name)]


def _enumeration(xsd_tree: etree._ElementTree, name: str) -> list[str]:
    simple = xsd_tree.find(f"{XS}simpleType[@name='{name}']")
    return [node.get("value") for node in simple.iter(f"{XS}enumeration")]


def _particles(complex_type: etree._Element) -> list[etree._Element]:
    """The element declarations of a complex type, in document order, through sequence/choice/all."""
    found: list[etree._Element] = []

    def walk(node: etree._Element) -> None:
        for child in node:
            if child.tag == f"{XS}element":
                found.append(child)
            elif child.tag in (f"{XS}sequence", f"{XS}choice", f"{XS}all"):
                walk(child)

    walk(complex_type)
    return found


def _decl_name(declaration: etree._Element) -> str:
    return declaration.get("name") or declaration.get("ref")


def _complex_type(xsd_tree: etree._ElementTree, declaration: etree._Element) -> etree._Element | None:
    if declaration.get("ref"):
        declaration = xsd_tree.find(f"{XS}element[@name='{declaration.get('ref')}']")
    inline = declaration.find(f"{XS}complexType")
    if inline is not None:
        return inline
    type_name = declaration.get("type")
    if type_name is None or type_name.startswith("xs:"):
        return None
    named = xsd_tree.find(f"{XS}complexType[@name='{type_name}']")
    if named is not None and named.find(f"{XS}simpleContent") is not None and not _attributes(named):
        return None  # "text", "content", "screenName": strings in a complexType wrapper
    return named


def _attributes(complex_type: etree._Element) -> dict[str, bool]:
    """Attribute name -> required, including those declared on simpleContent extensions."""
    own = complex_type.xpath(
        "xs:attribute | xs:simpleContent/xs:extension/xs:attribute",
        namespaces={"xs": XS.strip("{}")},
    )
    return {node.get("name"): node.get("use") == "required" for node in own}


def _xsd_type_for_path(xsd_tree: etree._ElementTree, node: etree._Element) -> etree._Element | None:
    """The complex type declaring ``node``'s children, found by walking down from the root."""
    chain = []
    current: etree._Element | None = node
    while current is not None:
        chain.append(current.tag)
        current = current.getparent()
    chain.reverse()
    declared = _complex_type(xsd_tree, xsd_tree.find(f"{XS}element[@name='{chain[0]}']"))
    for tag in chain[1:]:
        if declared is None:
            return None
        match = next(d for d in _particles(declared) if _decl_name(d) == tag)
        declared = _complex_type(xsd_tree, match)
    return declared


def _compare(
    model: type[BaseModel],
    declared: etree._Element,
    path: str,
    xsd_tree: etree._ElementTree,
    problems: list[str],
) -> None:
    fields = model.model_fields
    elements = [(info.alias, info) for info in fields.values() if xml_role(info) in ("element", "flag")]
    particles = _particles(declared)
    if [alias for alias, _ in elements] != [_decl_name(d) for d in particles]:
        problems.append(f"{path}: model {[a for a, _ in elements]} != xsd {[_decl_name(d) for d in particles]}")
        return
    model_attributes = {info.alias for info in fields.values() if xml_role(info) == "attribute"}
    xsd_attributes = _attributes(declared)
    if model_attributes != set(xsd_attributes):
        problems.append(f"{path}: attributes {model_attributes} != {set(xsd_attributes)}")
    for info in fields.values():
        if xml_role(info) == "attribute" and xsd_attributes.get(info.alias) and info.default is None:
            problems.append(f"{path}@{info.alias}: required by the XSD but optional in the model")
    has_text = any(xml_role(info) == "text" for info in fields.values())
    if has_text != (declared.find(f"{XS}simpleContent") is not None):
        problems.append(f"{path}: text content mismatch")
    for (alias, info), decl in zip(elements, particles, strict=True):
        _compare_occurrence(info, decl, f"{path}.{alias}", problems)
        child_model = model_in(info.annotation)
        child_type = _complex_type(xsd_tree, decl)
        if (child_model is None) != (child_type is None):
            problems.append(f"{path}.{alias}: model nesting differs from the XSD")
        elif child_model is not None and child_type is not None:
            _compare(child_model, child_type, f"{path}.{alias}", xsd_tree, problems)


def _compare_occurrence(info: FieldInfo, decl: etree._Element, path: str, problems: list[str]) -> None:
    is_list = typing.get_origin(info.annotation) is list
    if is_list != (decl.get("maxOccurs") == "unbounded"):
        problems.append(f"{path}: repeatable in one but not the other")
    required_by_xsd = decl.get("minOccurs", "1") != "0" and decl.getparent().tag != f"{XS}choice"
    if not is_list and required_by_xsd != info.is_required():
        problems.append(f"{path}: required by the XSD={required_by_xsd}, by the model={info.is_required()}")
