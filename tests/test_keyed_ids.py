"""Case and screening ids are keyed MACs: they reveal neither org nor user, and cannot be recomputed without the
deployment's key. Cases opened under the old unkeyed ids stay reachable and keep getting their users' content."""

from __future__ import annotations

import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from models.case import ContentItem, MediaSource
from models.records import IssuedRef, RefKind, Role
from tests.helpers import ORG, eventually, headers
from tipline.evidence import EvidenceStore
from tipline.ids import ID_KEY_FILE_NAME, IdKeyError, IdMinter, id_minter, legacy_case_id
from tipline.intake import signal_with_start
from tipline.registry import RefRegistry
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

KEY = b"k" * 32


def test_ids_show_neither_org_nor_user() -> None:
    minter = IdMinter(KEY)
    case, screening = minter.case_id("acme-kids", "user-1042"), minter.screening_id("acme-kids", "item-77")
    for ref in (case, screening):
        assert "acme" not in ref and "1042" not in ref and "77" not in ref
    assert case.startswith("case-") and screening.startswith("screening-")
    assert len(case) == len("case-") + 32 and len(screening) == len("screening-") + 32


def test_ids_are_stable_per_key_and_differ_across_keys() -> None:
    one, other = IdMinter(KEY), IdMinter(b"o" * 32)
    assert one.case_id(ORG, "u1") == IdMinter(KEY).case_id(ORG, "u1")
    assert one.case_id(ORG, "u1") != other.case_id(ORG, "u1")
    assert one.screening_id(ORG, "c1") != other.screening_id(ORG, "c1")
    assert one.case_id(ORG, "u1") != one.case_id(ORG, "u2") != one.case_id("globex", "u1")
    # Without the key, the unkeyed hash that used to be the id does not find the case.
    assert one.case_id(ORG, "u1").removeprefix("case-") not in legacy_case_id(ORG, "u1")


def test_a_short_key_is_refused_and_the_key_is_never_shown() -> None:
    with pytest.raises(IdKeyError):
        IdMinter(b"short")
    assert "k" * 8 not in repr(IdMinter(KEY))


def test_the_local_stack_generates_a_private_key_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = id_minter(settings).case_id(ORG, "u1")
    key_file = tmp_path / ID_KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert id_minter(settings).case_id(ORG, "u1") == first  # every process of the deployment agrees
    key_file.chmod(0o644)
    with pytest.raises(IdKeyError, match="readable by others"):
        id_minter(settings)


def test_a_configured_key_wins_and_production_requires_one(tmp_path: Path) -> None:
    configured = Settings(data_dir=tmp_path, id_key=SecretStr("c" * 40))
    assert id_minter(configured).case_id(ORG, "u1") == IdMinter(b"c" * 40).case_id(ORG, "u1")
    assert not (tmp_path / ID_KEY_FILE_NAME).exists()
    with pytest.raises(IdKeyError, match="TIPLINE_ID_KEY"):
        id_minter(Settings(data_dir=tmp_path, allow_production=True))


async def test_a_case_with_a_legacy_id_is_still_found_and_fed(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, engine: Engine, temporal_client: Client
) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    legacy = legacy_case_id(ORG, user)
    store = EvidenceStore.from_settings(settings)
    # A case the previous version opened: its workflow under the unkeyed id, its owner as migration 0005 records it.
    with Session(engine) as session:
        session.add(IssuedRef(ref=legacy, kind=RefKind.CASE, org_id=ORG))
        session.commit()
    first = ContentItem(content_id="before-upgrade", org_id=ORG, user_id=user, received_at=datetime.now(UTC),
                        media=MediaSource(evidence=store.put_bytes(synthetic_image(3101))))
    await signal_with_start(temporal_client, settings, legacy, ORG, user, "add_content", first)

    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": "after-upgrade", "creator_id": user},
                              files={"file": ("b.png", synthetic_image(3102), "image/png")})
    assert response.status_code == 202, response.text
    assert response.json()["case_ref"] == legacy

    async def both_items() -> dict | None:
        case = await api.get(f"/v1/cases/{legacy}", headers=headers(api_keys, Role.ADMIN))
        media = case.json().get("media", []) if case.status_code == 200 else []
        return case.json() if {m["media_id"] for m in media} == {"before-upgrade", "after-upgrade"} else None

    await eventually(both_items, what="both items in the legacy case")
    # Another org with the same user id gets a keyed case of its own; the legacy one is not theirs.
    registry = RefRegistry.from_settings(settings, engine)
    assert registry.case_ref_for("globex", user) not in (legacy, legacy_case_id("globex", user))
    assert registry.case_ref_for(ORG, user) == legacy


async def test_new_users_get_keyed_ids(api: httpx.AsyncClient, api_keys: dict, settings: Settings) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": "fresh", "creator_id": user},
                              files={"file": ("c.png", synthetic_image(3103), "image/png")})
    case_ref = response.json()["case_ref"]
    assert case_ref == id_minter(settings).case_id(ORG, user)
    assert ORG not in case_ref and user not in case_ref


async def test_a_legacy_case_started_across_the_upgrade_records_its_owner(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client
) -> None:
    """Started by the old version after the migration ran: its first queue row records its org, so reviewers
    reach it and the user's next content still joins it."""
    user = f"user-{uuid.uuid4().hex[:10]}"
    legacy = legacy_case_id(ORG, user)
    store = EvidenceStore.from_settings(settings)
    first = ContentItem(content_id="in-flight", org_id=ORG, user_id=user, received_at=datetime.now(UTC),
                        media=MediaSource(evidence=store.put_bytes(synthetic_image(3104))))
    await signal_with_start(temporal_client, settings, legacy, ORG, user, "add_content", first)

    async def reachable() -> bool:
        case = await api.get(f"/v1/cases/{legacy}", headers=headers(api_keys, Role.ADMIN))
        return case.status_code == 200

    await eventually(reachable, what="the in-flight legacy case to be reachable by its org")
    foreign = await api.get(f"/v1/cases/{legacy}", headers=headers(api_keys, Role.ADMIN, "acme-kids"))
    assert foreign.status_code == 404

    response = await api.post("/v1/content/upload", headers=headers(api_keys, Role.PLATFORM),
                              data={"content_id": "after", "creator_id": user},
                              files={"file": ("d.png", synthetic_image(3105), "image/png")})
    assert response.json()["case_ref"] == legacy
