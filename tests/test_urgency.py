"""The urgency assessment: each rule fires on its signal and not on a near miss, combinations land on the right
level, orgs can adjust the table safely, and the suggested NCMEC text always fits. Pure: no fixtures, no servers.
All data is synthetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cybertipline.enums import FileAnnotation, IncidentType, ReportAnnotation
from models.urgency import (
    _EVALUATORS,
    _PARAMETERS,
    DEFAULT_POLICY,
    DEFAULT_RULES,
    ELEVATED_SCORE,
    ESCALATION_TEXT_LIMIT,
    URGENCY_POLICY_V1,
    URGENT_SCORE,
    EvidenceText,
    MediaSignal,
    RuleKind,
    UrgencyAssessment,
    UrgencyLevel,
    UrgencyPolicy,
    UrgencyPolicyError,
    UrgencyReason,
    UrgencySignals,
    _suggested_reason,
    assess_urgency,
)

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


def signals(**fields: Any) -> UrgencySignals:
    return UrgencySignals(now=NOW, **fields)


def chat(ref: str, text: str) -> EvidenceText:
    return EvidenceText(source="conversation", ref=ref, text=text)


def report_text(ref: str, text: str) -> EvidenceText:
    return EvidenceText(source="user_report", ref=ref, text=text)


def uploads(minutes: list[float], **fields: Any) -> list[MediaSignal]:
    return [MediaSignal(media_id=f"m{index}", uploaded_at=NOW - timedelta(minutes=offset), **fields)
            for index, offset in enumerate(minutes)]


def fired(assessment: UrgencyAssessment) -> dict[str, list[str]]:
    return {reason.rule_id: reason.evidence for reason in assessment.reasons}


# (signals, rule that must fire, its exact evidence)
FIRES = [
    pytest.param({"incident_type": IncidentType.CHILD_SEX_TRAFFICKING}, "incident.trafficking", ["incident_type"],
                 id="incident-trafficking"),
    pytest.param({"incident_type": IncidentType.ONLINE_ENTICEMENT}, "incident.enticement", ["incident_type"],
                 id="incident-enticement"),
    pytest.param({"incident_type": IncidentType.CHILD_SEXUAL_MOLESTATION}, "incident.molestation", ["incident_type"],
                 id="incident-molestation"),
    pytest.param({"file_annotations": {"m2": ["liveStreaming"], "m1": ["viral", "liveStreaming"], "m3": ["viral"]}},
                 "file.live_streaming", ["m1", "m2"], id="file-live-streaming"),
    pytest.param({"file_annotations": {"m7": ["infant"]}}, "file.infant", ["m7"], id="file-infant"),
    pytest.param({"file_annotations": {"m4": ["physicalHarm", "violenceGore"]}}, "file.physical_harm", ["m4"],
                 id="file-physical-harm"),
    pytest.param({"file_annotations": {"m1": ["possibleSelfProduction"], "m2": ["viral"]},
                  "report_annotations": ["minorToMinorInteraction"]},
                 "file.self_production_between_minors", ["m1", "report_annotations.minorToMinorInteraction"],
                 id="file-self-production-between-minors"),
    pytest.param({"report_annotations": ["spam", "sextortion"]}, "report.sextortion",
                 ["report_annotations.sextortion"], id="report-sextortion"),
    pytest.param({"report_annotations": ["sadisticOnlineExploitation"]}, "report.sadistic_online_exploitation",
                 ["report_annotations.sadisticOnlineExploitation"], id="report-sadistic-online-exploitation"),
    pytest.param({"live_session_active": True}, "platform.live_session", ["platform.live_session"],
                 id="platform-live-session"),
    pytest.param({"victim_age": 9}, "platform.victim_under_13", ["platform.victim_age"], id="victim-under-13"),
    pytest.param({"victim_age": 0}, "platform.victim_under_13", ["platform.victim_age"], id="victim-newborn"),
    pytest.param({"victim_age": 15}, "platform.victim_13_to_17", ["platform.victim_age"], id="victim-teen"),
    pytest.param({"location_observed_at": NOW - timedelta(hours=3)}, "platform.recent_location",
                 ["platform.location"], id="recent-location"),
    pytest.param({"location_observed_at": NOW + timedelta(minutes=2)}, "platform.recent_location",
                 ["platform.location"], id="recent-location-clock-skew"),
    pytest.param({"texts": [chat("msg-12", "It is STILL happening, every weekend."), chat("msg-2", "ok")]},
                 "text.ongoing_abuse", ["conversation:msg-12"], id="text-ongoing-abuse"),
    pytest.param({"texts": [chat("msg-3", "Don\u2019t tell your mom about this")]},
                 "text.enticement", ["conversation:msg-3"], id="text-enticement-curly-apostrophe"),
    pytest.param({"texts": [chat("msg-4", "see you tonight"), chat("msg-5", "ok")]},
                 "text.time_pressure", ["conversation:msg-4"], id="text-time-pressure"),
    pytest.param({"texts": [chat("msg-9", "can we meet tonight?"), report_text("r-1", "He told her to come over.")]},
                 "text.meeting_plans", ["conversation:msg-9", "user_report:r-1"], id="text-meeting-plans"),
    pytest.param({"texts": [chat("msg-5", "what's   your address")]}, "text.meeting_plans", ["conversation:msg-5"],
                 id="text-meeting-plans-regex"),
    pytest.param({"texts": [EvidenceText(source="additional_info", ref="note", text="She said: I want to die.")]},
                 "text.self_harm", ["additional_info:note"], id="text-self-harm"),
    pytest.param({"texts": [chat("msg-1", "I'll post your pics tonight")]}, "text.sextortion_threat",
                 ["conversation:msg-1"], id="text-sextortion-threat"),
    pytest.param({"texts": [chat("msg-2", "I'm going to hurt her")]}, "text.imminent_harm",
                 ["conversation:msg-2"], id="text-imminent-harm"),
    pytest.param({"media": [MediaSignal(media_id="m2", classifier_priority="VERY_HIGH"),
                            MediaSignal(media_id="m1", classifier_priority="HIGH"),
                            MediaSignal(media_id="m3", classifier_priority="HIGH", hash_matched=True),
                            MediaSignal(media_id="m4", classifier_priority="MEDIUM")]},
                 "media.novel", ["m1", "m2"], id="media-novel"),
    pytest.param({"media": uploads([0, 2, 4, 6, 15, 300])}, "media.rapid_uploads", ["m0", "m1", "m2", "m3", "m4"],
                 id="rapid-uploads"),
]


@pytest.mark.parametrize(("fields", "rule_id", "evidence"), FIRES)
def test_each_rule_fires_on_its_signal_with_its_evidence(fields: dict, rule_id: str, evidence: list[str]) -> None:
    assessment = assess_urgency(signals(**fields))

    assert fired(assessment)[rule_id] == evidence
    reason = next(reason for reason in assessment.reasons if reason.rule_id == rule_id)
    assert reason.weight == DEFAULT_POLICY.rule(rule_id).weight
    assert reason.text.endswith(".") and reason.text.strip() == reason.text


def test_every_default_rule_has_a_firing_case() -> None:
    covered = {param.values[1] for param in FIRES}
    assert covered == set(DEFAULT_POLICY.rule_ids())


# (signals, rule that must NOT fire): the near misses
NEAR_MISSES = [
    pytest.param({"incident_type": IncidentType.CHILD_SEX_TOURISM}, "incident.trafficking",
                 id="tourism-not-trafficking"),
    pytest.param({"incident_type": IncidentType.CHILD_PORNOGRAPHY}, "incident.enticement", id="csam-not-enticement"),
    pytest.param({"incident_type": "child sexual molestation"}, "incident.molestation", id="incident-wrong-case"),
    pytest.param({"file_annotations": {"m1": ["viral", "potentialMeme"]}}, "file.live_streaming", id="viral-not-live"),
    pytest.param({"report_annotations": ["liveStreaming"]}, "file.live_streaming", id="live-as-report-annotation"),
    pytest.param({"file_annotations": {"m1": []}}, "file.infant", id="no-annotations"),
    pytest.param({"file_annotations": {"m1": ["violenceGore"]}}, "file.physical_harm", id="gore-not-physical-harm"),
    pytest.param({"file_annotations": {"m1": ["possibleSelfProduction"]}}, "file.self_production_between_minors",
                 id="self-production-alone"),
    pytest.param({"report_annotations": ["minorToMinorInteraction"]}, "file.self_production_between_minors",
                 id="minor-to-minor-alone"),
    pytest.param({"report_annotations": ["spam", "csamSolicitation"]}, "report.sextortion", id="spam-not-sextortion"),
    pytest.param({"report_annotations": ["csamSolicitation"]}, "report.sadistic_online_exploitation",
                 id="solicitation-not-sadistic"),
    pytest.param({"live_session_active": False}, "platform.live_session", id="no-live-session"),
    pytest.param({"victim_age": 13}, "platform.victim_under_13", id="victim-13-not-under-13"),
    pytest.param({"victim_age": 18}, "platform.victim_13_to_17", id="victim-adult"),
    pytest.param({"victim_age": 12}, "platform.victim_13_to_17", id="victim-12-not-teen"),
    pytest.param({"location_observed_at": NOW - timedelta(hours=25)}, "platform.recent_location", id="stale-location"),
    pytest.param({"texts": [chat("msg-1", "my sister is still happy there")]}, "text.ongoing_abuse",
                 id="still-not-still-happening"),
    pytest.param({"texts": [chat("msg-1", "don't tellings")]}, "text.enticement", id="phrase-inside-a-word"),
    pytest.param({"texts": [chat("msg-1", "our team meeting is tonight"), chat("msg-2", "the meetup was fun")]},
                 "text.meeting_plans", id="meeting-in-unrelated-sense"),
    pytest.param({"texts": [chat("msg-1", "welcome over there")]}, "text.meeting_plans", id="over-not-come-over"),
    pytest.param({"texts": [chat("msg-1", "that will hurt your chances")]}, "text.imminent_harm",
                 id="hurt-your-not-hurt-you"),
    pytest.param({"texts": [chat("msg-1", "this level is killing me lol")]}, "text.self_harm",
                 id="killing-me-not-kill-myself"),
    pytest.param({"texts": [chat("msg-1", "I'll post the link later")]}, "text.sextortion_threat",
                 id="post-the-link-not-a-threat"),
    pytest.param({"texts": [chat("msg-1", "the party is a secret from mom")]}, "text.enticement",
                 id="surprise-not-secrecy"),
    pytest.param({"media": [MediaSignal(media_id="m1", classifier_priority="HIGH", hash_matched=True)]},
                 "media.novel", id="high-but-hash-matched"),
    pytest.param({"media": [MediaSignal(media_id="m1", classifier_priority="MEDIUM")]}, "media.novel",
                 id="medium-priority"),
    pytest.param({"media": [MediaSignal(media_id="m1")]}, "media.novel", id="not-classified"),
    pytest.param({"media": uploads([0, 10, 20, 30, 40, 50])}, "media.rapid_uploads", id="uploads-spread-out"),
    pytest.param({"media": uploads([0, 1, 2, 3])}, "media.rapid_uploads", id="too-few-uploads"),
    pytest.param({"media": [MediaSignal(media_id=f"m{index}") for index in range(9)]}, "media.rapid_uploads",
                 id="upload-times-unknown"),
]


@pytest.mark.parametrize(("fields", "rule_id"), NEAR_MISSES)
def test_a_near_miss_does_not_fire(fields: dict, rule_id: str) -> None:
    assert rule_id not in fired(assess_urgency(signals(**fields)))


def test_no_signal_is_normal_with_score_zero_and_no_reasons() -> None:
    assessment = assess_urgency(signals())

    assert assessment == UrgencyAssessment(level=UrgencyLevel.NORMAL, score=0, reasons=[], suggested_reason=None)


@pytest.mark.parametrize(("fields", "level", "score"), [
    pytest.param({"incident_type": IncidentType.CHILD_SEX_TRAFFICKING}, "urgent", 50, id="trafficking-alone"),
    pytest.param({"file_annotations": {"m1": ["infant"]}}, "urgent", 50, id="infant-alone"),
    pytest.param({"incident_type": IncidentType.ONLINE_ENTICEMENT}, "urgent", 50, id="enticement-alone"),
    pytest.param({"incident_type": IncidentType.CHILD_SEXUAL_MOLESTATION}, "elevated", 40, id="molestation-alone"),
    pytest.param({"incident_type": IncidentType.CHILD_SEXUAL_MOLESTATION,
                  "location_observed_at": NOW - timedelta(hours=1)}, "urgent", 55,
                 id="molestation-with-recent-location"),
    pytest.param({"incident_type": IncidentType.ONLINE_ENTICEMENT, "texts": [chat("msg-4", "come over after school")]},
                 "urgent", 105, id="enticement-with-meeting-plans"),
    pytest.param({"texts": [chat("msg-4", "come over")]}, "elevated", 40, id="meeting-plans-alone"),
    pytest.param({"texts": [chat("msg-4", "come over after school")]}, "urgent", 55, id="meeting-plans-with-a-time"),
    pytest.param({"report_annotations": ["sextortion"], "texts": [chat("msg-8", "i want to die")]},
                 "urgent", 90, id="sextortion-with-self-harm-text"),
    pytest.param({"report_annotations": ["sextortion"], "victim_age": 11}, "urgent", 60,
                 id="sextortion-young-victim"),
    pytest.param({"report_annotations": ["sextortion"], "victim_age": 16}, "elevated", 45,
                 id="sextortion-teen-victim"),
    pytest.param({"media": uploads([0, 1, 2, 3, 4], classifier_priority="HIGH")}, "elevated", 45,
                 id="novel-rapid-uploads"),
    pytest.param({"live_session_active": True}, "urgent", 50, id="live-session-alone"),
    pytest.param({"live_session_active": True, "victim_age": 8}, "urgent", 70, id="live-session-young-victim"),
    pytest.param({"location_observed_at": NOW}, "normal", 15, id="recent-location-alone"),
    pytest.param({"media": uploads([0, 1, 2, 3, 4])}, "normal", 15, id="rapid-uploads-alone"),
    pytest.param({"victim_age": 16}, "normal", 5, id="teen-victim-alone"),
    pytest.param({"incident_type": IncidentType.CHILD_PORNOGRAPHY, "report_annotations": ["spam"],
                  "media": [MediaSignal(media_id="m1", classifier_priority="VERY_HIGH", hash_matched=True)]},
                 "normal", 0, id="known-material-no-urgency"),
])
def test_combinations_reach_the_right_level(fields: dict, level: str, score: int) -> None:
    assessment = assess_urgency(signals(**fields))

    assert (assessment.level, assessment.score) == (level, score)
    assert assessment.score == sum(reason.weight for reason in assessment.reasons)
    assert (assessment.suggested_reason is None) == (level == "normal")


def test_reasons_follow_table_order_whatever_the_input_order() -> None:
    assessment = assess_urgency(signals(
        media=uploads([0, 1, 2, 3, 4], classifier_priority="HIGH"), texts=[chat("msg-1", "kill myself")],
        victim_age=5, report_annotations=["sextortion"], incident_type=IncidentType.CHILD_SEX_TRAFFICKING,
    ))

    assert [reason.rule_id for reason in assessment.reasons] == [
        "incident.trafficking", "report.sextortion", "platform.victim_under_13", "text.self_harm",
        "media.novel", "media.rapid_uploads",
    ]


def test_reason_text_explains_what_matched_without_internal_ids() -> None:
    assessment = assess_urgency(signals(
        texts=[chat("msg-12", "Can we MEET   tonight? I can come over."), chat("msg-13", "come over")],
        location_observed_at=NOW - timedelta(hours=5), victim_age=10,
    ))
    texts = {reason.rule_id: reason.text for reason in assessment.reasons}

    assert texts["text.meeting_plans"] == ("Report or conversation text suggests plans to meet a child in person "
                                           '(2 texts; matched "come over", "meet tonight").')
    assert texts["platform.recent_location"].endswith("(observed 5 hours ago).")
    assert texts["platform.victim_under_13"].endswith("(age 10).")
    assert "msg-12" not in assessment.suggested_reason


def test_suggested_reason_lists_the_heaviest_reasons_first() -> None:
    assessment = assess_urgency(signals(location_observed_at=NOW, incident_type=IncidentType.CHILD_SEX_TRAFFICKING))

    assert assessment.suggested_reason == (
        "The incident is child sex trafficking: a child may be under someone's ongoing control. "
        "The platform has a recent location for the reported user (observed within the last hour)."
    )


def everything() -> UrgencySignals:
    """Synthetic signals that fire every default rule."""
    return signals(
        incident_type=IncidentType.CHILD_SEX_TRAFFICKING,
        file_annotations={"m0": ["liveStreaming", "infant", "physicalHarm", "possibleSelfProduction"]},
        report_annotations=["sextortion", "sadisticOnlineExploitation", "minorToMinorInteraction"],
        live_session_active=True, victim_age=12, location_observed_at=NOW,
        texts=[chat("a", "still happening"), chat("b", "meet me tonight"), chat("c", "i'll hurt you"),
               chat("d", "our secret"), chat("e", "i'll leak your pics"), chat("f", "i want to die")],
        media=uploads([0, 1, 2, 3, 4], classifier_priority="HIGH"),
    )


def test_suggested_reason_fits_ncmec_limit_dropping_whole_sentences() -> None:
    long = "This synthetic description is deliberately long to exhaust the limit. " * 6
    policy = DEFAULT_POLICY.with_overrides({rule_id: {"description": long} for rule_id in DEFAULT_POLICY.rule_ids()})

    assessment = assess_urgency(everything(), policy)

    text = assessment.suggested_reason
    assert text is not None and text.strip() and len(text) <= ESCALATION_TEXT_LIMIT
    kept = text.count(long.strip().rstrip("."))
    assert 0 < kept < len(assessment.reasons)
    assert text.endswith(f"({len(assessment.reasons) - kept} further indicators recorded in Tipline.)")


def test_quoted_matches_are_clipped() -> None:
    policy = DEFAULT_POLICY.with_overrides({"text.ongoing_abuse": {"phrases": [r"x+"]}})

    assessment = assess_urgency(signals(texts=[chat("t", "x" * 5000)]), policy)

    assert "x" * 60 not in assessment.reasons[0].text and len(assessment.reasons[0].text) < 200


def test_a_single_overlong_sentence_is_cut_not_sent_whole() -> None:
    # Validation keeps real sentences far shorter than the limit; this guards the last line of defence.
    reasons = [UrgencyReason(rule_id="a", weight=9, text="word " * 1000, evidence=["x"]),
               UrgencyReason(rule_id="b", weight=1, text="Short.", evidence=["y"])]

    text = _suggested_reason(reasons)

    assert len(text) <= ESCALATION_TEXT_LIMIT and text.startswith("word word")
    assert text.endswith("… (1 further indicator recorded in Tipline.)")


def test_every_rule_kind_has_parameters_and_an_evaluator() -> None:
    assert set(get_args(RuleKind)) == set(_EVALUATORS) == set(_PARAMETERS)


def test_every_compatible_default_rule_fires_together() -> None:
    assessment = assess_urgency(everything())

    # A case has one incident type and a victim one age, so those rules exclude each other.
    exclusive = {"incident.enticement", "incident.molestation", "platform.victim_13_to_17"}
    assert [reason.rule_id for reason in assessment.reasons] == [
        rule_id for rule_id in DEFAULT_POLICY.rule_ids() if rule_id not in exclusive
    ]
    assert assessment.level is UrgencyLevel.URGENT
    assert len(assessment.suggested_reason or "") <= ESCALATION_TEXT_LIMIT


# --- Policy overrides --------------------------------------------------------------------------------------------


def test_disabling_a_rule_removes_it() -> None:
    policy = DEFAULT_POLICY.with_overrides({"file.live_streaming": {"enabled": False}})

    assessment = assess_urgency(signals(file_annotations={"m1": ["liveStreaming"]}), policy)

    assert assessment == UrgencyAssessment(level=UrgencyLevel.NORMAL, score=0, reasons=[], suggested_reason=None)
    assert DEFAULT_POLICY.rule("file.live_streaming").enabled  # the default is untouched


def test_weight_zero_contributes_nothing_and_is_not_listed() -> None:
    policy = DEFAULT_POLICY.with_overrides({"report.sextortion": {"weight": 0}})

    assert assess_urgency(signals(report_annotations=["sextortion"]), policy).reasons == []


@pytest.mark.parametrize(("overrides", "thresholds", "fields", "level"), [
    pytest.param({"report.sextortion": {"weight": 50}}, {}, {"report_annotations": ["sextortion"]}, "urgent",
                 id="heavier-weight"),
    pytest.param({}, {"urgent_at": 40}, {"incident_type": IncidentType.CHILD_SEXUAL_MOLESTATION}, "urgent",
                 id="lower-urgent-threshold"),
    pytest.param({}, {"elevated_at": 15}, {"location_observed_at": NOW}, "elevated", id="lower-elevated-threshold"),
    pytest.param({"platform.recent_location": {"hours": 72, "weight": 20}}, {},
                 {"location_observed_at": NOW - timedelta(hours=48)}, "elevated", id="longer-location-window"),
    pytest.param({"media.rapid_uploads": {"count": 3, "window_minutes": 60, "weight": 25}}, {},
                 {"media": uploads([0, 20, 40])}, "elevated", id="rapid-uploads-parameters"),
    pytest.param({"media.novel": {"min_priority": "MEDIUM"}}, {},
                 {"media": [MediaSignal(media_id="m1", classifier_priority="MEDIUM")]}, "elevated",
                 id="novel-lower-priority"),
    pytest.param({"text.meeting_plans": {"phrases": [r"meet at the (?:park|mall)"]}}, {},
                 {"texts": [chat("msg-1", "Meet at the PARK")]}, "elevated", id="org-phrase-list"),
    pytest.param({"incident.molestation": {"incident_types": ["Child Sex Tourism", "Child Sexual Molestation"]}}, {},
                 {"incident_type": IncidentType.CHILD_SEX_TOURISM}, "elevated", id="more-incident-types"),
])
def test_overrides_change_the_outcome(overrides: dict, thresholds: dict, fields: dict, level: str) -> None:
    policy = DEFAULT_POLICY.with_overrides(overrides, **thresholds)

    assert assess_urgency(signals(**fields), policy).level == level
    assert assess_urgency(signals(**fields)).level != level  # the default disagrees, so the override mattered


@pytest.mark.parametrize(("overrides", "thresholds", "message"), [
    pytest.param({"no.such_rule": {"weight": 0}}, {}, "unknown urgency rule 'no.such_rule'", id="unknown-rule-id"),
    pytest.param({"report.sextortion": {"wieght": 3}}, {}, "'report.sextortion': wieght", id="unknown-field"),
    pytest.param({"report.sextortion": {"weight": -1}}, {}, "'report.sextortion': weight", id="negative-weight"),
    pytest.param({"report.sextortion": {"id": "report.other"}}, {}, "id cannot be overridden", id="rename"),
    pytest.param({"report.sextortion": {"kind": "live_session"}}, {}, "kind cannot be overridden", id="change-kind"),
    pytest.param({"report.sextortion": {"hours": 3}}, {}, "does not use hours", id="parameter-of-another-kind"),
    pytest.param({"file.infant": {"file_annotations": ["Infant"]}}, {}, "file_annotations", id="annotation-typo"),
    pytest.param({"file.infant": {"file_annotations": []}}, {}, "needs file_annotations", id="empty-annotations"),
    pytest.param({"text.imminent_harm": {"phrases": ["(unclosed"]}}, {}, "not a valid regular expression",
                 id="bad-regex"),
    pytest.param({"text.imminent_harm": {"phrases": ["a*"]}}, {}, "matches the empty string", id="empty-regex"),
    pytest.param({"platform.victim_13_to_17": {"min_age": 18}}, {}, "min_age must be below", id="empty-age-band"),
    pytest.param({}, {"elevated_at": 60}, "must not exceed urgent_at", id="thresholds-crossed"),
    pytest.param({}, {"elevated_at": 0}, "elevated_at", id="elevated-at-zero"),
    pytest.param({"media.novel": 0}, {}, "must be a mapping", id="override-not-a-mapping"),
])
def test_bad_overrides_are_refused_naming_the_problem(overrides: dict, thresholds: dict, message: str) -> None:
    with pytest.raises(UrgencyPolicyError, match=message) as caught:
        DEFAULT_POLICY.with_overrides(overrides, **thresholds)

    assert isinstance(caught.value, ValueError)


def test_a_policy_refuses_duplicate_rule_ids() -> None:
    with pytest.raises(ValidationError, match="'media.novel' appears twice"):
        UrgencyPolicy(rules=DEFAULT_RULES + (DEFAULT_POLICY.rule("media.novel"),))


def test_an_org_policy_round_trips_through_json() -> None:
    policy = DEFAULT_POLICY.with_overrides({"media.rapid_uploads": {"count": 8}}, urgent_at=60)

    assert UrgencyPolicy.model_validate_json(policy.model_dump_json()) == policy


# --- Inputs ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [
    pytest.param({"now": datetime(2026, 3, 14, 12, 0)}, id="naive-now"),
    pytest.param({"now": NOW, "location_observed_at": datetime(2026, 3, 14, 11, 0)}, id="naive-location"),
    pytest.param({"now": NOW, "media": [MediaSignal(media_id="m1"), MediaSignal(media_id="m1")]}, id="repeated-media"),
    pytest.param({"now": NOW, "victim_age": -1}, id="negative-age"),
    pytest.param({"now": NOW, "media": [{"media_id": "m1", "classifier_priority": "EXTREME"}]}, id="unknown-priority"),
])
def test_signals_refuse_what_would_make_the_rules_guess(fields: dict) -> None:
    with pytest.raises(ValidationError):
        UrgencySignals(**fields)


def test_signals_are_frozen() -> None:
    with pytest.raises(ValidationError):
        signals().live_session_active = True  # type: ignore[misc]


# --- Properties --------------------------------------------------------------------------------------------------

WORDS = ["hello", "meeting", "tonight", "meet", "me", "come", "over", "still", "happening", "don't", "tell",
         "kill", "myself", "hurt", "you", "your", "send", "more", "x", "ok"]
times = st.datetimes(min_value=datetime(2026, 3, 1), max_value=datetime(2026, 3, 14, 12), timezones=st.just(UTC))
texts = st.builds(
    EvidenceText,
    source=st.sampled_from(["user_report", "conversation", "additional_info"]),
    ref=st.text("abc123-", min_size=1, max_size=6),
    text=st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join),
)
media = st.lists(
    st.builds(
        MediaSignal,
        media_id=st.sampled_from([f"m{index}" for index in range(12)]),
        uploaded_at=st.none() | times,
        hash_matched=st.booleans(),
        classifier_priority=st.none() | st.sampled_from(["VERY_LOW", "LOW", "MEDIUM", "HIGH", "VERY_HIGH"]),
    ),
    max_size=10, unique_by=lambda item: item.media_id,
)
any_signals = st.builds(
    UrgencySignals,
    now=st.just(NOW),
    incident_type=st.none() | st.sampled_from(list(IncidentType)).map(str),
    file_annotations=st.dictionaries(st.sampled_from(["m0", "m1", "m2", "m3"]),
                                     st.lists(st.sampled_from(list(FileAnnotation)).map(str), max_size=3), max_size=4),
    report_annotations=st.lists(st.sampled_from(list(ReportAnnotation)).map(str), max_size=3),
    live_session_active=st.booleans(),
    victim_age=st.none() | st.integers(min_value=0, max_value=25),
    location_observed_at=st.none() | times,
    texts=st.lists(texts, max_size=5),
    media=media,
)
any_policy = st.builds(
    lambda weights, elevated_at, extra: DEFAULT_POLICY.with_overrides(
        dict(zip(DEFAULT_POLICY.rule_ids(), ({"weight": weight} for weight in weights), strict=False)),
        elevated_at=elevated_at, urgent_at=elevated_at + extra,
    ),
    st.lists(st.integers(min_value=0, max_value=80), max_size=len(DEFAULT_RULES)),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=0, max_value=100),
)


@settings(max_examples=200, deadline=None)
@given(any_signals, st.one_of(st.just(DEFAULT_POLICY), any_policy))
def test_any_signals_give_a_consistent_assessment(signals_: UrgencySignals, policy: UrgencyPolicy) -> None:
    assessment = assess_urgency(signals_, policy)

    assert assessment.score == sum(reason.weight for reason in assessment.reasons)
    if assessment.score >= policy.urgent_at:
        assert assessment.level is UrgencyLevel.URGENT
    elif assessment.score >= policy.elevated_at:
        assert assessment.level is UrgencyLevel.ELEVATED
    else:
        assert assessment.level is UrgencyLevel.NORMAL
    assert (assessment.suggested_reason is None) == (assessment.level is UrgencyLevel.NORMAL)
    if assessment.suggested_reason is not None:
        assert assessment.suggested_reason.strip() and len(assessment.suggested_reason) <= ESCALATION_TEXT_LIMIT
    ids = policy.rule_ids()
    positions = [ids.index(reason.rule_id) for reason in assessment.reasons]
    assert positions == sorted(positions)
    for reason in assessment.reasons:
        assert reason.weight > 0 and reason.evidence and reason.evidence == sorted(set(reason.evidence))


@settings(max_examples=200, deadline=None)
@given(any_signals)
def test_assessment_is_deterministic_and_ignores_input_order(signals_: UrgencySignals) -> None:
    shuffled = signals_.model_copy(update={
        "texts": list(reversed(signals_.texts)),
        "media": list(reversed(signals_.media)),
        "report_annotations": list(reversed(signals_.report_annotations)),
        "file_annotations": dict(reversed(list(signals_.file_annotations.items()))),
    })

    first = assess_urgency(signals_)
    assert assess_urgency(signals_) == first
    assert assess_urgency(UrgencySignals.model_validate_json(signals_.model_dump_json())) == first
    assert assess_urgency(shuffled) == first


def test_default_thresholds_are_what_the_table_comment_promises() -> None:
    assert (DEFAULT_POLICY.urgent_at, DEFAULT_POLICY.elevated_at) == (URGENT_SCORE, ELEVATED_SCORE) == (50, 20)


# --- The table cases started under before issue 12 keep (workflows/case.py, URGENCY_TABLE_PATCH) ----------------

@pytest.mark.parametrize(("fields", "level", "score", "rule_ids"), [
    pytest.param({"live_session_active": True}, "elevated", 30, ["platform.live_session"], id="live-session"),
    pytest.param({"live_session_active": True, "victim_age": 8}, "urgent", 50,
                 ["platform.live_session", "platform.victim_under_13"], id="live-session-young-victim"),
    pytest.param({"incident_type": IncidentType.ONLINE_ENTICEMENT}, "elevated", 40, ["incident.enticement"],
                 id="enticement"),
    pytest.param({"incident_type": IncidentType.ONLINE_ENTICEMENT, "texts": [chat("m", "come over after school")]},
                 "urgent", 80, ["incident.enticement", "text.meeting_plans"], id="enticement-meeting"),
    pytest.param({"report_annotations": ["sextortion"], "texts": [chat("m", "i want to die")]}, "urgent", 90,
                 ["report.sextortion", "text.imminent_harm"], id="sextortion-self-harm"),
    pytest.param({"texts": [chat("m", "Don't tell your mom")]}, "elevated", 40, ["text.ongoing_abuse"],
                 id="dont-tell-was-ongoing-abuse"),
    pytest.param({"texts": [chat("m", "I'll post your pics tonight")]}, "urgent", 50, ["text.imminent_harm"],
                 id="leak-threat-was-imminent-harm"),
    pytest.param({"texts": [chat("m", "abusing her right now")]}, "normal", 0, [], id="missed-ongoing-abuse"),
])
def test_the_v1_table_gives_what_it_always_gave(fields: dict, level: str, score: int, rule_ids: list[str]) -> None:
    assessment = assess_urgency(signals(**fields), URGENCY_POLICY_V1)

    assert (assessment.level, assessment.score) == (level, score)
    assert [reason.rule_id for reason in assessment.reasons] == rule_ids
    if "text.imminent_harm" in rule_ids:
        assert "imminent harm or self-harm" in (assessment.suggested_reason or "")


def test_a_cached_media_signal_follows_the_reasons_an_item_gains() -> None:
    """The workflow reassesses a case with its signals cached per item: a hash match found after the item was
    first assessed must still take it out of "novel" media, exactly as signals built afresh would."""
    from models.case import CaseState, ContentItem, EnqueueReason, MediaItem, MediaSource
    from models.case_urgency import MediaSignalCache, case_urgency_signals

    content = ContentItem(content_id="m1", org_id="o", user_id="u", media=MediaSource(url="https://p.test/m1"),
                          received_at=NOW)
    item = MediaItem(media_id="m1", content=content,
                     reasons=[EnqueueReason(kind="classifier", detail="VERY_HIGH")])
    case = CaseState(workflow_id="w", org_id="o", user_id="u", opened_at=NOW, media=[item])
    cache = MediaSignalCache()
    first = case_urgency_signals(case, NOW, signal_of=cache)
    assert first == case_urgency_signals(case, NOW)
    assert "media.novel" in {r.rule_id for r in assess_urgency(first).reasons}

    item.reasons.append(EnqueueReason(kind="hash_match", detail="bank b: pdq distance 0"))
    again = case_urgency_signals(case, NOW, signal_of=cache)
    assert again == case_urgency_signals(case, NOW)
    assert again.media[0].hash_matched
    assert "media.novel" not in {r.rule_id for r in assess_urgency(again).reasons}


def test_a_cached_media_signal_is_not_reused_for_another_item_of_the_same_id() -> None:
    """A content id may come back as a new item in a later case, with the same number of reasons."""
    from models.case import CaseState, ContentItem, EnqueueReason, MediaItem, MediaSource
    from models.case_urgency import MediaSignalCache, case_urgency_signals

    def item(received_at: datetime, kind: str) -> MediaItem:
        content = ContentItem(content_id="m1", org_id="o", user_id="u", media=MediaSource(url="https://p.test/m1"),
                              received_at=received_at)
        return MediaItem(media_id="m1", content=content, reasons=[EnqueueReason(kind=kind)])  # type: ignore[arg-type]

    cache = MediaSignalCache()
    earlier = CaseState(workflow_id="w", org_id="o", user_id="u", opened_at=NOW,
                        media=[item(NOW - timedelta(days=30), "hash_match")])
    later = CaseState(workflow_id="w", org_id="o", user_id="u", opened_at=NOW, case_number=2,
                      media=[item(NOW, "user_report")])
    case_urgency_signals(earlier, NOW, signal_of=cache)
    assert case_urgency_signals(later, NOW, signal_of=cache) == case_urgency_signals(later, NOW)
