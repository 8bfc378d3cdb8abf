"""What Temporal stores of a case is ciphertext: a case full of made-up personal data goes from upload to a filed
CyberTip, then its whole history, read from the server by a client without Tipline's codec, holds none of that
data: not raw, not base64, not zlib-compressed."""

from __future__ import annotations

import base64
import ipaddress
import json
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecution

from models.records import Role
from tests.helpers import eventually, headers
from tests.history_payloads import payloads_in
from tipline.codec import ENCRYPTED_ENCODING
from tipline.settings import Settings
from tipline.synthetic import synthetic_image

INCIDENT = "Online Enticement of Children for Sexual Acts"


def secrets_of_a_case(tag: str) -> dict[str, str]:
    """Invented people and addresses, unique to this run so nothing else in the server can hold them."""
    return {
        "first name": f"Marguerite{tag}", "last name": f"Okonkwo{tag}",
        "email": f"m.okonkwo.{tag}@example.com", "screen name": f"quietfox_{tag}",
        # Canonical, as Tipline stores it: a group with leading zeros ("0a1b") would be shortened.
        "upload ip": str(ipaddress.IPv6Address(f"2001:db8::{tag[:4]}:{tag[4:8]}")),
        "login ip": f"203.0.113.{100 + int(tag[:2], 16) % 150}",
        "message": f"meet me behind the old mill at {tag} tonight",
        "victim name": f"Philippa{tag}", "victim email": f"pip.{tag}@example.com",
        "bio": f"collector of rare stamps {tag}",
    }


def base64_forms(needle: bytes) -> set[str]:
    """The needle's base64 in each of the three alignments it can have inside a longer base64 text."""
    forms = set()
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + needle).decode()
            # Drop the groups that mix in neighbouring bytes or padding; what is left is the needle's alone.
            forms.add(text[4 if shift else 0:-4])
    return forms


def sdk_written_skipped(event: HistoryEvent) -> Iterator[Payload]:
    """The event's payloads, less the marker bookkeeping the SDK writes itself, past the codec: a patch's id, a
    local activity's sequence number and type. They name code, not people (the raw checks still cover them)."""
    marker = event.marker_recorded_event_attributes
    if not event.HasField("marker_recorded_event_attributes"):
        yield from payloads_in(event)
        return
    for key, details in marker.details.items():
        if marker.marker_name == "core_patch" or key == "data":
            continue
        yield from details.payloads
    if marker.HasField("failure"):
        yield from payloads_in(marker.failure)


def inflated(data: bytes) -> list[bytes]:
    """``data`` and whatever zlib stream it is or holds (the codec's compression writes one at the start)."""
    found = [data]
    for start in range(len(data)):
        if data[start] == 0x78:  # a zlib header's first byte at any of the usual levels
            try:
                found.append(zlib.decompressobj().decompress(data[start:]))
            except zlib.error:
                continue
    return found


async def test_a_case_full_of_personal_data_leaves_only_ciphertext_in_temporal(
    api: httpx.AsyncClient, api_keys: dict, settings: Settings, temporal_client: Client
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    tag = uuid.uuid4().hex[:10]
    secret = secrets_of_a_case(tag)
    creator = f"user-{tag}"
    platform = headers(api_keys, Role.PLATFORM)
    user = {"person": {"first_name": secret["first name"], "last_name": secret["last name"]},
            "emails": [{"value": secret["email"]}], "screen_name": secret["screen name"],
            "profile_bio": secret["bio"], "ip_events": [{"ip_address": secret["login ip"], "event": "Login"}]}
    uploaded = await api.post("/v1/content/upload", headers=platform, data={
        "content_id": f"photo-{tag}", "creator_id": creator, "upload_ip": secret["upload ip"],
        "user": json.dumps(user),
    }, files={"file": ("photo.png", synthetic_image(int(tag[:6], 16)), "image/png")})
    assert uploaded.status_code == 202, uploaded.text
    case_ref = uploaded.json()["case_ref"]
    conversation = await api.post("/v1/content/conversations", headers=platform, json={
        "creator_id": creator, "thread_id": f"thread-{tag}", "messages": [
            {"message_id": "m1", "sent_at": "2026-01-02T10:00:00+00:00", "sender": secret["screen name"],
             "recipient": f"friend-{tag}", "content": secret["message"], "ip_address": secret["login ip"]}]})
    assert conversation.status_code == 202, conversation.text
    reviewer = headers(api_keys, Role.CHILD_SAFETY_MODERATOR)

    async def ready() -> bool:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return bool(case.get("media")) and all(m["evidence"] for m in case["media"]) and bool(case["conversations"])

    await eventually(ready, what="the item and the conversation in the case")
    decision = {"case_number": 1, "incident_type": INCIDENT,
                "media": [{"media_id": f"photo-{tag}", "reported": True, "classification": "A1"}],
                "attach_conversations": [f"thread-{tag}"],
                "additional_info": f"Synthetic: {secret['first name']} wrote to {secret['victim name']}.",
                "victims": [{"person": {"first_name": secret["victim name"]},
                             "emails": [{"value": secret["victim email"]}]}]}
    decided = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)
    assert decided.status_code == 200, decided.text

    async def filed() -> dict | None:
        case = (await api.get(f"/v1/cases/{case_ref}", headers=reviewer)).json()
        return case if case["status"] in ("filed", "needs_attention") else None

    assert (await eventually(filed, timeout=120, what="the filed case"))["status"] == "filed"

    # Read back from the server as anyone with access to Temporal would: the SDK's default converter, no codec.
    plain_client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    started_at = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The case's runs and its filing children; other tests' workflows of the same moments are not this case's (and
    # some of them are written with other keys or none on purpose).
    async def case_and_filing() -> list[WorkflowExecution] | None:
        runs = [w async for w in plain_client.list_workflows(f'StartTime >= "{started_at}"')
                if w.id == case_ref or w.id.startswith(f"{case_ref}/")]
        return runs if {w.id == case_ref for w in runs} == {True, False} else None

    runs = await eventually(case_and_filing, what="the case and its filing child listed by visibility")
    histories = [await plain_client.get_workflow_handle(w.id, run_id=w.run_id).fetch_history() for w in runs]
    needles = {name: value.encode() for name, value in secret.items()}
    payloads = [p for h in histories for e in h.events for p in sdk_written_skipped(e)]
    assert len(payloads) > 20
    for history in histories:
        raw = b"".join(event.SerializeToString() for event in history.events)
        as_json = history.to_json()
        for name, needle in needles.items():
            assert needle not in raw, f"{name} stored raw in {history.workflow_id}"
            assert needle.decode() not in as_json, f"{name} in the JSON of {history.workflow_id}"
            for form in base64_forms(needle):
                assert form not in as_json, f"{name} stored base64-encoded in {history.workflow_id}"
    for payload in payloads:
        assert payload.metadata["encoding"] == ENCRYPTED_ENCODING, (dict(payload.metadata), payload.data[:200])
        for data in inflated(payload.data):
            for name, needle in needles.items():
                assert needle not in data, f"{name} recoverable by inflating a payload"

    # The search is sound: with the codec, the very same payloads do hold every one of those strings.
    codec = temporal_client.data_converter.payload_codec
    assert codec is not None
    decoded = b"".join(p.SerializeToString() for p in await codec.decode(payloads))
    missing = [name for name, needle in needles.items() if needle not in decoded]
    assert not missing, f"the case never carried {missing}: the search above proves nothing for them"
