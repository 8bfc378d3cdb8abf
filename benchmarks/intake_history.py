"""What ``bench_intake.py`` measures of the case workflows' histories: events per item when items arrive spaced
out, and how long a worker taking over a long case spends replaying it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from benchmarks import intake_measure as clocks
from benchmarks.intake_measure import Item, make_items, wait_until_visible
from worker import WORKFLOW_RUNNER, WORKFLOWS

if TYPE_CHECKING:
    from benchmarks.intake_senders import Api

# After an item is hashed in its case, what its workflow does next (the queue row, the summary) finishes well
# within this; the next item then finds the workflow waiting, as an item a user posts minutes later would.
SPACING = 0.5
LONG_CASE_POLL = 0.5  # GET of a case with thousands of items is itself work: ask less often


@dataclass
class Figures:
    spaced_users: int = 0
    spaced_items: int = 0
    spaced_events: int = 0
    events_after_first: int = 0
    replay_items: int = 0
    replay_intake_seconds: float = 0.0
    replay_runs: list[tuple[int, float]] = field(default_factory=list)  # (events, seconds) per run, oldest first
    later_kinds: Counter[str] = field(default_factory=Counter)  # the events of the items after each user's first

    def lines(self) -> list[str]:
        lines = []
        if self.spaced_items:
            items = self.spaced_users * self.spaced_items
            marginal = (self.spaced_events - self.events_after_first) / (self.spaced_users * (self.spaced_items - 1)) \
                if self.spaced_items > 1 else float("nan")
            lines.append(f"history events per item, spaced out ({self.spaced_users} users x {self.spaced_items} "
                         f"items, each sent {SPACING} s after the one before was hashed): "
                         f"{self.spaced_events / items:.1f} on average (start included); "
                         f"{marginal:.1f} for each item after a user's first")
            later = self.spaced_users * (self.spaced_items - 1)
            if later:
                lines.append("  of which, per later item: " + ", ".join(
                    f"{kind.lower()} {count / later:.1f}" for kind, count in self.later_kinds.most_common()))
        if self.replay_runs:
            events = sum(e for e, _ in self.replay_runs)
            seconds = sum(s for _, s in self.replay_runs)
            newest_events, newest_seconds = self.replay_runs[-1]
            lines.append(f"replay of a {self.replay_items:,}-item case (sent in {self.replay_intake_seconds:.1f} s, "
                         f"until all hashed): {len(self.replay_runs)} run(s), {events:,} events, "
                         f"{seconds:.2f} s to replay them all; the newest run, which a worker taking over "
                         f"replays: {newest_events:,} events in {newest_seconds:.2f} s")
        return lines


async def history_of_every_run(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """The case's runs, oldest first, following each run's start back to the run it continued."""
    histories = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        previous = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        if not previous:
            return histories[::-1]
        run_id = previous


async def event_count(client: Client, workflow_id: str) -> int:
    return sum(len(history.events) for history in await history_of_every_run(client, workflow_id))


async def spaced_user(api: Api, client: Client, user_id: str, items: int,
                      first_seed: int) -> tuple[int, int, Counter[str]]:
    """One user's items, one at a time; returns the events after the first item and after the last, and the kinds
    of the events the later items added."""
    sent: set[str] = set()
    analysed = api.reader(analysed_only=True)
    case_ref = ""
    after_first = 0
    for n in range(items):
        item = Item.of(user_id, f"{user_id}-post-{n}", first_seed + n)
        case_ref = await api.send(item)
        sent.add(item.content_id)
        await wait_until_visible({case_ref: set(sent)}, 1, analysed)
        await asyncio.sleep(SPACING)  # the arrival pattern being measured, not a wait for state
        if n == 0:
            after_first = await event_count(client, case_ref)
    events = [event for history in await history_of_every_run(client, case_ref) for event in history.events]
    kinds = Counter(EventType.Name(event.event_type).removeprefix("EVENT_TYPE_") for event in events[after_first:])
    return after_first, len(events), kinds


async def replay_seconds(replayer: Replayer, history: WorkflowHistory) -> float:
    started = time.perf_counter()
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    elapsed = time.perf_counter() - started
    if result.replay_failure is not None:
        raise RuntimeError(f"replay of {history.workflow_id} failed: {result.replay_failure}")
    return elapsed


async def measure(api: Api, client: Client, spaced_users: int, spaced_items: int, replay_items: int,
                  run: str) -> Figures:
    figures = Figures(spaced_users=spaced_users, spaced_items=spaced_items if spaced_users else 0)
    if spaced_users and spaced_items:
        counts = await asyncio.gather(*(spaced_user(api, client, f"spaced-{run}-user-{u}", spaced_items,
                                                    2_000_000 + 100 * u) for u in range(spaced_users)))
        figures.events_after_first = sum(first for first, _, _ in counts)
        figures.spaced_events = sum(last for _, last, _ in counts)
        figures.later_kinds = sum((kinds for _, _, kinds in counts), Counter())
    if replay_items:
        case_refs: list[str] = []

        async def send(item: Item) -> str:
            case_refs.append(await api.send(item))
            return case_refs[-1]

        items = make_items(replay_items, 1, f"long-{run}", first_seed=3_000_000)
        intake = await clocks.measure(items, 20, clocks.in_process(20, send), api.reader(),
                                      api.reader(analysed_only=True),
                                      pause=LONG_CASE_POLL)
        figures.replay_items = replay_items
        figures.replay_intake_seconds = intake.analysed_seconds or 0.0
        replayer = Replayer(workflows=WORKFLOWS, workflow_runner=WORKFLOW_RUNNER, data_converter=client.data_converter)
        histories = await history_of_every_run(client, case_refs[-1])
        await replay_seconds(replayer, histories[-1])  # untimed: the sandbox's first imports
        figures.replay_runs = [(len(h.events), await replay_seconds(replayer, h)) for h in histories]
    return figures
