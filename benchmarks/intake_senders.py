"""How ``bench_intake.py`` sends items, from its own process or from generator processes
(``intake_generator.py``): through the API, or as bare signal-with-starts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
from temporalio.client import Client

from benchmarks import bare_inbox
from benchmarks.intake_measure import Item
from models.records import Role


@dataclass
class Api:
    """The load generator's clients of the API processes; call ``n`` goes to process ``n`` modulo their count."""

    http: list[httpx.AsyncClient]
    keys: dict[Role, str]
    calls: int = 0

    def next(self) -> httpx.AsyncClient:
        self.calls += 1
        return self.http[self.calls % len(self.http)]

    async def send(self, item: Item) -> str:
        response = await self.next().post(
            "/v1/content/upload", headers={"X-API-Key": self.keys[Role.PLATFORM]},
            data={"content_id": item.content_id, "creator_id": item.user_id},
            files={"file": (f"{item.content_id}.png", item.image, "image/png")})
        if response.status_code != 202:
            raise RuntimeError(f"upload of {item.content_id}: {response.status_code} {response.text[:300]}")
        return str(response.json()["case_ref"])

    def reader(self, *, analysed_only: bool = False) -> Callable[[str], Awaitable[set[str]]]:
        """The media ids ``GET /v1/cases/{case_ref}`` lists; with ``analysed_only`` those already hashed."""

        async def seen(case_ref: str) -> set[str]:
            response = await self.next().get(f"/v1/cases/{case_ref}",
                                              headers={"X-API-Key": self.keys[Role.CHILD_SAFETY_MODERATOR]})
            if response.status_code != 200:
                raise RuntimeError(f"GET /v1/cases/{case_ref}: {response.status_code} {response.text[:300]}")
            return {media["media_id"] for media in response.json()["media"]
                    if media["analysis"] is not None or not analysed_only}

        return seen


def bare_workflow_id(run: str, item: Item) -> str:
    return f"bench-inbox-{run}-{item.user_id}"


async def bare_send(client: Client, task_queue: str, run: str, item: Item) -> str:
    workflow_id = bare_workflow_id(run, item)
    await client.start_workflow(bare_inbox.WORKFLOW, id=workflow_id, task_queue=task_queue,
                                start_signal=bare_inbox.SIGNAL, start_signal_args=[item.content_id],
                                execution_timeout=timedelta(hours=1))
    return workflow_id
