"""The evidence store encrypts at rest: same addresses, authenticated chunks, rotating keys. Synthetic bytes only."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import pickle
import stat
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tipline.evidence import (
    DEFAULT_CHUNK_SIZE,
    EvidenceCorrupted,
    EvidenceKeyError,
    EvidenceKeyMissing,
    EvidenceMissing,
    EvidenceStore,
    EvidenceTooLarge,
    KeyRing,
)
from tipline.evidence_keys import CURRENT_KEY_ENV, KEYS_ENV, LOCAL_KEY_FILE_NAME, main
from tipline.settings import Settings

CHUNK = 64  # small chunks make multi-chunk objects cheap; the format is the same at 1 MiB
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
SEALED = CHUNK + 16


def synthetic(size: int, seed: int = 0) -> bytes:
    """Recognisable, non-repeating filler: a counter-mode SHA-256 stream (benign, reproducible bytes)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"synthetic-{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def ring_a() -> KeyRing:
    return KeyRing({"a": KEY_A}, "a")


@pytest.fixture
def store(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore(tmp_path / "evidence", ring_a(), chunk_size=CHUNK)


def objects(store: EvidenceStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file() and "incoming" not in p.parts)


def header_len(path: Path) -> int:
    data = path.read_bytes()
    return 4 + 1 + 4 + 1 + data[9] + 32 + 7


SIZES = [0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("how", ["bytes", "stream", "incoming", "plain_path"])
def test_round_trip_keeps_plaintext_digests_as_the_address(store: EvidenceStore, tmp_path: Path,
                                                           size: int, how: str) -> None:
    data = synthetic(size)
    if how == "bytes":
        ref = store.put_bytes(data)
    elif how == "stream":
        ref = store.put_stream(io.BytesIO(data))
    elif how == "incoming":
        with store.incoming_file() as (path, sink):
            for i in range(0, size, 10):  # odd-sized writes straddle chunk boundaries
                sink.write(data[i:i + 10])
            sink.close()
            ref = store.put_path(path)
    else:
        source = tmp_path / "plain.bin"
        source.write_bytes(data)
        ref = store.put_path(source)
        assert not source.exists()

    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.md5 == hashlib.md5(data).hexdigest()
    assert ref.sha1 == hashlib.sha1(data).hexdigest()
    assert ref.size == size
    assert store.read_bytes(ref.sha256) == data
    assert b"".join(store.iter_plaintext(ref.sha256)) == data
    assert store.size(ref.sha256) == size
    assert store.verify(ref.sha256) == ref
    chunks = max(1, -(-size // CHUNK))  # exactly one chunk at size == CHUNK: no empty trailer
    on_disk = store.path_for(ref.sha256)
    assert on_disk.stat().st_size == header_len(on_disk) + size + 16 * chunks
    assert list((store.root / "incoming").iterdir()) == []


@pytest.mark.parametrize("size", [DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE + 1])
def test_default_chunk_size_one_mebibyte(tmp_path: Path, size: int) -> None:
    store = EvidenceStore(tmp_path, ring_a())
    data = synthetic(size)
    ref = store.put_stream(io.BytesIO(data))
    assert store.read_bytes(ref.sha256) == data
    path = store.path_for(ref.sha256)
    assert path.stat().st_size == header_len(path) + size + 16 * (1 if size == DEFAULT_CHUNK_SIZE else 2)


def test_no_plaintext_run_on_disk_neither_stored_nor_in_scratch(store: EvidenceStore) -> None:
    data = synthetic(20 * CHUNK) + b"SYNTHETIC-MARKER-" * 20

    def leaks(blob: bytes) -> bool:
        return any(data[i:i + 16] in blob for i in range(0, len(data) - 16, 4))

    with store.incoming_file() as (path, sink):
        sink.write(data)
        assert not leaks(path.read_bytes())  # what a crash mid-download would leave behind
        sink.close()
        ref = store.put_path(path)
    blob = store.path_for(ref.sha256).read_bytes()
    assert b"SYNTHETIC-MARKER" not in blob
    assert not leaks(blob)
    for path in store.root.rglob("*"):
        if path.is_file():
            assert not leaks(path.read_bytes())


def test_same_plaintext_twice_is_one_object(store: EvidenceStore) -> None:
    data = synthetic(5 * CHUNK + 3)
    first = store.put_bytes(data)
    ciphertext = store.path_for(first.sha256).read_bytes()
    second = store.put_stream(io.BytesIO(data))
    with store.incoming_file() as (path, sink):
        sink.write(data)
        third = store.put_path(path)  # put_path seals a sink the caller forgot to close
    assert first == second == third
    assert objects(store) == [store.path_for(first.sha256)]
    assert store.path_for(first.sha256).read_bytes() == ciphertext  # kept, not rewritten
    store.put_bytes(b"other synthetic bytes")
    assert len(objects(store)) == 2


def test_random_access_read_seek_tell(store: EvidenceStore) -> None:
    data = synthetic(4 * CHUNK + 9)
    ref = store.put_bytes(data)
    with store.open(ref.sha256) as reader:
        assert reader.size == len(data) and reader.seekable()
        assert reader.read(10) == data[:10] and reader.tell() == 10
        reader.seek(2 * CHUNK + 5)
        assert reader.read(CHUNK) == data[2 * CHUNK + 5:3 * CHUNK + 5]  # spans two chunks
        assert reader.seek(-4, io.SEEK_END) == len(data) - 4
        assert reader.read() == data[-4:]
        assert reader.read(100) == b""
        buffer = bytearray(7)
        reader.seek(1)
        assert reader.readinto(buffer) == 7 and bytes(buffer) == data[1:8]
        with pytest.raises(io.UnsupportedOperation, match="use .size"):
            reader.fileno()
    with pytest.raises(ValueError):
        reader.read(1)


def test_missing_object(store: EvidenceStore) -> None:
    with pytest.raises(EvidenceMissing):
        store.open("0" * 64)
    with pytest.raises(ValueError, match="not a sha256"):
        store.open("../../etc/passwd")


def _stored(store: EvidenceStore, size: int = 3 * CHUNK + 10) -> tuple[str, Path, bytes]:
    data = synthetic(size)
    ref = store.put_bytes(data)
    return ref.sha256, store.path_for(ref.sha256), data


def _read_all(store: EvidenceStore, sha256: str) -> bytes:
    with store.open(sha256) as reader:
        return reader.read()


@pytest.mark.parametrize("where", ["magic", "version", "chunk_size", "key_id", "salt", "prefix",
                                   "first_chunk", "middle_tag", "last_chunk", "last_byte"])
def test_a_flipped_byte_anywhere_is_detected(store: EvidenceStore, where: str) -> None:
    sha256, path, _ = _stored(store)
    blob = bytearray(path.read_bytes())
    h = header_len(path)
    offset = {"magic": 0, "version": 4, "chunk_size": 8, "key_id": 10, "salt": h - 7 - 5, "prefix": h - 2,
              "first_chunk": h + 3, "middle_tag": h + SEALED + CHUNK + 4, "last_chunk": h + 3 * SEALED + 2,
              "last_byte": len(blob) - 1}[where]
    blob[offset] ^= 0x01
    path.write_bytes(blob)
    with pytest.raises((EvidenceCorrupted, EvidenceKeyMissing)):
        _read_all(store, sha256)


def test_tampering_mid_file_fails_when_its_chunk_is_read_never_returning_wrong_bytes(store: EvidenceStore) -> None:
    sha256, path, data = _stored(store)
    blob = bytearray(path.read_bytes())
    blob[header_len(path) + SEALED + 1] ^= 0x80  # inside chunk 1
    path.write_bytes(blob)
    reader = store.open(sha256)  # only the final chunk is checked on open
    assert reader.read(CHUNK) == data[:CHUNK]
    with pytest.raises(EvidenceCorrupted, match=f"evidence {sha256} failed authentication at chunk 1"):
        reader.read(CHUNK)
    reader.close()
    with pytest.raises(EvidenceCorrupted):
        store.verify(sha256)


@pytest.mark.parametrize("cut", ["last_chunk", "mid_chunk", "tag_only", "header_only", "half_header", "empty"])
def test_truncation_is_detected_on_open(store: EvidenceStore, cut: str) -> None:
    sha256, path, _ = _stored(store)
    blob = path.read_bytes()
    h = header_len(path)
    keep = {"last_chunk": h + 3 * SEALED, "mid_chunk": h + 2 * SEALED + 30, "tag_only": len(blob) - 20,
            "header_only": h, "half_header": h // 2, "empty": 0}[cut]
    path.write_bytes(blob[:keep])
    with pytest.raises(EvidenceCorrupted):
        store.open(sha256)


def test_appended_bytes_are_detected(store: EvidenceStore) -> None:
    sha256, path, _ = _stored(store)
    path.write_bytes(path.read_bytes() + b"\0" * SEALED)
    with pytest.raises(EvidenceCorrupted):
        store.open(sha256)


def test_reordered_chunks_are_detected(store: EvidenceStore) -> None:
    sha256, path, _ = _stored(store)
    blob = path.read_bytes()
    h = header_len(path)
    chunk0, chunk1 = blob[h:h + SEALED], blob[h + SEALED:h + 2 * SEALED]
    path.write_bytes(blob[:h] + chunk1 + chunk0 + blob[h + 2 * SEALED:])
    with pytest.raises(EvidenceCorrupted):
        _read_all(store, sha256)


def test_chunks_and_files_from_another_object_are_detected(store: EvidenceStore) -> None:
    sha_a, path_a, _ = _stored(store)
    ref_b = store.put_bytes(synthetic(3 * CHUNK + 10, seed=1))
    path_b = store.path_for(ref_b.sha256)
    blob_a, blob_b = path_a.read_bytes(), path_b.read_bytes()
    h = header_len(path_a)
    # B's chunk 1 in place of A's chunk 1 (same key, same layout).
    path_a.write_bytes(blob_a[:h + SEALED] + blob_b[h + SEALED:h + 2 * SEALED] + blob_a[h + 2 * SEALED:])
    with pytest.raises(EvidenceCorrupted):
        _read_all(store, sha_a)
    # B's whole, valid file under A's address.
    path_a.write_bytes(blob_b)
    with pytest.raises(EvidenceCorrupted):
        store.open(sha_a)
    # A's header with B's chunks.
    path_a.write_bytes(blob_a[:h] + blob_b[h:])
    with pytest.raises(EvidenceCorrupted):
        store.open(sha_a)


def test_storing_the_same_bytes_again_repairs_a_damaged_object(store: EvidenceStore) -> None:
    sha256, path, data = _stored(store)
    path.write_bytes(path.read_bytes()[:-1])
    store.put_bytes(data)
    assert store.read_bytes(sha256) == data


def test_a_missing_key_id_is_a_clear_error(tmp_path: Path) -> None:
    written = EvidenceStore(tmp_path, ring_a(), chunk_size=CHUNK)
    ref = written.put_bytes(synthetic(100))
    other = EvidenceStore(tmp_path, KeyRing({"b": KEY_B}, "b"), chunk_size=CHUNK)
    with pytest.raises(EvidenceKeyMissing, match=r"evidence key 'a' is not in the key ring \(it holds: b\)") as info:
        other.open(ref.sha256)
    assert KEY_A.hex() not in str(info.value) and base64.b64encode(KEY_A).decode() not in str(info.value)
    # Same id, wrong key: indistinguishable from tampering, and reported as such.
    impostor = EvidenceStore(tmp_path, KeyRing({"a": KEY_B}, "a"), chunk_size=CHUNK)
    with pytest.raises(EvidenceCorrupted):
        impostor.open(ref.sha256)


def test_key_rotation_reads_old_objects_and_writes_with_the_new_key(tmp_path: Path) -> None:
    before = EvidenceStore(tmp_path, ring_a(), chunk_size=CHUNK)
    old = synthetic(3 * CHUNK, seed=1)
    old_ref = before.put_bytes(old)

    rotated = ring_a().rotated("b", KEY_B)
    assert rotated.current_id == "b" and set(rotated.ids) == {"a", "b"}
    after = EvidenceStore(tmp_path, rotated, chunk_size=CHUNK)
    assert after.read_bytes(old_ref.sha256) == old
    new = synthetic(2 * CHUNK, seed=2)
    new_ref = after.put_bytes(new)
    with after.open(new_ref.sha256) as reader, after.open(old_ref.sha256) as old_reader:
        assert (reader.key_id, old_reader.key_id) == ("b", "a")
    with pytest.raises(EvidenceKeyMissing):
        EvidenceStore(tmp_path, KeyRing({"b": KEY_B}, "b")).open(old_ref.sha256)

    # Retiring the old key: re-encrypt everything under the current key first.
    assert after.reencrypt_all() == 1
    assert after.reencrypt_all() == 0
    only_b = EvidenceStore(tmp_path, rotated.without(["a"]), chunk_size=CHUNK)
    assert only_b.read_bytes(old_ref.sha256) == old and only_b.read_bytes(new_ref.sha256) == new
    with pytest.raises(EvidenceKeyError, match="cannot be retired"):
        rotated.without(["b"])


def test_keys_never_appear_in_reprs_errors_or_pickles(tmp_path: Path) -> None:
    ring = KeyRing({"a": KEY_A, "b": KEY_B}, "a")
    store = EvidenceStore(tmp_path, ring)
    secrets = [KEY_A.hex(), KEY_B.hex(), base64.b64encode(KEY_A).decode(), repr(KEY_A), repr(KEY_B)]
    texts = [repr(ring), str(ring), repr(store), repr(ring.key("a"))]
    with store.open(store.put_bytes(b"x").sha256) as reader:
        texts.append(repr(reader))
    for text in texts:
        assert not any(secret in text for secret in secrets)
    assert repr(ring) == "KeyRing(current='a', ids=['a', 'b'])"
    with pytest.raises(TypeError):
        pickle.dumps(ring)
    with pytest.raises(TypeError):
        pickle.dumps(ring.key("a"))


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_key_ring_from_environment() -> None:
    assert KeyRing.from_environment({}) is None
    ring = KeyRing.from_environment({KEYS_ENV: f"new:{_b64(KEY_B)}, old:{_b64(KEY_A)}"})
    assert ring is not None and ring.current_id == "new" and ring.ids == ("new", "old")
    ring = KeyRing.from_environment({KEYS_ENV: f"new:{_b64(KEY_B)},old:{_b64(KEY_A)}", CURRENT_KEY_ENV: "old"})
    assert ring is not None and ring.current_id == "old"
    assert KeyRing.parse(ring.to_spec()).current_id == "old"


@pytest.mark.parametrize(("spec", "message"), [
    (f"a:{_b64(KEY_A)[:-4]}", "must decode to 32 bytes"),
    (f"a:{_b64(KEY_A)[:-1]}", "not valid base64"),
    (_b64(KEY_A), "is not 'id:base64key'"),
    (f"a:{_b64(KEY_A)},a:{_b64(KEY_B)}", "twice"),
    (f"bad!id:{_b64(KEY_A)}", "key ids are"),
    (" , ", "holds no keys"),
])
def test_bad_key_configuration_is_a_clear_error_that_quotes_no_key(spec: str, message: str) -> None:
    with pytest.raises(EvidenceKeyError, match=message) as info:
        KeyRing.parse(spec)
    assert _b64(KEY_A)[:8] not in str(info.value) and info.value.__cause__ is None


def test_unknown_current_key_is_an_error() -> None:
    with pytest.raises(EvidenceKeyError, match="current evidence key 'c' is not in the key ring"):
        KeyRing.parse(f"a:{_b64(KEY_A)}", "c")


def test_local_key_file_is_created_once_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEYS_ENV, raising=False)
    key_file = tmp_path / LOCAL_KEY_FILE_NAME
    first = EvidenceStore.for_local_stack(tmp_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_bytes()
    ref = first.put_bytes(synthetic(300))
    assert first.root == tmp_path / "evidence"

    second = EvidenceStore.for_local_stack(tmp_path)
    third = EvidenceStore(tmp_path / "evidence")  # the old one-argument form finds the same key file
    assert key_file.read_bytes() == content
    assert first.keyring.current_id.startswith("local-")
    assert second.keyring.current_id == third.keyring.current_id == first.keyring.current_id
    assert second.read_bytes(ref.sha256) == third.read_bytes(ref.sha256) == synthetic(300)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".evidence-keys")] == []

    key_file.chmod(0o644)
    with pytest.raises(EvidenceKeyError, match="readable by others"):
        EvidenceStore.for_local_stack(tmp_path)


def test_configured_keys_win_over_the_local_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_ENV, f"prod-1:{_b64(KEY_B)}")
    store = EvidenceStore.from_settings(Settings(data_dir=tmp_path))
    assert store.keyring.current_id == "prod-1"
    assert not (tmp_path / LOCAL_KEY_FILE_NAME).exists()


def test_production_never_generates_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEYS_ENV, raising=False)
    with pytest.raises(EvidenceKeyError, match="TIPLINE_EVIDENCE_KEYS must be set"):
        EvidenceStore.from_settings(Settings(data_dir=tmp_path, allow_production=True))
    assert not (tmp_path / LOCAL_KEY_FILE_NAME).exists()
    local = EvidenceStore.from_settings(Settings(data_dir=tmp_path))
    assert local.root == tmp_path / "evidence" and (tmp_path / LOCAL_KEY_FILE_NAME).exists()


class _WrappedLikeFiling:
    """The shape of activities.filing._HeartbeatingReader: read/fileno/seek/tell delegated to the store's stream."""

    def __init__(self, stream: io.RawIOBase) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def fileno(self) -> int:
        return self._stream.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()


@pytest.mark.parametrize("wrapped", [False, True])
def test_stream_works_as_an_httpx_multipart_file(store: EvidenceStore, wrapped: bool) -> None:
    data = synthetic(5 * CHUNK + 17)
    ref = store.put_bytes(data)
    with store.open(ref.sha256) as reader:
        reader.read(3)  # httpx rewinds before sending
        upload = _WrappedLikeFiling(reader) if wrapped else reader
        request = httpx.Request("POST", "https://ncmec.invalid/upload", data={"id": "1"},
                                files={"file": ("evidence.bin", upload, "application/octet-stream")})
        body = request.read()
    assert int(request.headers["Content-Length"]) == len(body)  # sized by seeking, not by the ciphertext's fd
    assert body.count(data) == 1
    assert b'filename="evidence.bin"' in body


async def test_stream_as_an_http_response(store: EvidenceStore) -> None:
    data = synthetic(7 * CHUNK + 1)
    ref = store.put_bytes(data)

    # The replacement for FileResponse(store.path_for(...)) in api/routers/cases.py.
    def media(request: Request) -> StreamingResponse:
        reader = store.open(request.path_params["sha256"])
        return StreamingResponse(reader.iter_chunks(), media_type="application/octet-stream",
                                 headers={"Content-Length": str(reader.size), "Cache-Control": "no-store"},
                                 background=BackgroundTask(reader.close))

    app = Starlette(routes=[Route("/media/{sha256}", media)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tipline.test") as client:
        response = await client.get(f"/media/{ref.sha256}")
    assert response.status_code == 200
    assert response.content == data and response.headers["content-length"] == str(len(data))


def test_iter_plaintext_raises_before_the_response_starts(store: EvidenceStore) -> None:
    sha256, path, _ = _stored(store)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(EvidenceCorrupted):
        store.iter_plaintext(sha256)  # not a lazy generator: errors come while a 404/500 can still be sent


def test_oversized_stream_and_aborted_downloads_leave_nothing_behind(store: EvidenceStore) -> None:
    with pytest.raises(ValueError, match="larger than"):
        store.put_stream(io.BytesIO(synthetic(500)), max_bytes=100)
    with pytest.raises(RuntimeError), store.incoming_file() as (_, sink):
        sink.write(synthetic(200))
        raise RuntimeError("download failed")
    assert list(store.root.rglob("*")) == [store.root / "incoming"]


def test_plaintext_objects_from_before_encryption_are_migrated_in_place(store: EvidenceStore) -> None:
    legacy = synthetic(3 * CHUNK + 5)
    sha256 = hashlib.sha256(legacy).hexdigest()
    path = store.path_for(sha256)
    path.parent.mkdir(parents=True)
    path.write_bytes(legacy)
    stranger = store.path_for("f" * 64)
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"not the bytes its name claims")
    with pytest.raises(EvidenceCorrupted, match="encrypt_plaintext_objects"):
        store.open(sha256)

    assert store.encrypt_plaintext_objects() == 1
    assert store.encrypt_plaintext_objects() == 0
    assert store.read_bytes(sha256) == legacy and legacy[:32] not in path.read_bytes()
    assert stranger.read_bytes() == b"not the bytes its name claims"


def test_objects_are_private_files(store: EvidenceStore) -> None:
    ref = store.put_bytes(synthetic(10))
    assert stat.S_IMODE(os.stat(store.path_for(ref.sha256)).st_mode) == 0o600


def test_scratch_files_of_dead_processes_are_swept(store: EvidenceStore) -> None:
    stale, fresh = store.root / "incoming" / "tmp-stale", store.root / "incoming" / "tmp-fresh"
    stale.write_bytes(b"ciphertext under a lost key")
    fresh.write_bytes(b"a live download in another process")
    os.utime(stale, (0, 0))
    assert store.sweep_incoming() == 1
    assert not stale.exists() and fresh.exists()


def test_new_key_command_prints_a_usable_ring_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "2026-11"]) == 0
    ring = KeyRing.parse(capsys.readouterr().out)
    assert ring.current_id == "2026-11" and ring.ids == ("2026-11",)
    assert main([]) == 2


def test_put_stream_refuses_a_stream_over_max_bytes_and_stores_nothing(store: EvidenceStore) -> None:
    data = synthetic(3 * CHUNK + 1)
    source = io.BytesIO(data)
    with pytest.raises(EvidenceTooLarge, match=f"larger than {3 * CHUNK} bytes"):
        store.put_stream(source, max_bytes=3 * CHUNK)
    assert not store.exists(hashlib.sha256(data).hexdigest())
    assert list(store.root.glob("incoming/*")) == []  # the scratch file went with it
    assert store.put_stream(io.BytesIO(data), max_bytes=len(data)).size == len(data)  # at the limit: stored


def test_a_download_is_sealed_once_as_it_arrives_and_moved_into_place(store: EvidenceStore) -> None:
    """Format version 2: only the final chunk names the address, so the scratch file is the stored object."""
    data = synthetic(5 * CHUNK + 3, seed=7)
    with store.incoming_file() as (path, sink):
        for start in range(0, len(data), 50):
            sink.write(data[start:start + 50])
        sink.close()
        scratch_inode = path.stat().st_ino
        ref = store.put_path(path)
    stored = store.path_for(ref.sha256)
    assert stored.stat().st_ino == scratch_inode  # moved, not decrypted and sealed again
    assert stored.read_bytes()[4] == 2
    assert store.read_bytes(ref.sha256) == data and store.verify(ref.sha256) == ref


FORMAT_V1 = Path(__file__).parent / "fixtures" / "evidence_v1"


def test_objects_sealed_in_format_version_1_still_read_and_move_to_version_2_on_reencryption(tmp_path: Path) -> None:
    """Written by the code before version 2 (one synthetic image, 4 KiB chunks, key ``fixture-v1`` = KEY_A)."""
    [sealed] = FORMAT_V1.glob("*.sealed")
    sha256 = sealed.stem
    plain = sealed.with_suffix(".plain").read_bytes()
    store = EvidenceStore(tmp_path / "evidence", KeyRing({"fixture-v1": KEY_A}, "fixture-v1"))
    target = store.path_for(sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(sealed.read_bytes())
    assert target.read_bytes()[4] == 1
    assert store.read_bytes(sha256) == plain and store.verify(sha256).sha256 == sha256
    with store.open(sha256) as reader:
        reader.seek(4100)
        assert reader.read(100) == plain[4100:4200]  # the second chunk, by its own
    # Still bound to its address: the same file under another name does not open.
    other = store.path_for("0" * 64)
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(sealed.read_bytes())
    with pytest.raises(EvidenceCorrupted):
        store.open("0" * 64)
    rotated = EvidenceStore(tmp_path / "evidence", KeyRing({"fixture-v1": KEY_A, "b": KEY_B}, "b"))
    assert rotated.reencrypt(sha256)
    assert target.read_bytes()[4] == 2 and rotated.read_bytes(sha256) == plain
