"""Where a screened item goes: the NCMEC queue, the triage queue, or nowhere. Pure, per the org's settings."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator

PRIORITIES = ("VERY_LOW", "LOW", "MEDIUM", "HIGH", "VERY_HIGH")


class Route(StrEnum):
    NCMEC = "ncmec"
    TRIAGE = "triage"
    CLEAR = "clear"


class ClassifierThresholds(BaseModel):
    """At or above ``high_precision`` an item goes straight to the NCMEC queue; from ``high_recall`` up to
    there it goes to triage, where a reviewer escalates or dismisses it."""

    model_config = ConfigDict(frozen=True)

    high_precision: str = "VERY_HIGH"
    high_recall: str = "HIGH"

    @model_validator(mode="after")
    def _ordered(self) -> ClassifierThresholds:
        for name in (self.high_precision, self.high_recall):
            if name not in PRIORITIES:
                raise ValueError(f"{name!r} is not a priority; use one of {', '.join(PRIORITIES)}")
        if PRIORITIES.index(self.high_recall) > PRIORITIES.index(self.high_precision):
            raise ValueError("high_recall must not be above high_precision")
        return self


def route_screened_item(*, bank_matched: bool, priority: str | None, thresholds: ClassifierThresholds) -> Route:
    """A bank match is a strong signal on its own; otherwise the classifier's priority decides."""
    if bank_matched:
        return Route.NCMEC
    if priority is None:
        return Route.CLEAR
    rank = PRIORITIES.index(priority)
    if rank >= PRIORITIES.index(thresholds.high_precision):
        return Route.NCMEC
    if rank >= PRIORITIES.index(thresholds.high_recall):
        return Route.TRIAGE
    return Route.CLEAR
