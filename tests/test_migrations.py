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
