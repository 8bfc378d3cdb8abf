"""The ``<report>`` document sent to NCMEC's ``/submit``, block by block.

Field order is element order (see ``common_model``'s docstring); the XSD's sequence for each block is
therefore exactly the order of the fields below. ``report_xml.report_to_xml`` serializes a ``Report``;
``report_xml.parse_report`` builds one from a dict.
"""

from __future__ import annotations

from pydantic import model_validator

from cybertipline.common_model import (
    AccountPermanentlyDisabled,
    AccountTemporarilyDisabled,
    Address,
    AssociatedAccount,
    ContactPerson,
    CountryCode,
    DeviceId,
    Email,
    EstimatedLocation,
    IpCaptureEvent,
    Latitude,
    Longitude,
    NonBlank255,
    Person,
    Phone,
    Prose3000,
    ReportId,
    Str100,
    Str255,
    Str256,
    Str300,
    Timestamp,
    Url,
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
from cybertipline.enums import BatchedReportReason, IncidentType, ReportAnnotation

# ------------------------------------------------------------------------------------ incidentSummary


class BatchedReport(XmlModel):
    """Marks a report as one of a batch about the same viral/meme content."""

    reason: BatchedReportReason = attribute("reason", BatchedReportReason.VIRAL_POTENTIAL_MEME)


class ReportAnnotations(XmlModel):
    """Presence flags; the XSD's ``xs:all`` accepts them in any order, we keep the documented one."""

    sextortion: bool = flag("sextortion")
    csam_solicitation: bool = flag("csamSolicitation")
    minor_to_minor_interaction: bool = flag("minorToMinorInteraction")
    spam: bool = flag("spam")
    sadistic_online_exploitation: bool = flag("sadisticOnlineExploitation")

    @classmethod
    def of(cls, *flags: ReportAnnotation) -> ReportAnnotations:
        return cls(**{str(name): True for name in flags})


class IncidentSummary(XmlModel):
    incident_type: IncidentType = element("incidentType")
    platform: Str256 | None = element("platform", None)  # the full application name
    # Free text, not a boolean: supplying a reason is what escalates the report ("immediate risk to child").
    escalate_to_high_priority: Prose3000 | None = element("escalateToHighPriority", None)
    report_annotations: ReportAnnotations | None = element("reportAnnotations", None)
    # Must be in the past when submitted; report_to_xml checks it against the clock.
    incident_date_time: Timestamp = element("incidentDateTime")
    incident_date_time_description: Prose3000 | None = element("incidentDateTimeDescription", None)


# ------------------------------------------------------------------------------------ internetDetails


class WebPageIncident(XmlModel):
    third_party_hosted_content: bool | None = attribute("thirdPartyHostedContent")
    url: list[Url] = repeated("url")
    additional_info: XmlStr | None = element("additionalInfo", None)


class EmailIncident(XmlModel):
    email_address: list[Email] = repeated("emailAddress")
    content: XmlStr | None = element("content", None)
    additional_info: XmlStr | None = element("additionalInfo", None)


class NewsgroupIncident(XmlModel):
    name: Str255 | None = element("name", None)
    email_address: list[Email] = repeated("emailAddress")
    content: XmlStr | None = element("content", None)
    additional_info: XmlStr | None = element("additionalInfo", None)


class ChatImIncident(XmlModel):
    chat_client: Str255 | None = element("chatClient", None)
    chat_room_name: Str255 | None = element("chatRoomName", None)
    content: XmlStr | None = element("content", None)
    additional_info: XmlStr | None = element("additionalInfo", None)


class OnlineGamingIncident(XmlModel):
    game_name: Str255 | None = element("gameName", None)
    console: Str255 | None = element("console", None)
    content: XmlStr | None = element("content", None)
    additional_info: XmlStr | None = element("additionalInfo", None)


class CellPhoneIncident(XmlModel):
    phone_number: Phone | None = element("phoneNumber", None)
    latitude: Latitude | None = element("latitude", None)
    longitude: Longitude | None = element("longitude", None)
    additional_info: XmlStr | None = element("additionalInfo", None)


class NonInternetIncident(XmlModel):
    location_name: Str255 | None = element("locationName", None)
    incident_address: list[Address] = repeated("incidentAddress")
    additional_info: XmlStr | None = element("additionalInfo", None)


class Peer2PeerIncident(XmlModel):
    client: Str255 | None = element("client", None)
    ip_capture_event: list[IpCaptureEvent] = repeated("ipCaptureEvent")
    file_names: XmlStr | None = element("fileNames", None)
    additional_info: XmlStr | None = element("additionalInfo", None)


class InternetDetails(XmlModel):
    """An ``xs:choice``: set exactly one field. Use one ``InternetDetails`` per incident."""

    web_page_incident: WebPageIncident | None = element("webPageIncident", None)
    email_incident: EmailIncident | None = element("emailIncident", None)
    newsgroup_incident: NewsgroupIncident | None = element("newsgroupIncident", None)
    chat_im_incident: ChatImIncident | None = element("chatImIncident", None)
    online_gaming_incident: OnlineGamingIncident | None = element("onlineGamingIncident", None)
    cell_phone_incident: CellPhoneIncident | None = element("cellPhoneIncident", None)
    non_internet_incident: NonInternetIncident | None = element("nonInternetIncident", None)
    peer2peer_incident: Peer2PeerIncident | None = element("peer2peerIncident", None)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> InternetDetails:
        kinds = [info.alias or name for name, info in type(self).model_fields.items() if getattr(self, name)]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            raise rule_violation("", f"must hold exactly one incident kind, found: {found}")
        return self


# ------------------------------------------------------------------------------------- lawEnforcement


class ServedLegalProcessInternational(XmlModel):
    value: bool = text_content()
    flea_country: CountryCode | None = attribute("fleaCountry")  # the foreign agency's country


class LawEnforcement(XmlModel):
    agency_name: NonBlank255 = element("agencyName")
    case_number: Str100 | None = element("caseNumber", None)
    officer_contact: ContactPerson | None = element("officerContact", None)
    reported_to_le: bool | None = element("reportedToLe", None)
    served_legal_process_domestic: bool | None = element("servedLegalProcessDomestic", None)
    served_legal_process_international: ServedLegalProcessInternational | None = element(
        "servedLegalProcessInternational", None
    )


# ------------------------------------------------------------------------------------------- reporter


class Reporter(XmlModel):
    reporting_person: Person = element("reportingPerson")
    contact_person: ContactPerson | None = element("contactPerson", None)
    company_template: XmlStr | None = element("companyTemplate", None)
    terms_of_service: Prose3000 | None = element("termsOfService", None)
    legal_url: Url2083 | None = element("legalURL", None)

    @model_validator(mode="after")
    def _reporting_person_has_email(self) -> Reporter:
        # NCMEC's documentation requires it although the XSD does not.
        if not self.reporting_person.email:
            raise rule_violation("reportingPerson.email", "the reporting person needs at least one email")
        return self


# --------------------------------------------------------------------- people: reported, recipient, victim


class PersonOrUserReported(XmlModel):
    person_or_user_reported_person: Person | None = element("personOrUserReportedPerson", None)
    vehicle_description: Str300 | None = element("vehicleDescription", None)
    esp_identifier: Str255 | None = element("espIdentifier", None)
    esp_service: Str100 | None = element("espService", None)
    compromised_account: bool | None = element("compromisedAccount", None)
    screen_name: Str256 | None = element("screenName", None)
    display_name: list[XmlStr] = repeated("displayName")
    profile_url: list[Url] = repeated("profileUrl")
    profile_bio: XmlStr | None = element("profileBio", None)
    ip_capture_event: list[IpCaptureEvent] = repeated("ipCaptureEvent")
    device_id: list[DeviceId] = repeated("deviceId")
    third_party_user_reported: bool | None = element("thirdPartyUserReported", None)
    prior_ct_reports: list[ReportId] = repeated("priorCTReports")
    group_identifier: Str255 | None = element("groupIdentifier", None)
    account_temporarily_disabled: AccountTemporarilyDisabled | None = element("accountTemporarilyDisabled", None)
    account_permanently_disabled: AccountPermanentlyDisabled | None = element("accountPermanentlyDisabled", None)
    estimated_location: EstimatedLocation | None = element("estimatedLocation", None)
    all_emails_reported: bool | None = element("allEmailsReported", None)
    associated_account: list[AssociatedAccount] = repeated("associatedAccount")
    additional_info: XmlStr | None = element("additionalInfo", None)


class IntendedRecipient(XmlModel):
    """Like PersonOrUserReported minus vehicle, third-party flag and associated accounts."""

    intended_recipient_person: Person | None = element("intendedRecipientPerson", None)
    esp_identifier: Str255 | None = element("espIdentifier", None)
    esp_service: Str100 | None = element("espService", None)
    compromised_account: bool | None = element("compromisedAccount", None)
    screen_name: Str256 | None = element("screenName", None)
    display_name: list[XmlStr] = repeated("displayName")
    profile_url: list[Url] = repeated("profileUrl")
    profile_bio: XmlStr | None = element("profileBio", None)
    ip_capture_event: list[IpCaptureEvent] = repeated("ipCaptureEvent")
    device_id: list[DeviceId] = repeated("deviceId")
    prior_ct_reports: list[ReportId] = repeated("priorCTReports")
    group_identifier: Str255 | None = element("groupIdentifier", None)
    account_temporarily_disabled: AccountTemporarilyDisabled | None = element("accountTemporarilyDisabled", None)
    account_permanently_disabled: AccountPermanentlyDisabled | None = element("accountPermanentlyDisabled", None)
    estimated_location: EstimatedLocation | None = element("estimatedLocation", None)
    all_emails_reported: bool | None = element("allEmailsReported", None)
    additional_info: list[XmlStr] = repeated("additionalInfo")  # repeatable here only


class Victim(XmlModel):
    """``victimPerson`` is required; a victim has a school but no group identifier."""

    victim_person: Person = element("victimPerson")
    esp_identifier: Str255 | None = element("espIdentifier", None)
    esp_service: Str100 | None = element("espService", None)
    compromised_account: bool | None = element("compromisedAccount", None)
    screen_name: Str256 | None = element("screenName", None)
    display_name: list[XmlStr] = repeated("displayName")
    profile_url: list[Url] = repeated("profileUrl")
    profile_bio: XmlStr | None = element("profileBio", None)
    ip_capture_event: list[IpCaptureEvent] = repeated("ipCaptureEvent")
    device_id: list[DeviceId] = repeated("deviceId")
    school_name: Str255 | None = element("schoolName", None)
    prior_ct_reports: list[ReportId] = repeated("priorCTReports")
    account_temporarily_disabled: AccountTemporarilyDisabled | None = element("accountTemporarilyDisabled", None)
    account_permanently_disabled: AccountPermanentlyDisabled | None = element("accountPermanentlyDisabled", None)
    estimated_location: EstimatedLocation | None = element("estimatedLocation", None)
    all_emails_reported: bool | None = element("allEmailsReported", None)
    associated_account: list[AssociatedAccount] = repeated("associatedAccount")
    additional_info: XmlStr | None = element("additionalInfo", None)


# --------------------------------------------------------------------------------------------- report


class Report(XmlModel):
    """The root ``<report>``."""

    batched_report: BatchedReport | None = element("batchedReport", None)
    incident_summary: IncidentSummary = element("incidentSummary")
    # The docs ask for at least one; the XSD and NCMEC's server accept none, so neither do we insist.
    internet_details: list[InternetDetails] = repeated("internetDetails")
    law_enforcement: LawEnforcement | None = element("lawEnforcement", None)
    reporter: Reporter = element("reporter")
    person_or_user_reported: list[PersonOrUserReported] = repeated("personOrUserReported")
    intended_recipient: list[IntendedRecipient] = repeated("intendedRecipient")
    victim: list[Victim] = repeated("victim")
    additional_info: Prose3000 | None = element("additionalInfo", None)
