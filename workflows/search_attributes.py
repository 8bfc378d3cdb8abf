"""Search attributes an operator filters cases by in the Temporal UI. No names, emails or content."""

from temporalio.common import SearchAttributeKey

CASE_STATUS = SearchAttributeKey.for_keyword("TiplineCaseStatus")
ORG = SearchAttributeKey.for_keyword("TiplineOrg")
URGENT = SearchAttributeKey.for_bool("TiplineUrgent")
NCMEC_REPORT_ID = SearchAttributeKey.for_int("TiplineNcmecReportId")
NCMEC_DEADLINE = SearchAttributeKey.for_datetime("TiplineNcmecDeadline")
REVIEW_DEADLINE = SearchAttributeKey.for_datetime("TiplineReviewDeadline")
REVIEW_OVERDUE = SearchAttributeKey.for_bool("TiplineReviewOverdue")

# Each key with the type name ``temporal server start-dev --search-attribute`` expects.
ALL = (
    (CASE_STATUS, "Keyword"),
    (ORG, "Keyword"),
    (URGENT, "Bool"),
    (NCMEC_REPORT_ID, "Int"),
    (NCMEC_DEADLINE, "Datetime"),
    (REVIEW_DEADLINE, "Datetime"),
    (REVIEW_OVERDUE, "Bool"),
)


def dev_server_flags() -> list[str]:
    return [flag for key, kind in ALL for flag in ("--search-attribute", f"{key.name}={kind}")]
