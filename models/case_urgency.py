"""The signals a case holds, as the urgency assessment (``models.urgency``) reads them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from models.case import CaseState, MediaItem
from models.urgency import EvidenceText, MediaSignal, UrgencySignals

HASH_MATCH = "hash_match"
CLASSIFIER = "classifier"


class MediaChoices(Protocol):
    @property
    def media_id(self) -> str: ...
    @property
    def annotations(self) -> Sequence[str]: ...


class ReviewChoices(Protocol):
    """What the urgency rules read from a decision: a ReviewDecision, or a reviewer's draft being previewed."""

    @property
    def incident_type(self) -> str | None: ...
    @property
    def media(self) -> Sequence[MediaChoices]: ...
    @property
    def report_annotations(self) -> Sequence[str]: ...
    @property
    def additional_info(self) -> str | None: ...


def media_signal(item: MediaItem) -> MediaSignal:
    """What the rules read of one item: its content (frozen) and its reasons (only ever appended to)."""
    return MediaSignal(
        media_id=item.media_id,
        uploaded_at=item.content.uploaded_at or item.content.received_at,
        hash_matched=any(r.kind == HASH_MATCH for r in item.reasons),
        classifier_priority=next((r.detail for r in item.reasons if r.kind == CLASSIFIER), None),
    )


class MediaSignalCache:
    """Each item's ``MediaSignal``, built once and again only when the item gained a reason.

    A case reassesses its urgency on every change; validating a signal for each of 20,000 items every time
    made each workflow task of a large case cost ~170 ms, growing with the case. The item itself is kept and
    compared: the same content id may come back later as another item, in a later case."""

    def __init__(self) -> None:
        self._signals: dict[str, tuple[MediaItem, int, MediaSignal]] = {}

    def __call__(self, item: MediaItem) -> MediaSignal:
        known = self._signals.get(item.media_id)
        if known is not None and known[0] is item and known[1] == len(item.reasons):
            return known[2]
        signal = media_signal(item)
        self._signals[item.media_id] = (item, len(item.reasons), signal)
        return signal


def case_urgency_signals(case: CaseState, now: datetime, choices: ReviewChoices | None = None,
                         signal_of: Callable[[MediaItem], MediaSignal] = media_signal) -> UrgencySignals:
    """The signals of ``case``, with the reviewer's ``choices`` (default: the case's decision, if any).
    ``signal_of`` gives an item's signal (a ``MediaSignalCache`` for a case assessed again and again)."""
    decision = choices if choices is not None else case.decision
    indicators = [m.content.indicators for m in case.media if m.content.indicators is not None]
    ages = [i.victim_age for i in indicators if i.victim_age is not None]
    seen = [i.location_observed_at for i in indicators if i.location_observed_at is not None]
    texts = [EvidenceText(source="user_report", ref=m.media_id, text=m.content.report_text)
             for m in case.media if m.content.report_text]
    if decision is not None and decision.additional_info:
        texts.append(EvidenceText(source="additional_info", ref="decision", text=decision.additional_info))
    return UrgencySignals(
        now=now,
        incident_type=decision.incident_type if decision else None,
        file_annotations={d.media_id: [str(a) for a in d.annotations] for d in decision.media if d.annotations}
        if decision else {},
        report_annotations=[str(a) for a in decision.report_annotations] if decision else [],
        live_session_active=any(i.live_session_active for i in indicators),
        victim_age=min(ages, default=None),
        location_observed_at=max(seen, default=None),
        texts=texts,
        media=[signal_of(m) for m in case.media],
    )


def urgency_outcome(suggested: str | None, sent: str | None) -> str:
    """How the reviewer treated the suggestion: what an auditor needs beside the text that was sent."""
    if sent is None:
        return "cleared" if suggested else "not_urgent"
    if suggested is None:
        return "added"
    return "confirmed" if sent.strip() == suggested.strip() else "edited"


def suggestion_of_record(shown: str | None, recomputed: str | None) -> str | None:
    """The suggestion a decision is judged against: the one the reviewer was shown, when the client said which.

    The case's own suggestion may have been recomputed after the page loaded (new media, or the decision's
    annotations); judging against it would record "edited" for a reviewer who sent exactly what they saw.
    ``shown == ""`` means the reviewer was shown no suggestion.
    """
    if shown is None:
        return recomputed
    return shown.strip() or None
