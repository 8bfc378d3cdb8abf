"""The pure rules behind the decision and retry validators: which case can take which request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.case import CaseState, CaseStatus, FilingPolicy, FilingProgress, ReviewDecision
from models.review_rules import decision_errors, retry_errors

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
DECISION = ReviewDecision(reviewer_id="admin:1", case_number=1, incident_type=INCIDENT)


def case(status: CaseStatus, *, report_id: int | None = None, permanent: bool = False, attempts: int = 1
         ) -> CaseState:
    return CaseState(workflow_id="case-acme-x", org_id="acme", user_id="u", opened_at=datetime.now(UTC),
                     status=status, filing=FilingProgress(report_id=report_id), attention_permanent=permanent,
                     filing_attempt=attempts)


@pytest.mark.parametrize("status", [CaseStatus.FILING, CaseStatus.FILED, CaseStatus.DISMISSED])
def test_a_case_past_review_takes_no_decision(status: CaseStatus) -> None:
    assert decision_errors(case(status), DECISION, can_retract=True) == [
        f"case: a case that is {status.value} takes no decision"]


def test_a_case_needing_attention_with_an_open_report_is_decided_again_only_when_the_report_can_be_retracted(
) -> None:
    stuck = case(CaseStatus.NEEDS_ATTENTION, report_id=7)
    assert decision_errors(stuck, DECISION, can_retract=True) == []
    assert decision_errors(stuck, DECISION, can_retract=False) == [
        "case: a case that is needs_attention takes no decision"]


def test_a_retry_is_refused_for_a_decision_that_can_never_be_filed_or_once_the_attempts_are_spent() -> None:
    policy = FilingPolicy(max_filing_attempts=3)
    assert retry_errors(case(CaseStatus.NEEDS_ATTENTION), policy) == []
    assert "decide the case again" in retry_errors(case(CaseStatus.NEEDS_ATTENTION, permanent=True), policy)[0]
    assert "3 times" in retry_errors(case(CaseStatus.NEEDS_ATTENTION, attempts=3), policy)[0]
    assert "only a case that needs attention" in retry_errors(case(CaseStatus.FILING), policy)[0]
