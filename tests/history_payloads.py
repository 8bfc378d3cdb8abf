"""The payloads inside recorded histories: found anywhere in an event, and decrypted for replay fixtures."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadCodec

from tipline.codec import ENCRYPTED_ENCODING, CompressionCodec


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every codec-encoded payload in a history event: inputs, results, signals, updates, memos, failures."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        # Search attributes are the server's index, never encoded by design: they hold ids and states only.
        if field.message_type is None or field.name == "search_attributes":
            continue
        if field.message_type.GetOptions().map_entry:
            for item in value.values():
                if isinstance(item, Message):
                    yield from payloads_in(item)
        elif isinstance(value, Message):
            yield from payloads_in(value)
        else:  # a repeated field
            for item in value:
                yield from payloads_in(item)


async def decrypt_in_place(history: WorkflowHistory, codec: PayloadCodec) -> WorkflowHistory:
    """The history with every encrypted payload decoded by ``codec`` and stored as before encryption (plain, or
    zlib when large), so a fixture replays without the recording session's key, which dies with the session."""
    for event in history.events:
        for payload in list(payloads_in(event)):
            if payload.metadata.get("encoding") == ENCRYPTED_ENCODING:
                [plain] = await codec.decode([payload])
                [stored] = await CompressionCodec().encode([plain])
                payload.CopyFrom(stored)
    return history


def patch_ids(history_json: str) -> set[str]:
    """The ids of the patch markers (``workflow.patched``) a history, as Temporal's JSON, recorded."""
    markers = [e["markerRecordedEventAttributes"] for e in json.loads(history_json)["events"]
               if e.get("markerRecordedEventAttributes", {}).get("markerName") == "core_patch"]
    return {json.loads(base64.b64decode(m["details"]["patch-data"]["payloads"][0]["data"]))["id"] for m in markers}
