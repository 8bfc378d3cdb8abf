"""The ``<fileDetails>`` document sent to ``/fileinfo``, once per uploaded file.

Field order is element order (see ``common_model``'s docstring). ``report_xml.file_details_to_xml``
serializes it; ``report_xml.parse_file_details`` builds one from a dict.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import model_validator

from cybertipline.common_model import (
    DeviceId,
    IpCaptureEvent,
    NonBlank,
    NonBlank64,
    ReportId,
    Str2056,
    Timestamp,
    Token,
    Url2083,
    XmlModel,
    XmlStr,
    attribute,
    element,
    flag,
    repeated,
    rule_violation,
    text_content,
)
from cybertipline.enums import DetailsType, FileAnnotation, FileRelevance, IndustryClassification


class FileAnnotations(XmlModel):
    """Presence flags describing the file; the XSD's ``xs:all`` takes them in any order."""

    anime_drawing_virtual_hentai: bool = flag("animeDrawingVirtualHentai")
    potential_meme: bool = flag("potentialMeme")
    viral: bool = flag("viral")
    possible_self_production: bool = flag("possibleSelfProduction")
    physical_harm: bool = flag("physicalHarm")
    violence_gore: bool = flag("violenceGore")
    bestiality: bool = flag("bestiality")
    live_streaming: bool = flag("liveStreaming")
    infant: bool = flag("infant")
    generative_ai: bool = flag("generativeAi")

    @classmethod
    def of(cls, flags: Iterable[FileAnnotation]) -> FileAnnotations:
        return cls(**{str(name): True for name in flags})


class OriginalFileHash(XmlModel):
    value: NonBlank = text_content()
    hash_type: NonBlank64 = attribute("hashType", ...)  # free text: MD5, SHA1, SHA256, PDQ, ...


class NameValuePair(XmlModel):
    name: NonBlank64 = element("name")
    value: XmlStr = element("value")  # a child element named "value", not this element's text


class Details(XmlModel):
    type: DetailsType | None = attribute("type")
    name_value_pair: list[NameValuePair] = repeated("nameValuePair", min_length=1)


class FileDetails(XmlModel):
    """The root ``<fileDetails>``."""

    report_id: ReportId = element("reportId")
    file_id: Token = element("fileId")  # as returned by /upload
    file_name: XmlStr | None = element("fileName", None)  # the name as the ESP stores it
    original_file_name: Str2056 | None = element("originalFileName", None)  # the uploader's name for it
    uploaded_to_esp_timestamp: Timestamp | None = element("uploadedToEspTimestamp", None)
    location_of_file: Url2083 | None = element("locationOfFile", None)
    file_viewed_by_esp: bool | None = element("fileViewedByEsp", None)
    exif_viewed_by_esp: bool | None = element("exifViewedByEsp", None)
    publicly_available: bool | None = element("publiclyAvailable", None)
    # Absent means Reported. Supplemental files (screenshots, chat exports) carry no classification.
    file_relevance: FileRelevance | None = element("fileRelevance", None)
    # The XSD makes these two a choice: the legacy boolean, or the newer flag set (which has its own
    # potentialMeme flag). Prefer file_annotations.
    potential_meme: bool | None = element("potentialMeme", None)
    file_annotations: FileAnnotations | None = element("fileAnnotations", None)
    industry_classification: IndustryClassification | None = element("industryClassification", None)
    original_file_hash: list[OriginalFileHash] = repeated("originalFileHash")
    ip_capture_event: IpCaptureEvent | None = element("ipCaptureEvent", None)  # at most one: the upload
    device_id: list[DeviceId] = repeated("deviceId")
    details: list[Details] = repeated("details")
    additional_info: list[XmlStr] = repeated("additionalInfo")

    @model_validator(mode="after")
    def _file_rules(self) -> FileDetails:
        if self.potential_meme is not None and self.file_annotations is not None:
            raise rule_violation("potentialMeme", "send either potentialMeme or fileAnnotations, not both")
        if self.file_relevance is FileRelevance.SUPPLEMENTAL_REPORTED:
            # NCMEC only accepts these on Reported files (and may refuse the whole report at /finish).
            if self.industry_classification is not None:
                raise rule_violation(
                    "industryClassification", "only a Reported file may carry an industryClassification"
                )
            if self.potential_meme is not None:
                raise rule_violation("potentialMeme", "only a Reported file may carry potentialMeme")
            if self.file_annotations is not None and self.file_annotations.potential_meme:
                raise rule_violation("fileAnnotations.potentialMeme", "only a Reported file may carry potentialMeme")
        return self
