"""``POST /v1/content/batch``: one signal per user, items in the right cases, a bad item named and nothing lost;
and the API's short-lived key cache."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from api.deps import create_api_key, hash_api_key, revoke_api_key
from api.key_cache import ApiKeyCache
from models.case import ContentItem, MediaSource
from models.records import ApiKey, Role
from tests.helpers import ORG, FakePlatform, eventually, fake_platform, headers
from tipline.intake import _parts
from tipline.synthetic import synthetic_image


def url_item(platform: FakePlatform, creator: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"content_id": f"{creator}-post-{n}", "creator_id": creator,
            "media_url": platform.add(f"{creator}-{n}", n), "file_name": f"upload-{n}.png",
            "content_type": "image/png", **extra}


async def case_media(api: httpx.AsyncClient, reviewer: dict[str, str], case_ref: str, count: int) -> list[str]:
    async def arrived() -> list[str] | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        ids = [m["media_id"] for m in case.get("media", [])]
        return ids if len(ids) >= count else None

    return await eventually(arrived, what=f"{count} items in {case_ref}")


async def content_signals(client: Client, case_ref: str) -> list[str]:
    history = await client.get_workflow_handle(case_ref).fetch_history()
    return [e.workflow_execution_signaled_event_attributes.signal_name for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]


async def test_a_batch_of_several_users_items_goes_to_each_users_case_in_one_signal_per_user(
    api: httpx.AsyncClient, api_keys: dict, temporal_client: Client
) -> None:
    platform_key, reviewer = headers(api_keys, Role.PLATFORM), headers(api_keys, Role.CHILD_SAFETY_MODERATOR)
    users = [f"user-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    a, b, c = users
    async with fake_platform() as platform:
        # Interleaved, as a platform's queue would send them.
        order = [(a, 1), (b, 1), (a, 2), (c, 1), (b, 2), (a, 3)]
        items = [url_item(platform, user, n) for user, n in order]
        response = await api.post("/v1/content/batch", json={"items": items}, headers=platform_key)
        assert response.status_code == 202, response.text
        accepted = response.json()["accepted"]
        # Answers in the order sent, each with its item's id.
        assert [x["content_id"] for x in accepted] == [i["content_id"] for i in items]
        refs = {user: {x["case_ref"] for x, (u, _) in zip(accepted, order, strict=True) if u == user}
                for user in users}
        assert all(len(r) == 1 for r in refs.values()) and len({next(iter(r)) for r in refs.values()}) == 3
        for user, count in ((a, 3), (b, 2), (c, 1)):
            case_ref = next(iter(refs[user]))
            # Each case holds exactly its user's items, in the order they were sent.
            assert await case_media(api, reviewer, case_ref, count) == [f"{user}-post-{n}" for n in range(1, count + 1)]
            # One signal for all of a user's items: the case's history has one content signal, the batch one.
            assert await content_signals(temporal_client, case_ref) == ["add_content_batch"]


async def test_a_batch_joins_a_case_the_single_item_endpoint_opened(
    api: httpx.AsyncClient, api_keys: dict, temporal_client: Client
) -> None:
    platform_key, reviewer = headers(api_keys, Role.PLATFORM), headers(api_keys, Role.CHILD_SAFETY_MODERATOR)
    user = f"user-{uuid.uuid4().hex[:8]}"
    async with fake_platform() as platform:
        first = await api.post("/v1/content", json=url_item(platform, user, 1), headers=platform_key)
        assert first.status_code == 202, first.text
        case_ref = first.json()["case_ref"]
        batch = await api.post("/v1/content/batch", json={"items": [url_item(platform, user, 2)]}, headers=platform_key)
        assert batch.json()["accepted"][0]["case_ref"] == case_ref
        assert await case_media(api, reviewer, case_ref, 2) == [f"{user}-post-1", f"{user}-post-2"]
    assert await content_signals(temporal_client, case_ref) == ["add_content", "add_content_batch"]


async def test_a_malformed_item_is_named_and_nothing_else_is_lost(
    api: httpx.AsyncClient, api_keys: dict, temporal_client: Client
) -> None:
    platform_key, reviewer = headers(api_keys, Role.PLATFORM), headers(api_keys, Role.CHILD_SAFETY_MODERATOR)
    a, b = (f"user-{uuid.uuid4().hex[:8]}" for _ in range(2))
    async with fake_platform() as platform:
        earlier = await api.post("/v1/content/batch", json={"items": [url_item(platform, a, 1)]}, headers=platform_key)
        case_a = earlier.json()["accepted"][0]["case_ref"]
        assert await case_media(api, reviewer, case_a, 1) == [f"{a}-post-1"]

        good_a, good_b = url_item(platform, a, 2), url_item(platform, b, 1)
        bad = {**url_item(platform, b, 2), "media_url": "not a url"}
        refused = await api.post("/v1/content/batch", json={"items": [good_a, bad, good_b]}, headers=platform_key)
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in refused.json()["errors"]] == ["body.items.1.media_url"]
        # Refused whole, before anything was sent: the earlier case is as it was, user b has no case yet.
        assert await content_signals(temporal_client, case_a) == ["add_content_batch"]
        queue = (await api.get("/v1/cases", headers=reviewer)).json()
        assert not any(entry["media_count"] and b in str(entry) for entry in queue)

        # The platform corrects the one item and sends the batch again: everything lands.
        fixed = await api.post("/v1/content/batch", json={"items": [good_a, url_item(platform, b, 2), good_b]},
                               headers=platform_key)
        assert fixed.status_code == 202, fixed.text
        refs = [x["case_ref"] for x in fixed.json()["accepted"]]
        assert refs[0] == case_a and refs[1] == refs[2] != case_a
        assert await case_media(api, reviewer, case_a, 2) == [f"{a}-post-1", f"{a}-post-2"]
        assert await case_media(api, reviewer, refs[1], 2) == [f"{b}-post-2", f"{b}-post-1"]


def test_a_users_items_are_split_only_to_stay_within_the_signal_budget() -> None:
    items = [ContentItem(content_id=f"c{n}", org_id=ORG, user_id="u", media=MediaSource(url=f"http://x.test/{n}"),
                         received_at=datetime(2026, 1, 1, tzinfo=UTC), report_text="x" * 300) for n in range(7)]
    size = len(items[0].model_dump_json())
    assert _parts(items, 100 * size) == [items]
    parts = _parts(items, 3 * size)
    assert [len(p) for p in parts] == [3, 3, 1] and [i for p in parts for i in p] == items
    assert [len(p) for p in _parts(items, size // 2)] == [1] * 7  # an item over the budget still goes, alone


async def test_the_key_cache_serves_a_key_until_its_entry_expires_then_honours_revocation(engine: Engine) -> None:
    now = [1000.0]
    cache = ApiKeyCache(engine, ttl_seconds=5, clock=lambda: now[0])
    key = create_api_key(engine, ORG, Role.PLATFORM, "cache test")
    key_hash = hash_api_key(key)
    found = await cache.lookup(key_hash)
    assert found is not None and found[1:] == (ORG, Role.PLATFORM)
    with Session(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.key_hash == key_hash)).one()
    assert row.id == found[0]
    revoke_api_key(engine, found[0])
    now[0] += 4.9  # within the entry's life: the cache answers, the database is not asked
    assert await cache.lookup(key_hash) == found
    now[0] += 0.2  # past it: read again, and refused
    assert await cache.lookup(key_hash) is None
    assert await cache.lookup(key_hash) is None
    # An unknown key is never remembered, so one created a moment later works at once.
    assert await cache.lookup(hash_api_key("tpl_unknown")) is None
    fresh = create_api_key(engine, ORG, Role.PLATFORM, "cache test 2")
    assert await cache.lookup(hash_api_key(fresh)) is not None


async def test_with_no_cache_time_every_request_reads_the_database(engine: Engine) -> None:
    cache = ApiKeyCache(engine, ttl_seconds=0, clock=lambda: 0.0)
    key = create_api_key(engine, ORG, Role.PLATFORM, "no cache")
    found = await cache.lookup(hash_api_key(key))
    assert found is not None
    revoke_api_key(engine, found[0])
    assert await cache.lookup(hash_api_key(key)) is None


async def test_an_upload_still_works_with_async_dependencies(api: httpx.AsyncClient, api_keys: dict) -> None:
    # The multipart endpoint's dependencies (principal, store, settings) are coroutines now.
    files = {"file": ("a.png", synthetic_image(3), "image/png")}
    data = {"content_id": f"c-{uuid.uuid4().hex[:8]}", "creator_id": f"user-{uuid.uuid4().hex[:8]}"}
    response = await api.post("/v1/content/upload", files=files, data=data, headers=headers(api_keys, Role.PLATFORM))
    assert response.status_code == 202, response.text
    unauthenticated = await api.post("/v1/content/upload", files=files, data=data)
    assert unauthenticated.status_code == 401
