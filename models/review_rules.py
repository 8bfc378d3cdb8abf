"""Whether a reviewer's decision can be filed for a case. Pure: the workflow's update validator and
the tests call it alike."""

from __future__ import annotations

from models.case import CaseState, CaseStatus, FilingPolicy, ReviewDecision, broken_reason

NCMEC_TEXT_LIMIT = 3000


def decision_errors(case: CaseState, decision: ReviewDecision, *, can_retract: bool = False) -> list[str]:
    """Every reason ``decision`` cannot be accepted for ``case``, each naming its field.

    A case that needs attention can be decided again; with ``can_retract`` even when its report is open
    (the report is withdrawn before the new decision is filed).
    """
    errors: list[str] = []
    reopenable = case.status is CaseStatus.NEEDS_ATTENTION and (can_retract or case.filing.report_id is None)
    if case.status is not CaseStatus.AWAITING_REVIEW and not reopenable:
        return [f"case: a case that is {case.status.value} takes no decision"]
    if decision.incident_type is None:
        errors.append("incident_type: an incident type is required")
    seen: set[str] = set()
    for index, item in enumerate(decision.media):
        field = f"media[{index}]"
        media = case.media_item(item.media_id)
        if media is None:
            errors.append(f"{field}.media_id: this case has no media {item.media_id!r}")
            continue
        if item.media_id in seen:
            errors.append(f"{field}.media_id: {item.media_id!r} is decided twice")
        seen.add(item.media_id)
        if item.reported and item.supplemental:
            errors.append(f"{field}.supplemental: a file is either reported or supplemental, not both")
        if not item.reported:
            if item.classification is not None:
                errors.append(f"{field}.classification: only reported media carry a classification")
            if item.annotations:
                errors.append(f"{field}.annotations: only reported media carry annotations")
        if item.sent and media.evidence is None:
            reason = media.preservation_error or "it is still being preserved"
            errors.append(f"{field}.media_id: media {item.media_id!r} has no preserved evidence ({reason})")
        elif item.reported and (broken := broken_reason(media)) is not None:
            # A truncated or undecodable file looks like any other thumbnail; filing it as judged would be a lie.
            errors.append(f"{field}.reported: media {item.media_id!r} is broken ({broken}) and cannot be "
                          "reported as if it were judged")
    if not any(m.reported for m in decision.media) and not decision.attach_conversations and not decision.text_only:
        errors.append("media: nothing is reported and no conversation is attached: report an item, attach a "
                      "conversation, or choose a text-only report (text_only)")
    for index, thread_id in enumerate(decision.attach_conversations):
        if case.conversation(thread_id) is None:
            errors.append(f"attach_conversations[{index}]: this case has no conversation {thread_id!r}")
    for field, text in (
        ("escalate_to_high_priority", decision.escalate_to_high_priority),
        ("additional_info", decision.additional_info),
    ):
        if text is None:
            continue
        if not text.strip():
            errors.append(f"{field}: must not be blank when given")
        elif len(text) > NCMEC_TEXT_LIMIT:
            errors.append(f"{field}: {len(text)} characters, NCMEC accepts at most {NCMEC_TEXT_LIMIT}")
    return errors


def unseen_report_errors(case: CaseState, decision: ReviewDecision, seen: set[str], *,
                         hash_matches_unviewed: bool) -> list[str]:
    """Items a person reports without having seen them (``seen``: the media ids in the view log under their own
    account), each naming its field. A person answers for what they report, so they must have looked at it; the
    one exception is the org's choice to file bank-matched items unviewed (``file_unviewed_hash_matches``), which
    then go to NCMEC with fileViewedByEsp false. Media the case does not hold is left to ``decision_errors``."""
    errors = []
    for index, item in enumerate(decision.media):
        media = case.media_item(item.media_id)
        if not item.reported or media is None or item.media_id in seen:
            continue
        if hash_matches_unviewed and media.analysis is not None and media.analysis.matches:
            continue
        errors.append(f"media[{index}].media_id: you have not viewed media {item.media_id!r}; reveal it (GET its "
                      "content_url) before reporting it")
    return errors


def retry_errors(case: CaseState, policy: FilingPolicy) -> list[str]:
    """Why a case cannot be sent back to filing as decided: only one that needs attention, whose cause can be
    fixed, a bounded number of times. NCMEC's refusals can be fixed outside the report (the account's rights, the
    org's settings) and are retried once they are; a decision that can never be filed as it is
    (``attention_permanent``: its evidence failed the integrity check) is decided again or dismissed instead."""
    if case.status is not CaseStatus.NEEDS_ATTENTION:
        return [f"case: only a case that needs attention can be retried, this one is {case.status.value}"]
    if case.attention_permanent:
        return ["case: this decision can never be filed as it is; decide the case again or dismiss it"]
    if case.filing_attempt >= policy.max_filing_attempts:
        return [f"case: filed {case.filing_attempt} times without success; decide the case again or dismiss it"]
    return []
