"""A small, bounded schemathesis pass in CI: no 5xx, no answer off its documented schema, no undocumented
status code or content type, for a platform key and a reviewer key (``benchmarks/fuzz_api.py`` runs longer)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from models.records import Role
from tests.api_fuzz import fuzz_api
from tests.helpers import ORG
from tipline.http_server import serve_app
from tipline.settings import Settings


async def test_a_bounded_schemathesis_pass_finds_nothing_undocumented_and_no_server_error(
    settings: Settings, temporal_client: Client, engine: Engine, api_keys: dict
) -> None:
    # A task queue no worker polls: the generated media_urls are accepted, and never fetched.
    unworked = settings.model_copy(update={"task_queue": f"tipline-fuzz-{uuid.uuid4().hex[:8]}"})
    app = create_app(unworked, temporal=temporal_client, engine=engine)
    keys = {"platform": api_keys[ORG][Role.PLATFORM], "reviewer": api_keys[ORG][Role.CHILD_SAFETY_MODERATOR]}
    async with serve_app(app) as url:
        report = await asyncio.to_thread(fuzz_api, url, keys, max_examples=3, time_limit=90)
    assert report.clean, report.summary()
    assert report.operations >= 20 and report.requests >= 150 and not report.out_of_time, report.summary()
    answered = {status for statuses in report.statuses.values() for status in statuses}
    assert {200, 202, 403, 404, 422} <= answered  # the pass reached handlers, not only the auth and validation
