"""The ``tipline`` command's own jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from api.deps import hash_api_key
from models.records import ApiKey
from tests.helpers import ORG, eventually
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


async def test_apikey_list_shows_keys_without_secrets_and_revoke_refuses_the_key_within_the_cache_time(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, api: httpx.AsyncClient, api_keys: dict,
    capsys: pytest.CaptureFixture
) -> None:
    use_settings(monkeypatch, settings)
    main(["apikey", "create", "--org", ORG, "--role", "child_safety_moderator", "--label", "revoke me"])
    # The key's own line: a worker still busy with an earlier test's cases may log to stdout meanwhile.
    key = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tpl_"))
    assert (await api.get("/v1/cases", headers={"X-API-Key": key})).status_code == 200

    main(["apikey", "list", "--org", ORG])
    listing = capsys.readouterr().out
    lines = listing.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["ID"])
    header, *rows = lines[start:]
    assert header.split() == ["ID", "ORG", "ROLE", "LABEL", "CREATED", "REVOKED"]
    assert rows and all(row.split()[1] == ORG for row in rows)  # --org: no other org's keys
    assert key not in listing and hash_api_key(key) not in listing
    for secret in (k for org in api_keys.values() for k in org.values()):
        assert secret not in listing and hash_api_key(secret) not in listing
    mine = next(row for row in rows if "revoke me" in row)
    key_id, _, role, *_, revoked = mine.split()
    assert role == "child_safety_moderator" and revoked == "-"

    main(["apikey", "revoke", key_id])
    assert f"API key {key_id} ({ORG}, child_safety_moderator) is revoked" in capsys.readouterr().out

    # The API remembers a valid key for api_key_cache_seconds: refused within that (plus a poll's slack).
    async def refused() -> bool:
        return (await api.get("/v1/cases", headers={"X-API-Key": key})).status_code == 401

    await eventually(refused, timeout=settings.api_key_cache_seconds + 2, what="the revoked key refused")
    main(["apikey", "list"])
    mine = next(row for row in capsys.readouterr().out.splitlines() if row.split()[0] == key_id)
    assert mine.split()[-1].endswith("Z")  # the revocation time, instead of "-"


def test_apikey_revoke_of_an_unknown_id_fails(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    use_settings(monkeypatch, settings)
    with pytest.raises(SystemExit, match="no API key with id 987654321"):
        main(["apikey", "revoke", "987654321"])
