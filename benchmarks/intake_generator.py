"""A load generator process of ``bench_intake.py --generators N``. It reads one JSON line from stdin (what to
send, where, with which key: never an argument, which the process list would show), makes its images and
connections, prints ``ready``, waits for ``go``, sends with bounded concurrency and prints one JSON line: each
call's seconds and each user's case."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx  # noqa: E402
from temporalio.client import Client  # noqa: E402

from benchmarks.intake_measure import Item, in_process  # noqa: E402
from benchmarks.intake_senders import Api, bare_send  # noqa: E402
from models.records import Role  # noqa: E402
from tipline.codec import data_converter  # noqa: E402
from tipline.settings import Settings  # noqa: E402


async def main() -> None:
    spec: dict[str, Any] = json.loads(sys.stdin.readline())
    items = [Item.of(user_id, content_id, seed) for user_id, content_id, seed in spec["items"]]
    concurrency = int(spec["concurrency"])
    async with contextlib.AsyncExitStack() as stack:
        if spec["mode"] == "api":
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            http = [await stack.enter_async_context(httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0))
                    for url in spec["urls"]]
            send = Api(http=http, keys={Role.PLATFORM: spec["key"]}).send
        else:
            client = await Client.connect(spec["address"], data_converter=data_converter(Settings()))

            async def send(item: Item) -> str:
                return await bare_send(client, spec["task_queue"], spec["run"], item)

        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go"
        latencies, case_of, _ = await in_process(concurrency, send)(items)
    print(json.dumps({"latencies": latencies, "case_of": case_of}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
