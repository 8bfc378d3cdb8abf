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
from tipline.payload_keys import PayloadKeyError, StaticKeySource, UnknownPayloadKey, key_source
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


def write_key_file(path: Path, document: object, mode: int = 0o600) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    path.chmod(mode)
    return path


async def test_a_key_file_setting_gives_its_keys_and_the_current_key_setting_picks_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The production path of a mounted secret: TIPLINE_PAYLOAD_KEY_FILE names the file, and
    TIPLINE_PAYLOAD_CURRENT_KEY (when set) chooses the key new payloads use, as it does for TIPLINE_PAYLOAD_KEYS."""
    old = StaticKeySource.generate("k-old")
    [written] = await converter_with(old).encode([EnqueueReason(kind="hash_match", detail="before")])
    rotated = old.rotated("k-new")
    path = tmp_path / "payload-keys.json"
    path.write_text(rotated._file_text())
    path.chmod(0o600)
    for name in ("TIPLINE_PAYLOAD_KEYS", "TIPLINE_PAYLOAD_CURRENT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIPLINE_PAYLOAD_KEY_FILE", str(path))

    from_file = key_source(Settings())
    assert (await from_file.current())[0] == "k-new"  # the file's "current"
    assert await from_file.key("k-old") == await old.key("k-old")
    converter = data_converter(Settings())
    assert (await converter.decode([written], [EnqueueReason]))[0].detail == "before"

    # The current-key setting overrides the file's: roll the new key out first, switch writers second.
    monkeypatch.setenv("TIPLINE_PAYLOAD_CURRENT_KEY", "k-old")
    assert (await key_source(Settings()).current())[0] == "k-old"
    [fresh] = await data_converter(Settings()).encode([EnqueueReason(kind="hash_match")])
    assert fresh.metadata[KEY_ID_METADATA] == b"k-old"
    # The same through the settings fields, and a file that names no current key of its own.
    bare = write_key_file(tmp_path / "bare.json", {"keys": json.loads(rotated._file_text())["keys"]})
    assert (await key_source(Settings(payload_key_file=bare, payload_current_key="k-new")).current())[0] == "k-new"
    with pytest.raises(PayloadKeyError, match=r"names no current key.*TIPLINE_PAYLOAD_CURRENT_KEY"):
        key_source(Settings(payload_key_file=bare, payload_current_key=None))
    with pytest.raises(PayloadKeyError, match=r"TIPLINE_PAYLOAD_CURRENT_KEY names 'k-gone'.*TIPLINE_PAYLOAD_KEY_FILE"):
        key_source(Settings(payload_key_file=path, payload_current_key="k-gone"))
    with pytest.raises(PayloadKeyError, match=r"TIPLINE_PAYLOAD_CURRENT_KEY names 'k-gone'.*TIPLINE_PAYLOAD_KEYS"):
        key_source(Settings(payload_keys=SecretStr(rotated.to_spec()), payload_current_key="k-gone"))


def test_a_missing_or_malformed_key_file_is_an_error_naming_the_setting_never_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIPLINE_PAYLOAD_KEYS", raising=False)
    monkeypatch.delenv("TIPLINE_PAYLOAD_CURRENT_KEY", raising=False)
    secret = base64.b64encode(b"s" * 31).decode()
    good = base64.b64encode(b"g" * 32).decode()
    missing = tmp_path / "absent.json"
    cases: dict[str, tuple[Path, str]] = {
        "missing": (missing, "does not exist"),
        "a directory": (tmp_path, "is not a file"),
        "not JSON": (write_key_file(tmp_path / "text.json", f"k1:{good}"), "is not a valid key file"),
        "no keys": (write_key_file(tmp_path / "nokeys.json", {"current": "k1"}), "is not a valid key file"),
        "keys as a list": (write_key_file(tmp_path / "list.json", {"current": "k1", "keys": [good]}),
                           "is not a valid key file"),
        "empty keys": (write_key_file(tmp_path / "empty.json", {"current": "k1", "keys": {}}), "holds no keys"),
        "short key": (write_key_file(tmp_path / "short.json", {"current": "k1", "keys": {"k1": secret}}),
                      "must decode to 32 bytes"),
        "not base64": (write_key_file(tmp_path / "b64.json", {"current": "k1", "keys": {"k1": good + "!"}}),
                       "is not valid base64"),
        "bad key id": (write_key_file(tmp_path / "id.json", {"current": "k 1", "keys": {"k 1": good}}),
                       "key ids are 1-64 characters"),
        "current not held": (write_key_file(tmp_path / "cur.json", {"current": "k2", "keys": {"k1": good}}),
                             "names current key 'k2', which it does not hold"),
        "readable by others": (write_key_file(tmp_path / "open.json", {"current": "k1", "keys": {"k1": good}},
                                              0o644), "is readable by others; chmod 600 it"),
    }
    for case, (path, problem) in cases.items():
        monkeypatch.setenv("TIPLINE_PAYLOAD_KEY_FILE", str(path))
        for settings in (Settings(payload_key_file=path), Settings()):  # the field, and the environment
            with pytest.raises(PayloadKeyError) as caught:
                key_source(settings)
            message = str(caught.value)
            assert "TIPLINE_PAYLOAD_KEY_FILE" in message and str(path) in message, (case, message)
            assert problem in message, (case, message)
            assert secret not in message and good not in message, case
    # The converter every process builds fails the same way, before any payload is touched.
    with pytest.raises(PayloadKeyError, match="TIPLINE_PAYLOAD_KEY_FILE"):
        data_converter(Settings(payload_key_file=missing))
