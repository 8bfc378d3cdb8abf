"""History events, their payloads decoded with the project's data converter, in the plain shape the timeline
reads (``tipline.timeline``). The only I/O here is the codec (the payload keys)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.converter import DataConverter

from tipline.case_histories import RunHistory


@dataclass(frozen=True)
class DecodedEvent:
    event_id: int
    at: datetime
    type: str  # the event type without its prefix: "WORKFLOW_EXECUTION_SIGNALED", "ACTIVITY_TASK_COMPLETED", ...
    name: str | None = None  # the signal, update, activity or workflow type
    values: list[Any] = field(default_factory=list)  # the event's own payloads: input, arguments or result
    inputs: list[Any] = field(default_factory=list)  # for an activity's end: what it was scheduled with
    failure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DecodedRun:
    workflow_id: str
    run_id: str
    workflow_type: str
    events: list[DecodedEvent]


async def _values(converter: DataConverter, payloads: Payloads | None) -> list[Any]:
    if payloads is None or not payloads.payloads:
        return []
    try:
        return await converter.decode(list(payloads.payloads))
    except Exception as error:  # a payload under a key this deployment no longer has: say so, go on
        return [{"undecodable": type(error).__name__}]


async def _failure(converter: DataConverter, failure: Message) -> str:
    try:
        error = await converter.decode_failure(failure)  # type: ignore[arg-type]
    except Exception as problem:
        return f"undecodable failure ({type(problem).__name__})"
    cause = error.__cause__
    return str(error) + (f": {cause}" if cause is not None and str(cause) != str(error) else "")


def _attribute(payload: Payload) -> Any:
    """A search attribute's value (plain JSON, never encrypted: the server indexes it); None once unset."""
    try:
        value = json.loads(payload.data) if payload.data else None
    except ValueError:
        return None
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _at(event: Any) -> datetime:
    return event.event_time.ToDatetime().replace(tzinfo=UTC)


async def decode_run(run: RunHistory, converter: DataConverter) -> DecodedRun:
    """The events the timeline reads, decoded; other events (tasks, markers, timers) are left out."""
    scheduled: dict[int, tuple[str, list[Any]]] = {}
    decoded: list[DecodedEvent] = []
    for event in run.events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        base = {"event_id": event.event_id, "at": _at(event), "type": kind}
        if kind == "WORKFLOW_EXECUTION_STARTED":
            a = event.workflow_execution_started_event_attributes
            decoded.append(DecodedEvent(**base, name=a.workflow_type.name, values=await _values(converter, a.input),
                                        extra={"continued_from": a.continued_execution_run_id or None}))
        elif kind == "WORKFLOW_EXECUTION_SIGNALED":
            a = event.workflow_execution_signaled_event_attributes
            decoded.append(DecodedEvent(**base, name=a.signal_name, values=await _values(converter, a.input)))
        elif kind == "WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            decoded.append(DecodedEvent(**base, name=request.input.name,
                                        values=await _values(converter, request.input.args),
                                        extra={"update_id": request.meta.update_id}))
        elif kind == "ACTIVITY_TASK_SCHEDULED":
            a = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = (a.activity_type.name, await _values(converter, a.input))
        elif kind in ("ACTIVITY_TASK_COMPLETED", "ACTIVITY_TASK_FAILED", "ACTIVITY_TASK_TIMED_OUT"):
            if kind == "ACTIVITY_TASK_COMPLETED":
                a = event.activity_task_completed_event_attributes
                values, failure = await _values(converter, a.result), None
            elif kind == "ACTIVITY_TASK_FAILED":
                f = event.activity_task_failed_event_attributes
                a, values, failure = f, [], await _failure(converter, f.failure)
            else:
                a, values, failure = event.activity_task_timed_out_event_attributes, [], "timed out"
            name, inputs = scheduled.get(a.scheduled_event_id, ("unknown", []))
            decoded.append(DecodedEvent(**base, name=name, values=values, inputs=inputs, failure=failure))
        elif kind == "START_CHILD_WORKFLOW_EXECUTION_INITIATED":
            a = event.start_child_workflow_execution_initiated_event_attributes
            decoded.append(DecodedEvent(**base, name=a.workflow_type.name, extra={"workflow_id": a.workflow_id}))
        elif kind == "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES":
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            decoded.append(DecodedEvent(**base, extra={k: _attribute(v) for k, v in sorted(fields.items())}))
        elif kind == "WORKFLOW_EXECUTION_CONTINUED_AS_NEW":
            a = event.workflow_execution_continued_as_new_event_attributes
            decoded.append(DecodedEvent(**base, values=await _values(converter, a.input),
                                        extra={"next_run_id": a.new_execution_run_id}))
        elif kind == "WORKFLOW_EXECUTION_COMPLETED":
            a = event.workflow_execution_completed_event_attributes
            decoded.append(DecodedEvent(**base, values=await _values(converter, a.result)))
        elif kind in ("WORKFLOW_EXECUTION_FAILED", "WORKFLOW_EXECUTION_TERMINATED", "WORKFLOW_EXECUTION_TIMED_OUT"):
            decoded.append(DecodedEvent(**base))
    return DecodedRun(workflow_id=run.workflow_id, run_id=run.run_id, workflow_type=run.workflow_type,
                      events=decoded)
