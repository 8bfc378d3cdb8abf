"""``tipline demo``: a platform and a reviewer, played against the running stack with synthetic images."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from api.deps import create_api_key
from models.records import Role
from tipline.db import make_engine
from tipline.settings import Settings
from tipline.synthetic import synthetic_image
from tipline.temporal import case_ui_url

INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
MADE_UP_USERS = ("demo-user-aurora", "demo-user-basalt")


def mint_key(settings: Settings, org_id: str, role: Role) -> str:
    return create_api_key(make_engine(settings.resolved_database_url), org_id, role, f"demo {role.value}")


async def wait_for(api: httpx.AsyncClient, case_ref: str, reviewer: dict[str, str], done: Any,
                   timeout: float = 60.0, case_number: int | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    params = {"case_number": case_number} if case_number is not None else {}
    while True:
        case = (await api.get(f"/v1/cases/{case_ref}", params=params, headers=reviewer)).json()
        if done(case):
            return case
        if time.monotonic() > deadline:
            raise SystemExit(f"case {case_ref} did not get there in {timeout:.0f}s: {case.get('status')}")
        await asyncio.sleep(0.2)


async def run_demo(settings: Settings, org_id: str) -> None:
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    platform = {"X-API-Key": mint_key(settings, org_id, Role.PLATFORM)}
    reviewer = {"X-API-Key": mint_key(settings, org_id, Role.CHILD_SAFETY_MODERATOR)}
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        case_refs: list[str] = []
        for index, user in enumerate(MADE_UP_USERS):
            for n in range(3):
                seed = index * 10 + n
                response = await api.post(
                    "/v1/content/upload", headers=platform,
                    data={"content_id": f"{user}-{run}-{n}", "creator_id": f"{user}-{run}",
                          "upload_ip": f"198.51.100.{seed + 1}"},
                    files={"file": (f"synthetic-{seed}.png", synthetic_image(seed), "image/png")},
                )
                response.raise_for_status()
            case_refs.append(response.json()["case_ref"])
            print(f"platform: sent 3 synthetic images for made-up user {user}-{run} -> case {case_refs[-1]}")

        numbers: dict[str, int] = {}
        for case_ref in case_refs:
            case = await wait_for(api, case_ref, reviewer, lambda c: c.get("media") and len(c["media"]) == 3)
            numbers[case_ref] = case["case_number"]
            media = [m["media_id"] for m in case["media"]]
            decision = {
                "case_number": case["case_number"],  # the case the reviewer looked at
                "incident_type": INCIDENT,
                "media": [{"media_id": media[0], "reported": True, "classification": "B2"},
                          {"media_id": media[1], "reported": True, "classification": "B2",
                           "annotations": ["generativeAi"]},
                          {"media_id": media[2], "reported": False}],
                "additional_info": "Demo report with synthetic images.",
            }
            (await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)).raise_for_status()
            print(f"reviewer: classified case {case_ref} (2 reported, 1 not) and submitted")

        print("\nCases:")
        for case_ref in case_refs:
            case = await wait_for(api, case_ref, reviewer, lambda c: c["status"] in ("filed", "needs_attention"),
                                  case_number=numbers[case_ref])
            filing = case["filing"]
            outcome = (f"filed, NCMEC report {filing['report_id']} ({filing['environment']}), "
                       f"{len(filing['files'])} files" if case["status"] == "filed"
                       else f"needs attention: {case['attention_reason']}")
            print(f"  {case_ref}\n    {outcome}\n    {case_ui_url(settings, case_ref)}")


def main(settings: Settings, org_id: str) -> None:
    try:
        asyncio.run(run_demo(settings, org_id))
    except httpx.ConnectError:
        raise SystemExit("the stack is not running: start it with ./dev up") from None
