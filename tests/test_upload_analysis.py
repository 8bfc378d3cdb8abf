"""An upload is hashed and matched by the API, which holds its bytes: its case needs no detection worker. When the
API cannot (banks loading or failing to load, every slot busy), the item goes to its case unanalysed and the
detection workers hash it as before; nothing is lost either way."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine, create_engine
from sqlmodel import Session, select
from temporalio.client import Client

from api.app import create_app
from api.upload_analysis import UploadAnalyzer
from detection.banks import BankRepository, NewEntry
from detection.media_hashes import hash_media
from models.records import Role
from models.retention import EvidenceLink
from tests.helpers import ORG, eventually, headers
from tipline.evidence import EvidenceStore
from tipline.settings import Settings
from tipline.synthetic import synthetic_image
from worker import case_worker


@pytest.fixture
async def api_without_detection_workers(settings: Settings, temporal_client: Client, engine: Engine
                                        ) -> AsyncIterator[tuple[httpx.AsyncClient, UploadAnalyzer]]:
    """The API analysing uploads, and a case worker for cases and platform calls only: nobody serves detection."""
    local = settings.model_copy(update={"task_queue": f"tipline-ua-{uuid.uuid4().hex[:8]}",
                                        "worker_queues": ["cases", "platform"], "api_analyzes_uploads": True})
    app = create_app(local, temporal=temporal_client, engine=engine)
    async with case_worker(temporal_client, local, engine), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as api:
        yield api, app.state.upload_analyzer


async def upload(api: httpx.AsyncClient, api_keys: dict, image: bytes, user: str) -> str:
    files = {"file": ("a.png", image, "image/png")}
    data = {"content_id": f"c-{uuid.uuid4().hex[:8]}", "creator_id": user}
    response = await api.post("/v1/content/upload", files=files, data=data, headers=headers(api_keys, Role.PLATFORM))
    assert response.status_code == 202, response.text
    return response.json()["case_ref"]


async def test_an_upload_arrives_in_its_case_hashed_and_matched_with_no_detection_worker(
        api_without_detection_workers: tuple[httpx.AsyncClient, UploadAnalyzer], api_keys: dict,
        engine: Engine) -> None:
    api, analyzer = api_without_detection_workers
    banked = synthetic_image(61_001, size=(128, 96))
    banks = BankRepository(engine)
    bank = banks.create_bank(ORG, f"upload-analysis-{uuid.uuid4().hex[:6]}")
    banks.add_entries(bank, [NewEntry("md5", hash_media(banked).digests.md5, external_id="k-ua", classification="A1")])

    # The first upload starts the bank load and goes unanalysed: with no detection worker it waits in its case.
    first_user = f"user-{uuid.uuid4().hex[:8]}"
    waiting_case = await upload(api, api_keys, synthetic_image(61_002), first_user)
    await eventually(lambda: _true_if(analyzer.ready), timeout=60, what="the API's banks loaded")

    user = f"user-{uuid.uuid4().hex[:8]}"
    case_ref = await upload(api, api_keys, banked, user)
    reviewer = headers(api_keys, Role.CHILD_SAFETY_MODERATOR)

    async def analysed() -> dict | None:
        response = await api.get(f"/v1/cases/{case_ref}", headers=reviewer)
        media = response.json().get("media", []) if response.status_code == 200 else []
        return media[0] if media and media[0]["analysis"] is not None else None

    item = await eventually(analysed, timeout=30, what="the upload's analysis in its case")
    assert [m["external_id"] for m in item["analysis"]["matches"]] == ["k-ua"]
    assert item["analysis"]["pdq"] is not None
    assert [r["kind"] for r in item["reasons"]] == ["hash_match"]
    assert "k-ua" not in str(item["reasons"]) and bank.name in item["reasons"][0]["detail"]
    with Session(engine) as session:  # the purge knows the object is this user's
        links = session.exec(select(EvidenceLink).where(EvidenceLink.case_ref == case_ref)).all()
    assert [link.sha256 for link in links] == [item["evidence"]["sha256"]]

    # With every slot busy hashing, an upload goes on unanalysed rather than waiting.
    taken = 0
    while analyzer._take_slot():
        taken += 1
    busy_case = await upload(api, api_keys, synthetic_image(61_004), f"user-{uuid.uuid4().hex[:8]}")
    for _ in range(taken):
        analyzer._give_slot()
    [busy] = await media_of(api, busy_case, reviewer)
    assert busy["analysis"] is None

    assert (analyzer.analysed, analyzer.handed_on) == (1, 2)

    # The item sent while the banks loaded is still there, waiting for a detection worker: not lost, not judged.
    [waiting] = await media_of(api, waiting_case, reviewer)
    assert waiting["analysis"] is None and waiting["evidence"] is not None and not waiting["broken"]


async def media_of(api: httpx.AsyncClient, case_ref: str, reviewer: dict[str, str]) -> list[dict]:
    async def arrived() -> list[dict] | None:
        response = await api.get(f"/v1/cases/{case_ref}", headers=reviewer)
        return (response.json().get("media") or None) if response.status_code == 200 else None

    return await eventually(arrived, timeout=30, what="the upload in its case")


async def _true_if(value: bool) -> bool | None:
    return True if value else None


async def test_the_api_hands_an_upload_to_the_case_when_it_cannot_analyse_it(settings: Settings) -> None:
    unreachable = create_engine("postgresql+psycopg://127.0.0.1:1/none", pool_pre_ping=False)
    store = EvidenceStore.from_settings(settings)
    evidence = store.put_bytes(synthetic_image(61_003))
    analyzer = UploadAnalyzer(settings.model_copy(update={"api_analyzes_uploads": True}), store, unreachable)

    assert await analyzer.analyze(ORG, "case-ref", evidence) is None  # starts the bank load, does not wait
    await eventually(lambda: _true_if(not analyzer._preparing.locked()), timeout=30, what="the failed bank load")
    assert not analyzer.ready
    # A failed load is not tried again on every upload.
    assert await analyzer.analyze(ORG, "case-ref", evidence) is None
    assert not analyzer._preparing.locked()

    off = UploadAnalyzer(settings.model_copy(update={"api_analyzes_uploads": False}), store, unreachable)
    assert await off.analyze(ORG, "case-ref", evidence) is None and not off._preparing.locked()
