"""The schema comes from migrations alone, and they match the models."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from tipline.db import alembic_config, make_engine, upgrade


def test_migrations_match_the_models_on_postgresql(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises if the models need a migration not yet written


def test_the_embedded_sqlite_database_upgrades_in_place(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tipline.db'}"
    upgrade(url)
    upgrade(url)  # a second start finds nothing to do and keeps the data
    tables = set(inspect(make_engine(url)).get_table_names())
    assert {"api_key", "case_summary", "filed_report", "filed_file", "media_view", "alembic_version"} <= tables
    command.check(alembic_config(url))


def test_upgrading_keeps_existing_ids_owned_and_numbers_report_attempts(tmp_path: Path) -> None:
    """Cases and screenings issued before 0005 keep their recorded org; reports before 0006 get attempts 1, 2, …"""
    url = f"sqlite:///{tmp_path / 'tipline.db'}"
    command.upgrade(alembic_config(url), "0004")
    engine = make_engine(url)
    now = "2026-11-30 12:00:00"
    with engine.begin() as db:
        db.exec_driver_sql(
            "INSERT INTO case_summary (workflow_id, case_number, org_id, status, urgent, urgency_level, urgency_score,"
            " media_count, opened_at, updated_at) VALUES ('case-acme-kids-00', 1, 'acme-kids', 'filed', 0, 'normal',"
            " 0, 1, ?, ?), ('case-acme-kids-00', 2, 'acme-kids', 'awaiting_review', 0, 'normal', 0, 1, ?, ?)",
            (now, now, now, now))
        for report_id in (11, 12):
            db.exec_driver_sql(
                "INSERT INTO filed_report (org_id, workflow_id, case_number, ncmec_environment, ncmec_report_id,"
                " status, report_xml, submitted_by, opened_at) VALUES ('acme-kids', 'case-acme-kids-00', 1,"
                " 'sandbox', ?, 'expired', '<r/>', 'admin:1', ?)", (report_id, now))
        db.exec_driver_sql(
            "INSERT INTO triage_item (screening_id, org_id, creator_id, content_id, evidence_sha256,"
            " classifier_priority, status, created_at) VALUES ('screen-a-00', 'a', 'u', 'c', '00', 'HIGH',"
            " 'pending', ?)", (now,))
    upgrade(url)
    with engine.connect() as db:
        refs = db.exec_driver_sql("SELECT ref, kind, org_id, subject_key FROM issued_ref ORDER BY ref").all()
        attempts = db.exec_driver_sql("SELECT ncmec_report_id, attempt FROM filed_report ORDER BY id").all()
    assert [tuple(r) for r in refs] == [("case-acme-kids-00", "case", "acme-kids", None),
                                        ("screen-a-00", "screening", "a", None)]
    assert [tuple(a) for a in attempts] == [(11, 1), (12, 2)]
