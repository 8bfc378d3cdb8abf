"""The pure rules behind the decision and retry validators: which case can take which request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.case import (
    BankMatchSummary,
    CaseState,
    CaseStatus,
    ContentItem,
    ConversationThread,
    EvidenceRef,
    FilingPolicy,
    FilingProgress,
    MediaAnalysis,
    MediaDecision,
    MediaItem,
    MediaSource,
    ReviewDecision,
)
from models.conversation_csv import ConversationMessage
from models.review_rules import decision_errors, retry_errors, unseen_report_errors

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
DECISION = ReviewDecision(reviewer_id="admin:1", case_number=1, incident_type=INCIDENT, text_only=True)


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


EVIDENCE = EvidenceRef(sha256="0" * 64, md5="0" * 32, sha1="0" * 40, size=10)


def item(media_id: str, **fields: object) -> MediaItem:
    content = ContentItem(content_id=media_id, org_id="acme", user_id="u", media=MediaSource(evidence=EVIDENCE),
                          received_at=datetime.now(UTC))
    evidence = None if "preservation_error" in fields else EVIDENCE
    return MediaItem(media_id=media_id, content=content, evidence=evidence, **fields)


def test_a_report_of_nothing_is_refused_unless_text_only_or_a_conversation_is_attached() -> None:
    thread = ConversationThread(thread_id="t1", org_id="acme", user_id="u", messages=[ConversationMessage(
        message_id="1", sender="u", recipient="v", sent_at=datetime.now(UTC), content="hi")])
    awaiting = case(CaseStatus.AWAITING_REVIEW).model_copy(update={"media": [item("m1")], "conversations": [thread]})
    nothing = ReviewDecision(reviewer_id="admin:1", case_number=1, incident_type=INCIDENT,
                             media=[MediaDecision(media_id="m1", reported=False)])
    [error] = decision_errors(awaiting, nothing)
    assert error.startswith("media: nothing is reported") and "text_only" in error
    assert decision_errors(awaiting, nothing.model_copy(update={"text_only": True})) == []
    assert decision_errors(awaiting, nothing.model_copy(update={"attach_conversations": ["t1"]})) == []
    reported = nothing.model_copy(update={"media": [MediaDecision(media_id="m1", reported=True)]})
    assert decision_errors(awaiting, reported) == []


@pytest.mark.parametrize(("broken", "why"), [
    ({"analysis": MediaAnalysis(unhashable_reason="truncated PNG")}, "unhashable: truncated PNG"),
    ({"preservation_error": "HTTP 404 from the platform"}, "HTTP 404 from the platform"),
])
def test_a_broken_item_cannot_be_reported_as_if_it_were_fine(broken: dict, why: str) -> None:
    awaiting = case(CaseStatus.AWAITING_REVIEW).model_copy(update={"media": [item("good"), item("bad", **broken)]})
    decision = ReviewDecision(reviewer_id="admin:1", case_number=1, incident_type=INCIDENT,
                              media=[MediaDecision(media_id="good", reported=True, classification="B1"),
                                     MediaDecision(media_id="bad", reported=True, classification="B1")])
    [error] = decision_errors(awaiting, decision)
    assert error.startswith("media[1].") and why in error
    left_out = decision.model_copy(update={"media": [decision.media[0], MediaDecision(media_id="bad",
                                                                                      reported=False)]})
    assert decision_errors(awaiting, left_out) == []


def test_a_person_reports_only_what_they_have_seen_unless_the_org_files_bank_matches_unviewed() -> None:
    matched = MediaAnalysis(matches=[BankMatchSummary(bank_name="known", hash_type="pdq", distance=0)])
    awaiting = case(CaseStatus.AWAITING_REVIEW).model_copy(update={"media": [
        item("seen"), item("unseen"), item("matched", analysis=matched), item("skipped")]})
    decision = ReviewDecision(reviewer_id="user:1", case_number=1, incident_type=INCIDENT, media=[
        MediaDecision(media_id="seen", reported=True, classification="A1"),
        MediaDecision(media_id="unseen", reported=True, classification="B1"),
        MediaDecision(media_id="matched", reported=True, classification="A1"),
        MediaDecision(media_id="skipped", reported=False)])  # not reported: nothing to have seen
    errors = unseen_report_errors(awaiting, decision, {"seen"}, hash_matches_unviewed=False)
    assert [e.split(": ")[0] for e in errors] == ["media[1].media_id", "media[2].media_id"]
    assert "'unseen'" in errors[0] and "reveal it" in errors[0]
    # The org's choice to file bank matches unviewed (sent with fileViewedByEsp false) exempts only those.
    assert [e.split(": ")[0] for e in unseen_report_errors(awaiting, decision, {"seen"}, hash_matches_unviewed=True)
            ] == ["media[1].media_id"]
    assert unseen_report_errors(awaiting, decision, {"seen", "unseen", "matched"}, hash_matches_unviewed=False) == []
