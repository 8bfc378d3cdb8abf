"""Serialize the CyberTipline models to the XML NCMEC expects, and parse dicts into them.

There is one generic serializer: it walks a model's fields in declaration order, so the element order
lives only in the models (``report_model``, ``file_details_model``, ``common_model``). Nothing here
knows a single CyberTip field by name except the incident time, which must be checked against a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, TypeVar

from lxml import etree
from pydantic import BaseModel, ValidationError

from cybertipline.common_model import FieldError, ReportValidationError, field_errors, xml_role, xsd_offset
from cybertipline.file_details_model import FileDetails
from cybertipline.report_model import Report

__all__ = [
    "FieldError",
    "ReportValidationError",
    "file_details_to_xml",
    "parse_file_details",
    "parse_report",
    "report_to_xml",
]

M = TypeVar("M", bound=BaseModel)

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_INCIDENT_TIME = "incidentSummary.incidentDateTime"


def report_to_xml(report: Report, *, now: datetime | None = None) -> bytes:
    """The ``<report>`` document for ``/submit``.

    Refuses an ``incidentDateTime`` that is not strictly before ``now`` (default: the current time), which
    NCMEC would reject; everything else was checked when the model was built.
    """
    _check_incident_in_past(report, now)
    return _document("report", report)


def file_details_to_xml(details: FileDetails) -> bytes:
    """The ``<fileDetails>`` document for ``/fileinfo``."""
    return _document("fileDetails", details)


def parse_report(data: Mapping[str, Any], *, now: datetime | None = None) -> Report:
    """Build a ``Report`` from a dict keyed by element names or snake_case names.

    Also refuses a future ``incidentDateTime`` right away (against ``now``, default the current time):
    it would only be refused again at submission.
    """
    report = _parse(Report, "report", data)
    _check_incident_in_past(report, now)
    return report


def parse_file_details(data: Mapping[str, Any]) -> FileDetails:
    """Build a ``FileDetails`` from a dict keyed by element names or snake_case names."""
    return _parse(FileDetails, "fileDetails", data)


def _parse(model: type[M], root: str, data: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [FieldError(error.field or root, error.message) for error in field_errors(exc, model)]
        raise ReportValidationError(errors) from None


def _check_incident_in_past(report: Report, now: datetime | None) -> None:
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    incident = report.incident_summary.incident_date_time
    if incident >= now:
        raise ReportValidationError([FieldError(_INCIDENT_TIME, f"must be in the past (got {incident.isoformat()})")])


def _document(root_tag: str, model: BaseModel) -> bytes:
    root = etree.Element(root_tag)
    _fill(root, model)
    # Written by hand for the double-quoted form NCMEC's own examples use; lxml would single-quote it.
    return _DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def _fill(element: etree._Element, model: BaseModel) -> None:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        tag = info.alias or name
        role = xml_role(info)
        if role == "attribute":
            if value is not None:
                element.set(tag, _lexical(value))
        elif role == "text":
            element.text = _lexical(value)
        elif role == "flag":
            if value:
                etree.SubElement(element, tag)  # <flag/>; the XSD fixes the value to true
        else:
            for item in value if isinstance(value, list) else [value]:
                if item is None:
                    continue
                child = etree.SubElement(element, tag)
                if isinstance(item, BaseModel):
                    _fill(child, item)
                else:
                    child.text = _lexical(item)


def _lexical(value: object) -> str:
    """The XSD lexical form of a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return _xsd_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _xsd_datetime(value: datetime) -> str:
    if value.utcoffset() is None:  # models only hold aware datetimes; this guards model_construct() misuse
        raise ValueError(f"naive datetime {value.isoformat()} has no offset")
    return xsd_offset(value).isoformat()
