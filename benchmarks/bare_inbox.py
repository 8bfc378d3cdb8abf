"""The bare loop's worker, in a process of its own: the least a case could be, a workflow that keeps what it is
signalled. ``bench_intake.py`` starts it as ``python benchmarks/bare_inbox.py ADDRESS TASK_QUEUE``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from temporalio import workflow

WORKFLOW = "BenchInbox"
SIGNAL = "add"
QUERY = "contents"


@workflow.defn(name=WORKFLOW)
class BenchInbox:
    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.signal(name=SIGNAL)
    def add(self, content_id: str) -> None:
        self.received.append(content_id)

    @workflow.query(name=QUERY)
    def contents(self) -> list[str]:
        return self.received

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def serve(address: str, task_queue: str) -> None:
    # Imported here: the sandbox re-imports this module for every workflow, and needs none of these.
    from temporalio.client import Client
    from temporalio.worker import Worker

    from tipline.codec import data_converter
    from tipline.settings import Settings

    # The deployment's converter (compressed, encrypted payloads), from the data folder the case workers share.
    client = await Client.connect(address, data_converter=data_converter(Settings()))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    # Sandboxed, like the case workflows.
    async with Worker(client, task_queue=task_queue, workflows=[BenchInbox]):
        await stop.wait()


if __name__ == "__main__":
    # Run as a script, this file is __main__; the sandbox must import the workflow from a module it can find.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks import bare_inbox

    asyncio.run(bare_inbox.serve(sys.argv[1], sys.argv[2]))
