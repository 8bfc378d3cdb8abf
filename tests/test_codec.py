"""The payload codec: a case with 5,000 items still fits Temporal's payload limit once compressed and
encrypted; keys rotate without losing old payloads; altered payloads and unknown keys fail clearly."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from models.case import (
    CaseStart,
    CaseState,
    ContentItem,
    EnqueueReason,
    EvidenceRef,
    MediaAnalysis,
    MediaItem,
    MediaSource,
)
from tipline.codec import (
    COMPRESS_FROM_BYTES,
    ENCODING,
    ENCRYPTED_ENCODING,
    KEY_ID_METADATA,
    CompressionCodec,
    PayloadDecryptionError,
    converter_with,
    data_converter,
)
from tipline.payload_keys import PayloadKeyError, StaticKeySource, UnknownPayloadKey
from tipline.settings import Settings

TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024


def digest(kind: str, n: int, length: int) -> str:
    return hashlib.sha256(f"{kind}-{n}".encode()).hexdigest()[:length]  # as random as real digests


def big_case(items: int) -> CaseState:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    media = []
    for n in range(items):
        evidence = EvidenceRef(sha256=digest("sha256", n, 64), md5=digest("md5", n, 32), sha1=digest("sha1", n, 40),
                               size=100_000 + n)
        content = ContentItem(content_id=f"post-{digest('id', n, 12)}", org_id="acme", user_id="user-123",
                              media=MediaSource(evidence=evidence), file_name=f"IMG_{n:05d}.jpg",
                              content_type="image/jpeg", uploaded_at=start + timedelta(minutes=n),
                              received_at=start + timedelta(minutes=n, seconds=3), upload_ip=f"198.51.100.{n % 250}",
                              reason=EnqueueReason(kind="associated_media", at=start))
        media.append(MediaItem(media_id=content.content_id, content=content, evidence=evidence,
                               reasons=[content.reason],
                               analysis=MediaAnalysis(pdq=digest("pdq", n, 64), pdq_quality=100,
                                                      phash=digest("phash", n, 16))))
    return CaseState(workflow_id="case-acme-" + "0" * 32, org_id="acme", user_id="user-123", opened_at=start,
                     media=media)


async def test_the_carried_state_of_a_5000_item_case_fits_and_round_trips() -> None:
    state = big_case(5000)
    start = CaseStart(org_id="acme", user_id="user-123", state=state)
    assert len(start.model_dump_json()) > 2 * TEMPORAL_PAYLOAD_LIMIT  # far too big uncompressed
    converter = converter_with(StaticKeySource.generate())
    [payload] = await converter.encode([start])
    assert payload.metadata["encoding"] == ENCRYPTED_ENCODING
    assert len(payload.SerializeToString()) < TEMPORAL_PAYLOAD_LIMIT / 2  # compressed before it was encrypted
    [decoded] = await converter.decode([payload], [CaseStart])
    assert decoded == start


async def test_every_payload_is_encrypted_small_ones_too_and_names_its_key() -> None:
    keys = StaticKeySource.generate("k-one")
    reason = EnqueueReason(kind="hash_match", detail="bank seen-by-nobody")
    [payload] = await converter_with(keys).encode([reason])
    assert len(payload.data) < COMPRESS_FROM_BYTES
    assert payload.metadata["encoding"] == ENCRYPTED_ENCODING and payload.metadata[KEY_ID_METADATA] == b"k-one"
    assert b"seen-by-nobody" not in payload.SerializeToString() and b"json/plain" not in payload.data


async def test_a_payload_written_before_a_rotation_decodes_after_it_and_new_ones_use_the_new_key() -> None:
    old = StaticKeySource.generate("k-2025")
    [written] = await converter_with(old).encode([EnqueueReason(kind="hash_match", detail="before")])
    rotated = old.rotated("k-2026")
    # Through settings, as every process reads them: the new key first, the old one kept for reading.
    converter = data_converter(Settings(payload_keys=SecretStr(rotated.to_spec())))
    [decoded] = await converter.decode([written], [EnqueueReason])
    assert decoded.detail == "before"
    [fresh] = await converter.encode([EnqueueReason(kind="hash_match", detail="after")])
    assert fresh.metadata[KEY_ID_METADATA] == b"k-2026"
    with pytest.raises(UnknownPayloadKey, match="'k-2026' is not configured"):
        await converter_with(old).decode([fresh], [EnqueueReason])


async def test_an_unknown_key_id_is_a_clear_error_naming_it() -> None:
    elsewhere = converter_with(StaticKeySource.generate("k-elsewhere"))
    [payload] = await elsewhere.encode([EnqueueReason(kind="user_report")])
    with pytest.raises(UnknownPayloadKey, match=r"payload key 'k-elsewhere' is not configured.*TIPLINE_PAYLOAD_KEYS"):
        await converter_with(StaticKeySource.generate("k-here")).decode([payload], [EnqueueReason])


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag", "key id"])
async def test_an_altered_payload_fails_authentication(where: str) -> None:
    keys = StaticKeySource.generate("k-a").rotated("k-b")
    converter = converter_with(keys)
    [payload] = await converter.encode([EnqueueReason(kind="hash_match", detail="x" * 40)])
    data = bytearray(payload.data)
    if where == "key id":  # relabelled with the other key the process holds
        payload.metadata[KEY_ID_METADATA] = b"k-a"
    else:
        data[{"nonce": 0, "ciphertext": 20, "tag": len(data) - 1}[where]] ^= 0x01
    altered = Payload(metadata=dict(payload.metadata), data=bytes(data))
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await converter.decode([altered], [EnqueueReason])


async def test_payloads_written_before_encryption_still_decode() -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({"kind": "hash_match"}).encode())
    big = json.dumps({"kind": "user_report", "detail": "x" * 5000}).encode()
    compressed = await CompressionCodec().encode([Payload(metadata={"encoding": b"json/plain"}, data=big)])
    assert compressed[0].metadata["encoding"] == ENCODING
    converter = converter_with(StaticKeySource.generate())
    assert (await converter.decode([plain], [EnqueueReason]))[0].kind == "hash_match"
    assert (await converter.decode(compressed, [EnqueueReason]))[0].detail == "x" * 5000


def test_key_configuration_errors_name_the_setting_never_the_key() -> None:
    secret = base64.b64encode(b"s" * 31).decode()
    with pytest.raises(PayloadKeyError, match="TIPLINE_PAYLOAD_KEYS key 'k1' must decode to 32 bytes") as caught:
        StaticKeySource.parse(f"k1:{secret}")
    assert secret not in str(caught.value)
    with pytest.raises(PayloadKeyError, match="production"):
        data_converter(Settings(allow_production=True))
    assert "key" not in repr(StaticKeySource.generate("k1")).replace("k1", "").replace("StaticKeySource", "")


def test_the_local_key_file_is_private_and_reused(tmp_path: Path) -> None:
    first = StaticKeySource.load_or_create(tmp_path / "payload-keys.json")
    again = StaticKeySource.load_or_create(tmp_path / "payload-keys.json")
    assert (tmp_path / "payload-keys.json").stat().st_mode & 0o077 == 0
    assert first.to_spec() == again.to_spec()
    (tmp_path / "payload-keys.json").chmod(0o644)
    with pytest.raises(PayloadKeyError, match="readable by others"):
        StaticKeySource.load_file(tmp_path / "payload-keys.json")


async def test_failure_messages_are_encrypted_and_decode_on_the_client() -> None:
    converter = converter_with(StaticKeySource.generate())
    failure = Failure()
    await converter.encode_failure(ApplicationError("user Zebulon-Quartz sent a bad field"), failure)
    assert b"Zebulon" not in failure.SerializeToString() and failure.message == "Encoded failure"
    decoded = await converter.decode_failure(failure)
    assert decoded.message == "user Zebulon-Quartz sent a bad field"
