"""The phrase table: made-up sentences and indicator sets, each with the level the default rules must give it.

The data lives in tests/fixtures/urgency_phrases.yaml so that adding a case is adding a row; each row is one
test. All text is synthetic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.urgency import EvidenceText, UrgencySignals, assess_urgency

TABLE = Path(__file__).parent / "fixtures" / "urgency_phrases.yaml"
NOW = datetime(2026, 5, 2, 18, 30, tzinfo=UTC)
FIELDS = {"id", "level", "report", "chat", "info", "indicators", "incident", "report_annotations",
          "file_annotations", "fires"}
INDICATORS = {"live_session_active", "victim_age", "location_hours_ago"}


def _rows() -> list[dict[str, Any]]:
    rows = yaml.safe_load(TABLE.read_text())
    assert isinstance(rows, list)
    return rows


def signals_of(row: dict[str, Any]) -> UrgencySignals:
    unknown = set(row) - FIELDS
    assert not unknown, f"row {row['id']}: unknown fields {unknown}"
    texts = [EvidenceText(source="conversation", ref=f"msg-{index}", text=text)
             for index, text in enumerate(row.get("chat", []))]
    if "report" in row:
        texts.append(EvidenceText(source="user_report", ref="report-1", text=row["report"]))
    if "info" in row:
        texts.append(EvidenceText(source="additional_info", ref="decision", text=row["info"]))
    indicators = dict(row.get("indicators", {}))
    assert set(indicators) <= INDICATORS, f"row {row['id']}: unknown indicators"
    hours = indicators.pop("location_hours_ago", None)
    return UrgencySignals(
        now=NOW,
        incident_type=row.get("incident"),
        report_annotations=row.get("report_annotations", []),
        file_annotations={"media-1": row["file_annotations"]} if "file_annotations" in row else {},
        location_observed_at=NOW - timedelta(hours=hours) if hours is not None else None,
        texts=texts,
        **indicators,
    )


ROWS = _rows()


def test_the_table_is_large_and_covers_every_level_and_kind() -> None:
    assert len(ROWS) >= 50
    assert len({row["id"] for row in ROWS}) == len(ROWS), "row ids must be unique"
    levels = [row["level"] for row in ROWS]
    assert {"urgent", "elevated", "normal"} == set(levels)
    assert levels.count("normal") >= 10, "benign look-alikes keep the rules honest"


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_each_row_gets_its_level(row: dict[str, Any]) -> None:
    assessment = assess_urgency(signals_of(row))
    reasons = {reason.rule_id: reason.text for reason in assessment.reasons}

    assert assessment.level == row["level"], f"score {assessment.score}, reasons {reasons}"
    assert set(row.get("fires", [])) <= set(reasons), reasons
