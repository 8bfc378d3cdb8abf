"""Routing a screened item by bank match and classifier priority."""

from __future__ import annotations

import pytest

from models.routing import ClassifierThresholds, Route, route_screened_item

DEFAULT = ClassifierThresholds()


@pytest.mark.parametrize(("matched", "priority", "route"), [
    (True, None, Route.NCMEC),
    (True, "VERY_LOW", Route.NCMEC),
    (False, "VERY_HIGH", Route.NCMEC),
    (False, "HIGH", Route.TRIAGE),
    (False, "MEDIUM", Route.CLEAR),
    (False, "VERY_LOW", Route.CLEAR),
    (False, None, Route.CLEAR),
])
def test_default_thresholds(matched: bool, priority: str | None, route: Route) -> None:
    assert route_screened_item(bank_matched=matched, priority=priority, thresholds=DEFAULT) is route


def test_an_org_can_widen_the_triage_band() -> None:
    wide = ClassifierThresholds(high_precision="HIGH", high_recall="LOW")
    assert route_screened_item(bank_matched=False, priority="HIGH", thresholds=wide) is Route.NCMEC
    assert route_screened_item(bank_matched=False, priority="LOW", thresholds=wide) is Route.TRIAGE


@pytest.mark.parametrize("bad", [{"high_recall": "VERY_HIGH", "high_precision": "HIGH"}, {"high_recall": "SEVERE"}])
def test_inconsistent_thresholds_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        ClassifierThresholds(**bad)
