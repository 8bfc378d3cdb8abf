"""The ``tipline`` command's own jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from models.records import ApiKey
from tests.helpers import ORG
from tipline.cli import main
from tipline.settings import Settings


def use_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name, value in {"TIPLINE_DATA_DIR": settings.data_dir, "TIPLINE_DATABASE_URL": settings.database_url,
                        "TIPLINE_ORGS_FILE": settings.orgs_file, "TIPLINE_SANDBOX_URL": settings.sandbox_url}.items():
        monkeypatch.setenv(name, str(value))


async def test_fetch_xsd_downloads_the_schema_with_the_orgs_credentials(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, xsd_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    use_settings(monkeypatch, settings)
    output = tmp_path / "schema.xsd"
    # In a thread: the command runs its own event loop, and the sandbox it calls lives on this one.
    await asyncio.to_thread(main, ["ncmec", "fetch-xsd", "--org", ORG, "--output", str(output)])
    assert await asyncio.to_thread(output.read_bytes) == await asyncio.to_thread(xsd_path.read_bytes)
    assert "TIPLINE_NCMEC_XSD_PATH=" in capsys.readouterr().out


def test_apikey_create_prints_a_key_stored_only_as_a_hash(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, engine, capsys: pytest.CaptureFixture
) -> None:
    from sqlmodel import Session, select

    use_settings(monkeypatch, settings)
    main(["apikey", "create", "--org", ORG, "--role", "auditor", "--label", "cli test"])
    key = capsys.readouterr().out.strip()
    assert key.startswith("tpl_")
    with Session(engine) as session:
        stored = session.exec(select(ApiKey).where(ApiKey.label == "cli test")).one()
    assert key not in stored.key_hash and stored.role == "auditor"


def test_apikey_create_refuses_an_org_that_is_not_configured(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    use_settings(monkeypatch, settings)
    with pytest.raises(LookupError):
        main(["apikey", "create", "--org", "no-such-org", "--role", "admin"])
