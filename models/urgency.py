"""A suggested urgency for a case, with its reasons: what pre-fills ``escalateToHighPriority``.

NCMEC triages reports the provider escalates ahead of the rest, so a false "urgent" costs other children
time and a missed one costs this child. Tipline therefore only *suggests*: every point of the score comes
from one row of a table an org can read and adjust, every row that fires says why and points at what
triggered it, and a reviewer confirms, edits or clears the suggestion.

Pure and deterministic: no clock (``signals.now`` is the clock), no I/O, reasons in table order, evidence
sorted. Workflow code, the API and tests can all call :func:`assess_urgency` alike.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cybertipline.enums import FileAnnotation, IncidentType, ReportAnnotation

# NCMEC refuses a blank escalateToHighPriority or one over 3000 characters (CYBERTIPLINE_API.md section 7).
ESCALATION_TEXT_LIMIT = 3000

ClassifierPriority = Literal["VERY_LOW", "LOW", "MEDIUM", "HIGH", "VERY_HIGH"]
# Lowest first. Kept here rather than imported from detection.classifier so this module stays free of
# numpy/fastapi and can run inside workflow code.
PRIORITY_ORDER: tuple[ClassifierPriority, ...] = ("VERY_LOW", "LOW", "MEDIUM", "HIGH", "VERY_HIGH")

RuleKind = Literal[
    "incident_type",  # the case's incident type is one of incident_types
    "file_annotation",  # some media carries one of file_annotations
    "report_annotation",  # the report carries one of report_annotations
    "file_and_report_annotation",  # both of the above at once
    "live_session",  # the platform says the user is live right now
    "victim_age",  # min_age <= victim's age < below_age
    "recent_location",  # the user's location was observed within the last `hours`
    "text",  # a user report, conversation message or additional info matches one of `phrases`
    "novel_media",  # classifier priority >= min_priority and no hash match
    "rapid_uploads",  # >= count media uploaded within window_minutes
]


class UrgencyLevel(StrEnum):
    URGENT = "urgent"
    ELEVATED = "elevated"
    NORMAL = "normal"


class UrgencyRule(BaseModel):
    """One row of the urgency table. ``description`` is the plain-English sentence a reviewer (and, if
    they keep it, NCMEC) reads when the rule fires, so write it as a statement about the case."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$", max_length=80)
    kind: RuleKind
    weight: int = Field(ge=0, le=1000)
    description: str = Field(min_length=1, max_length=1000)
    enabled: bool = True
    # Parameters; each kind uses exactly the ones _PARAMETERS lists for it.
    incident_types: tuple[IncidentType, ...] = ()
    file_annotations: tuple[FileAnnotation, ...] = ()
    report_annotations: tuple[ReportAnnotation, ...] = ()
    phrases: tuple[str, ...] = ()  # regexes, matched case-insensitively as whole words
    min_priority: ClassifierPriority | None = None
    count: int | None = Field(default=None, ge=2)
    window_minutes: int | None = Field(default=None, ge=1)
    hours: int | None = Field(default=None, ge=1)
    min_age: int | None = Field(default=None, ge=0)
    below_age: int | None = Field(default=None, ge=1)

    @field_validator("phrases")
    @classmethod
    def _phrases_compile(cls, phrases: tuple[str, ...]) -> tuple[str, ...]:
        for phrase in phrases:
            if not phrase.strip():
                raise ValueError("a phrase must not be blank")
            try:
                re.compile(phrase)
            except re.error as error:
                raise ValueError(f"phrase {phrase!r} is not a valid regular expression: {error}") from None
            if re.fullmatch(phrase, ""):
                # A phrase matching nothing would fire on every text.
                raise ValueError(f"phrase {phrase!r} matches the empty string")
        return phrases

    @model_validator(mode="after")
    def _parameters_fit_kind(self) -> UrgencyRule:
        # A parameter the kind ignores is almost always an override aimed at the wrong rule; say so.
        required, optional = _PARAMETERS[self.kind]
        for name in _ALL_PARAMETERS:
            value = getattr(self, name)
            is_set = value not in (None, ())
            if name in required and not is_set:
                raise ValueError(f"rule {self.id!r} of kind {self.kind!r} needs {name}")
            if name not in required and name not in optional and is_set:
                raise ValueError(f"rule {self.id!r} of kind {self.kind!r} does not use {name}")
        if self.min_age is not None and self.below_age is not None and self.min_age >= self.below_age:
            raise ValueError(f"rule {self.id!r}: min_age must be below below_age")
        return self


# kind -> (required parameters, optional parameters)
_PARAMETERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "incident_type": (frozenset({"incident_types"}), frozenset()),
    "file_annotation": (frozenset({"file_annotations"}), frozenset()),
    "report_annotation": (frozenset({"report_annotations"}), frozenset()),
    "file_and_report_annotation": (frozenset({"file_annotations", "report_annotations"}), frozenset()),
    "live_session": (frozenset(), frozenset()),
    "victim_age": (frozenset({"below_age"}), frozenset({"min_age"})),
    "recent_location": (frozenset({"hours"}), frozenset()),
    "text": (frozenset({"phrases"}), frozenset()),
    "novel_media": (frozenset({"min_priority"}), frozenset()),
    "rapid_uploads": (frozenset({"count", "window_minutes"}), frozenset()),
}
_ALL_PARAMETERS = (
    "incident_types", "file_annotations", "report_annotations", "phrases", "min_priority",
    "count", "window_minutes", "hours", "min_age", "below_age",
)

# Phrase lists: clinical, non-graphic, the words people use when abuse is ongoing or harm is close.
# Each entry is a regex matched case-insensitively as whole words ("meet tonight" does not match
# "meeting tonight"); the text's whitespace is collapsed and curly apostrophes straightened first, so
# write phrases with single spaces, and don'?t to also take "dont". A phrase may not start with an
# apostrophe (it would have to stand alone): write he'?s, not 's. tests/fixtures/urgency_phrases.yaml holds
# the made-up sentences each list must catch, and the look-alikes it must leave alone.
_KIN = r"(?:her|him|me|them|us|my (?:sister|brother|daughter|son|cousin|niece|nephew|friend|stepdaughter|stepson))"
_IMAGES = r"(?:pics|photos|pictures|nudes|videos|vids|images)"
ONGOING_ABUSE_PHRASES: tuple[str, ...] = (
    r"still happening", r"keeps happening", r"(?:it'?s|it is) happening (?:right )?now",
    r"happens every (?:day|night|week|weekend)", r"(?:he|she|they) still (?:does|do) it",
    r"won'?t stop (?:hurting|touching) me",
    rf"(?:is|are|he'?s|she'?s|they'?re|keeps?|kept|been) (?:abusing|molesting|raping|touching) {_KIN}",
    rf"(?:abusing|molesting|raping|touching) {_KIN} (?:right now|again|every (?:day|night))",
    r"(?:hurts|touches|abuses|rapes) (?:me|her|him) every (?:day|night|week)",
    r"comes? into (?:my|her|his) (?:room|bed) at night",
)
MEETING_PLAN_PHRASES: tuple[str, ...] = (
    r"meet (?:me|up)", r"meet (?:tonight|today|tomorrow)", r"meet (?:in person|irl|in real life)",
    r"come over", r"pick you up", r"(?:come to|at) (?:my|your) (?:place|house|car)", r"where do you live",
    r"(?:what'?s|send me|give me) your address", r"hotel room", r"sneak out",
    r"(?:i'?ll|i will|i can) come to you", r"come alone", r"don'?t bring anyone",
)
# A time on it: alone it is everyday talk, beside a meeting plan or enticement it makes the harm imminent.
TIME_PRESSURE_PHRASES: tuple[str, ...] = (
    r"tonight", r"right now", r"after school", r"tomorrow", r"this (?:weekend|evening|afternoon)",
    r"in (?:an|one|half an) hour", r"in (?:\d+|a few|five|ten|fifteen|twenty) minutes",
)
ENTICEMENT_PHRASES: tuple[str, ...] = (
    r"don'?t tell (?:your|anyone|anybody|ur)", r"our (?:little )?secret", r"a secret between us",
    r"keep (?:it|this|us) (?:a )?secret from your (?:mom|dad|mum|parents|family)",
    r"delete (?:our|this|the|these|my) (?:chat|chats|messages|conversation|texts|dms)",
    r"are you (?:home )?alone", r"(?:you'?re|you are|ur) (?:so )?mature for your age",
    r"send me (?:a |some |more )?(?:pic|pics|photo|photos|picture|pictures|video|videos|selfie|selfies) of "
    r"(?:you|yourself|your body)",
    r"(?:turn on|switch on|use) your (?:camera|webcam|cam) for me",
    r"(?:i'?ll|i will|i can) (?:buy|get) you (?:a |an |the )?(?:phone|gift|gift ?card|anything|whatever)",
)
SEXTORTION_THREAT_PHRASES: tuple[str, ...] = (
    rf"(?:i'?ll|i will|gonna|going to|i'?m going to) (?:leak|post|share|send|expose|show) "
    rf"(?:them|it|these|those|everything|your {_IMAGES})",
    rf"(?:send|show) (?:them|it|these|your {_IMAGES}) to (?:your )?"
    r"(?:friends|family|parents|mom|dad|school|teachers|followers|everyone)",
    r"(?:pay|send) (?:me )?(?:\$\d+|\d+ ?(?:dollars|usd|bucks)|money|gift ?cards?|bitcoin|crypto) or",
    r"or (?:i'?ll|i will) (?:post|share|send|leak|expose)", r"send more or",
    r"everyone (?:will|is gonna|is going to) see (?:them|it|your)", r"ruin your life",
)
SELF_HARM_PHRASES: tuple[str, ...] = (
    r"kill myself", r"end my life", r"want to die", r"(?:wanna|want to|going to|gonna|will|i'?ll|plan to) "
    r"(?:hurt|cut) myself", r"(?:been|keep|started) cutting myself",
    r"don'?t want to (?:live|be alive|be here) (?:anymore|any more)", r"better off dead", r"end it all",
    r"(?:commit|attempt|thinking about|thoughts of) suicide", r"suicidal", r"take all (?:my|the) pills",
)
IMMINENT_HARM_PHRASES: tuple[str, ...] = (
    r"(?:i'?ll|i will|gonna|going to|i'?m going to) (?:hurt|kill|beat) (?:you|her|him)",
    r"i know where you live",
)

# The score scale, so the weights below read as decisions rather than numbers:
#   50  urgent on its own: a child is plausibly at immediate risk (NCMEC's wording for the flag).
#   40  elevated on its own; urgent with any corroborating signal worth 10 or more.
#   20-30  elevated on its own: serious, but rarely time-critical without something else.
#   5-15  never enough alone; they make a report actionable (a place, an age, a pattern).
URGENT_SCORE = 50
ELEVATED_SCORE = 20

DEFAULT_RULES: tuple[UrgencyRule, ...] = (
    # --- The incident type the reviewer chose -------------------------------------------------------------
    UrgencyRule(
        id="incident.trafficking", kind="incident_type", weight=50,
        incident_types=(IncidentType.CHILD_SEX_TRAFFICKING,),
        description="The incident is child sex trafficking: a child may be under someone's ongoing control.",
    ),
    # Enticement is a step towards contact: urgent on its own, as NCMEC treats it.
    UrgencyRule(
        id="incident.enticement", kind="incident_type", weight=50,
        incident_types=(IncidentType.ONLINE_ENTICEMENT,),
        description="The incident is online enticement: an adult may be working towards contact with a child.",
    ),
    UrgencyRule(
        id="incident.molestation", kind="incident_type", weight=40,
        incident_types=(IncidentType.CHILD_SEXUAL_MOLESTATION,),
        description="The incident is child sexual molestation: the offender may have ongoing access to a child.",
    ),
    # --- File annotations ---------------------------------------------------------------------------------
    UrgencyRule(
        id="file.live_streaming", kind="file_annotation", weight=50,
        file_annotations=(FileAnnotation.LIVE_STREAMING,),
        description="Reported media was live streamed: the abuse may be happening in real time.",
    ),
    UrgencyRule(
        id="file.infant", kind="file_annotation", weight=50,
        file_annotations=(FileAnnotation.INFANT,),
        description="Reported media depicts an infant, who cannot disclose abuse or seek help.",
    ),
    UrgencyRule(
        id="file.physical_harm", kind="file_annotation", weight=40,
        file_annotations=(FileAnnotation.PHYSICAL_HARM,),
        description="Reported media shows physical harm to a child.",
    ),
    # Self-production alone is often an older teen; with minor-to-minor interaction it is a child being
    # pressured by a peer or someone posing as one, which moves fast.
    UrgencyRule(
        id="file.self_production_between_minors", kind="file_and_report_annotation", weight=25,
        file_annotations=(FileAnnotation.POSSIBLE_SELF_PRODUCTION,),
        report_annotations=(ReportAnnotation.MINOR_TO_MINOR_INTERACTION,),
        description="A minor appears to have produced the media during an interaction between minors.",
    ),
    # --- Report annotations -------------------------------------------------------------------------------
    # Sextortion runs on deadlines and has ended in suicides; with a threat or a young victim it is urgent.
    UrgencyRule(
        id="report.sextortion", kind="report_annotation", weight=40,
        report_annotations=(ReportAnnotation.SEXTORTION,),
        description="The report involves sextortion of a child.",
    ),
    # Sadistic exploitation groups coerce self-harm on camera: urgent on its own.
    UrgencyRule(
        id="report.sadistic_online_exploitation", kind="report_annotation", weight=50,
        report_annotations=(ReportAnnotation.SADISTIC_ONLINE_EXPLOITATION,),
        description="The report involves sadistic online exploitation, which often includes coerced self-harm.",
    ),
    # --- What the platform knows about the user and victim right now --------------------------------------
    # Live: whatever is being done may be happening as the reviewer reads this.
    UrgencyRule(
        id="platform.live_session", kind="live_session", weight=50,
        description="The reported user is in a live session on the platform right now.",
    ),
    UrgencyRule(
        id="platform.victim_under_13", kind="victim_age", weight=20, below_age=13,
        description="The platform reports the victim is under 13.",
    ),
    UrgencyRule(
        id="platform.victim_13_to_17", kind="victim_age", weight=5, min_age=13, below_age=18,
        description="The platform reports the victim is a minor aged 13 to 17.",
    ),
    # A fresh location is what lets law enforcement act; alone it says nothing about risk.
    UrgencyRule(
        id="platform.recent_location", kind="recent_location", weight=15, hours=24,
        description="The platform has a recent location for the reported user.",
    ),
    # --- Words in user reports, conversations and additional information ----------------------------------
    UrgencyRule(
        id="text.ongoing_abuse", kind="text", weight=50, phrases=ONGOING_ABUSE_PHRASES,
        description="Report or conversation text suggests the abuse is ongoing.",
    ),
    # A plan to meet is elevated; with a time on it or a young victim it is urgent.
    UrgencyRule(
        id="text.meeting_plans", kind="text", weight=40, phrases=MEETING_PLAN_PHRASES,
        description="Report or conversation text suggests plans to meet a child in person.",
    ),
    UrgencyRule(
        id="text.enticement", kind="text", weight=40, phrases=ENTICEMENT_PHRASES,
        description="Report or conversation text shows enticement: secrecy, isolation, gifts or requests for images.",
    ),
    UrgencyRule(
        id="text.time_pressure", kind="text", weight=15, phrases=TIME_PRESSURE_PHRASES,
        description="Report or conversation text puts a time on it.",
    ),
    # Sextortion runs on deadlines and has ended in suicides: a threat is urgent on its own.
    UrgencyRule(
        id="text.sextortion_threat", kind="text", weight=50, phrases=SEXTORTION_THREAT_PHRASES,
        description="Report or conversation text contains a sextortion threat: images leaked unless demands are met.",
    ),
    UrgencyRule(
        id="text.self_harm", kind="text", weight=50, phrases=SELF_HARM_PHRASES,
        description="Report or conversation text suggests a child may harm themselves.",
    ),
    UrgencyRule(
        id="text.imminent_harm", kind="text", weight=50, phrases=IMMINENT_HARM_PHRASES,
        description="Report or conversation text threatens imminent harm to a child or someone else.",
    ),
    # --- The media themselves -----------------------------------------------------------------------------
    # Never-seen material may show a child not yet identified, possibly still being abused.
    UrgencyRule(
        id="media.novel", kind="novel_media", weight=30, min_priority="HIGH",
        description="Reported media is new material: flagged by the classifier and matching no known hash.",
    ),
    # Albums make bursts common, so alone this only nudges; with novel material it points at active production.
    UrgencyRule(
        id="media.rapid_uploads", kind="rapid_uploads", weight=15, count=5, window_minutes=15,
        description="The user uploaded many media items in a short time.",
    ),
)


class UrgencyPolicyError(ValueError):
    """An org's urgency overrides or policy cannot be applied; the message names the rule and field."""


class UrgencyPolicy(BaseModel):
    """The rules table and the thresholds. Orgs adjust the default with :meth:`with_overrides`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[UrgencyRule, ...] = DEFAULT_RULES
    urgent_at: int = Field(default=URGENT_SCORE, ge=1)
    # At least 1, so that no signal at all can never read as anything but normal.
    elevated_at: int = Field(default=ELEVATED_SCORE, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> UrgencyPolicy:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"urgency rule {rule.id!r} appears twice")
            seen.add(rule.id)
        if self.elevated_at > self.urgent_at:
            raise ValueError(f"elevated_at ({self.elevated_at}) must not exceed urgent_at ({self.urgent_at})")
        return self

    def rule(self, rule_id: str) -> UrgencyRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise UrgencyPolicyError(f"unknown urgency rule {rule_id!r}; known rules: {', '.join(self.rule_ids())}")

    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self.rules]

    def level_for(self, score: int) -> UrgencyLevel:
        if score >= self.urgent_at:
            return UrgencyLevel.URGENT
        if score >= self.elevated_at:
            return UrgencyLevel.ELEVATED
        return UrgencyLevel.NORMAL

    def with_overrides(
        self,
        rules: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        urgent_at: int | None = None,
        elevated_at: int | None = None,
    ) -> UrgencyPolicy:
        """A new policy with some rules' fields changed, e.g. ``{"media.rapid_uploads": {"count": 8}}``.

        Every change is validated as if the row had been written that way; an unknown rule id, an unknown
        field, or a value the rule cannot take raises :class:`UrgencyPolicyError` naming the rule.
        To add a rule, build ``UrgencyPolicy(rules=policy.rules + (new_rule,))``.
        """
        changes = dict(rules or {})
        for rule_id, change in changes.items():
            self.rule(rule_id)  # raises, naming the unknown id
            if not isinstance(change, Mapping):
                raise UrgencyPolicyError(f"urgency rule {rule_id!r}: overrides must be a mapping of field to value")
        new_rules: list[UrgencyRule] = []
        for rule in self.rules:
            change = dict(changes.get(rule.id, {}))
            if not change:
                new_rules.append(rule)
                continue
            for fixed in ("id", "kind"):
                if fixed in change and change[fixed] != getattr(rule, fixed):
                    raise UrgencyPolicyError(f"urgency rule {rule.id!r}: {fixed} cannot be overridden")
            try:
                new_rules.append(UrgencyRule.model_validate({**rule.model_dump(), **change}))
            except ValidationError as error:
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in item['loc']) or 'rule'}: {item['msg']}"
                    for item in error.errors()
                )
                raise UrgencyPolicyError(f"urgency rule {rule.id!r}: {problems}") from None
        update: dict[str, Any] = {"rules": tuple(new_rules)}
        if urgent_at is not None:
            update["urgent_at"] = urgent_at
        if elevated_at is not None:
            update["elevated_at"] = elevated_at
        try:
            return UrgencyPolicy.model_validate({**self.model_dump(exclude={"rules"}), **update})
        except ValidationError as error:
            raise UrgencyPolicyError(f"urgency policy: {error}") from None


DEFAULT_POLICY = UrgencyPolicy()

# The table as it was before the rules learnt to call a live session, ongoing abuse and enticement urgent
# (and before enticement text, sextortion threats, self-harm and time pressure had rules of their own). Only
# cases started under it use it, so that their recorded histories replay: a different level changes the
# deadline and the search attributes the workflow publishes. See workflows/case.py, URGENCY_TABLE_PATCH.
_V1_ONGOING_ABUSE: tuple[str, ...] = (
    r"still happening", r"keeps happening", r"happens every (?:day|night|week|weekend)",
    r"(?:he|she|they) still (?:does|do) it", r"won'?t stop hurting me", r"don'?t tell",
    r"our (?:little )?secret", r"send more",
)
_V1_MEETING_PLANS: tuple[str, ...] = (
    r"meet (?:me|up)", r"meet (?:tonight|today|tomorrow)", r"come over", r"pick you up",
    r"(?:come to|at) (?:my|your) place", r"where do you live", r"(?:what'?s|send me) your address",
    r"hotel room", r"sneak out", r"(?:i'?ll|i will|i can) come to you",
)
_V1_IMMINENT_HARM: tuple[str, ...] = (
    r"kill myself", r"end my life", r"want to die", r"hurt myself", r"cut myself",
    r"hurt you", r"kill you",
    r"(?:i'?ll|i will|gonna|going to) (?:leak|post|share|send) (?:them|it|your (?:pics|photos|pictures|videos))",
)
URGENCY_POLICY_V1 = DEFAULT_POLICY.with_overrides({
    "incident.enticement": {"weight": 40},
    "platform.live_session": {"weight": 30},
    "text.ongoing_abuse": {"weight": 40, "phrases": _V1_ONGOING_ABUSE},
    "text.meeting_plans": {"phrases": _V1_MEETING_PLANS},
    "text.enticement": {"enabled": False},
    "text.time_pressure": {"enabled": False},
    "text.sextortion_threat": {"enabled": False},
    "text.self_harm": {"enabled": False},
    "text.imminent_harm": {"phrases": _V1_IMMINENT_HARM,
                           "description": "Report or conversation text suggests imminent harm or self-harm."},
})


class EvidenceText(BaseModel):
    """A piece of text the rules read; ``ref`` is its id within ``source`` (a message id, a report id)."""

    model_config = ConfigDict(frozen=True)

    source: Literal["user_report", "conversation", "additional_info"]
    ref: str = Field(min_length=1)
    text: str


class MediaSignal(BaseModel):
    """What the rules need to know about one media item of the case."""

    model_config = ConfigDict(frozen=True)

    media_id: str = Field(min_length=1)
    uploaded_at: AwareDatetime | None = None
    hash_matched: bool = False
    classifier_priority: ClassifierPriority | None = None


class UrgencySignals(BaseModel):
    """Everything the urgency rules read, gathered from a case. Datetimes must carry a timezone, so that
    recency and rate are never computed across naive and aware clocks."""

    model_config = ConfigDict(frozen=True)

    now: AwareDatetime
    incident_type: str | None = None
    file_annotations: dict[str, list[str]] = Field(default_factory=dict)  # media_id -> annotation names
    report_annotations: list[str] = Field(default_factory=list)
    live_session_active: bool = False
    victim_age: int | None = Field(default=None, ge=0)
    location_observed_at: AwareDatetime | None = None
    texts: list[EvidenceText] = Field(default_factory=list)
    media: list[MediaSignal] = Field(default_factory=list)

    @field_validator("media")
    @classmethod
    def _unique_media(cls, media: list[MediaSignal]) -> list[MediaSignal]:
        counts = Counter(item.media_id for item in media)
        duplicates = sorted(media_id for media_id, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"media ids must be unique, repeated: {', '.join(duplicates)}")
        return media


class UrgencyReason(BaseModel):
    """Why one rule fired. ``evidence`` points at what triggered it: media ids, ``source:ref`` of texts,
    ``incident_type``, ``report_annotations.<name>``, ``platform.<indicator>``."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    weight: int
    text: str
    evidence: list[str]


class UrgencyAssessment(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: UrgencyLevel
    score: int
    reasons: list[UrgencyReason]
    # Pre-fills escalateToHighPriority for the reviewer; None when nothing suggests escalating.
    suggested_reason: str | None


def assess_urgency(signals: UrgencySignals, policy: UrgencyPolicy = DEFAULT_POLICY) -> UrgencyAssessment:
    """Score ``signals`` against ``policy``'s table. A rule of weight 0 or disabled contributes nothing and
    is not listed, so "no signal" is always ``normal``, score 0, no reasons."""
    reasons: list[UrgencyReason] = []
    for rule in policy.rules:
        if not rule.enabled or rule.weight == 0:
            continue
        fired = _EVALUATORS[rule.kind](rule, signals)
        if fired is None:
            continue
        evidence, detail = fired
        reasons.append(UrgencyReason(
            rule_id=rule.id, weight=rule.weight, text=_sentence(rule.description, detail),
            evidence=sorted(set(evidence)),
        ))
    score = sum(reason.weight for reason in reasons)
    level = policy.level_for(score)
    suggested = None if level is UrgencyLevel.NORMAL else _suggested_reason(reasons)
    return UrgencyAssessment(level=level, score=score, reasons=reasons, suggested_reason=suggested)


# --- Rule evaluators: each returns (evidence, detail) when the rule fires, None when it does not. -----------

_Fired = tuple[list[str], str] | None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _incident_type(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    if signals.incident_type in rule.incident_types:
        return ["incident_type"], ""
    return None


def _media_with(signals: UrgencySignals, annotations: tuple[FileAnnotation, ...]) -> list[str]:
    return [media_id for media_id, names in signals.file_annotations.items() if set(names) & set(annotations)]


def _file_annotation(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    media_ids = _media_with(signals, rule.file_annotations)
    return (media_ids, _plural(len(media_ids), "file")) if media_ids else None


def _report_annotation(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    present = [name for name in rule.report_annotations if name in signals.report_annotations]
    return ([f"report_annotations.{name}" for name in present], "") if present else None


def _file_and_report_annotation(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    files = _file_annotation(rule, signals)
    report = _report_annotation(rule, signals)
    if files is None or report is None:
        return None
    return files[0] + report[0], files[1]


def _live_session(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    return (["platform.live_session"], "") if signals.live_session_active else None


def _victim_age(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    age = signals.victim_age
    if age is None or rule.below_age is None:
        return None
    if (rule.min_age or 0) <= age < rule.below_age:
        return ["platform.victim_age"], f"age {age}"
    return None


def _recent_location(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    if signals.location_observed_at is None or rule.hours is None:
        return None
    # A location stamped slightly after `now` is clock skew, not the future: it counts as just observed.
    age = max(signals.now - signals.location_observed_at, timedelta(0))
    if age > timedelta(hours=rule.hours):
        return None
    hours = int(age.total_seconds() // 3600)
    when = "observed within the last hour" if hours == 0 else f"observed {_plural(hours, 'hour')} ago"
    return ["platform.location"], when


# Quoted matches are capped so one rule's sentence cannot crowd the others out of the 3000 characters.
_MAX_QUOTED_MATCHES = 3
_MAX_QUOTE_LENGTH = 60


def _text(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    pattern = _phrase_pattern(rule.phrases)
    refs: list[str] = []
    matched: set[str] = set()
    for item in signals.texts:
        found = [match.group(0).lower() for match in pattern.finditer(_normalise(item.text))]
        if found:
            refs.append(f"{item.source}:{item.ref}")
            matched.update(found)
    if not refs:
        return None
    quotes = sorted(matched)[:_MAX_QUOTED_MATCHES]
    quoted = ", ".join(f'"{_clip(quote, _MAX_QUOTE_LENGTH)}"' for quote in quotes)
    more = f" and {len(matched) - len(quotes)} more" if len(matched) > len(quotes) else ""
    return refs, f"{_plural(len(set(refs)), 'text')}; matched {quoted}{more}"


def _normalise(text: str) -> str:
    # Phrases are written with single spaces and straight apostrophes; people type neither reliably.
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").split())


@lru_cache(maxsize=64)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    # Lookarounds rather than \b, so a phrase that starts or ends with punctuation still has to stand alone.
    alternatives = "|".join(f"(?:{phrase})" for phrase in phrases)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _novel_media(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    if rule.min_priority is None:
        return None
    floor = PRIORITY_ORDER.index(rule.min_priority)
    media_ids = [
        item.media_id for item in signals.media
        if not item.hash_matched
        and item.classifier_priority is not None
        and PRIORITY_ORDER.index(item.classifier_priority) >= floor
    ]
    return (media_ids, _plural(len(media_ids), "file")) if media_ids else None


def _rapid_uploads(rule: UrgencyRule, signals: UrgencySignals) -> _Fired:
    if rule.count is None or rule.window_minutes is None:
        return None
    window = timedelta(minutes=rule.window_minutes)
    # Sorted by time then id, so equal timestamps give the same burst whatever order the media came in.
    timed = sorted((item.uploaded_at, item.media_id) for item in signals.media if item.uploaded_at is not None)
    best: tuple[int, int] | None = None  # (start, end) of the largest burst, earliest on ties
    start = 0
    for end in range(len(timed)):
        while timed[end][0] - timed[start][0] > window:
            start += 1
        size = end - start + 1
        if size >= rule.count and (best is None or size > best[1] - best[0] + 1):
            best = (start, end)
    if best is None:
        return None
    burst = [media_id for _, media_id in timed[best[0]: best[1] + 1]]
    return burst, f"{_plural(len(burst), 'file')} within {rule.window_minutes} minutes"


_EVALUATORS: dict[str, Callable[[UrgencyRule, UrgencySignals], _Fired]] = {
    "incident_type": _incident_type,
    "file_annotation": _file_annotation,
    "report_annotation": _report_annotation,
    "file_and_report_annotation": _file_and_report_annotation,
    "live_session": _live_session,
    "victim_age": _victim_age,
    "recent_location": _recent_location,
    "text": _text,
    "novel_media": _novel_media,
    "rapid_uploads": _rapid_uploads,
}


def _sentence(description: str, detail: str) -> str:
    base = description.strip()
    if not detail:
        return base if base.endswith((".", "!", "?")) else base + "."
    return f"{base.rstrip('.')} ({detail})."


def _suggested_reason(reasons: list[UrgencyReason]) -> str:
    """One sentence per reason, heaviest first so that what NCMEC reads first is what matters most, and
    whole sentences dropped from the end (with a note saying how many) when 3000 characters run out."""
    sentences = [reason.text for reason in sorted(reasons, key=lambda reason: -reason.weight)]  # stable
    text = " ".join(sentences)
    if len(text) <= ESCALATION_TEXT_LIMIT:
        return text
    kept: list[str] = []
    for index, sentence in enumerate(sentences):
        omitted = len(sentences) - index - 1
        candidate = " ".join([*kept, sentence]) + _omitted_note(omitted)
        if len(candidate) > ESCALATION_TEXT_LIMIT:
            break
        kept.append(sentence)
    omitted = len(sentences) - len(kept)
    note = _omitted_note(omitted)
    if not kept:
        # Even the heaviest sentence alone is too long (an org's long description): cut it, keep the note.
        first = _clip(sentences[0], ESCALATION_TEXT_LIMIT - len(_omitted_note(omitted - 1)))
        return first + _omitted_note(omitted - 1)
    return " ".join(kept) + note


def _omitted_note(omitted: int) -> str:
    if omitted <= 0:
        return ""
    return f" ({_plural(omitted, 'further indicator')} recorded in Tipline.)"
