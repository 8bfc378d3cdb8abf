"""Evidence in an S3-compatible bucket, against a real S3 protocol server (moto's, in its own process): the same
sealed objects as on disk, readable from any host with the keys, streamed both ways. Synthetic bytes only."""

from __future__ import annotations

import hashlib
import io
import logging
import random
import traceback
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.s3_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server
from tipline.evidence import (
    EvidenceChanged,
    EvidenceCorrupted,
    EvidenceKeyError,
    EvidenceMissing,
    EvidenceReader,
    EvidenceStore,
    KeyRing,
)
from tipline.evidence_keys import KEYS_ENV
from tipline.evidence_s3 import MIN_PART_SIZE, S3Backend
from tipline.logging import configure_logging
from tipline.settings import Settings

CHUNK = 4096
MARKER = b"TIPLINE-S3-PLAINTEXT-MARKER"


def synthetic(size: int, seed: int = 0) -> bytes:
    unit = MARKER + random.Random(seed).randbytes(CHUNK)
    return (unit * (size // len(unit) + 1))[:size]


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.generate("s3-test")


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()


class RequestLog:
    """The S3 calls a client made, by operation, with their parameters (a botocore event hook)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("provide-client-params.s3.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, {k: v for k, v in params.items() if k != "Body"}))

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


def host(tmp_path: Path, name: str, s3: S3Server, bucket: str, ring: KeyRing, **options: Any) -> EvidenceStore:
    """One machine's store: its own local folder, the shared bucket."""
    backend = S3Backend(s3.client(), bucket, "cases/evidence/", **options)
    return EvidenceStore(tmp_path / name / "evidence", ring, chunk_size=CHUNK, backend=backend)


def host_from_settings(tmp_path: Path, name: str, s3: S3Server, bucket: str, ring: KeyRing,
                       monkeypatch: pytest.MonkeyPatch) -> EvidenceStore:
    monkeypatch.setenv(KEYS_ENV, ring.to_spec())
    return EvidenceStore.from_settings(Settings(
        data_dir=tmp_path / name, evidence_backend="s3", evidence_s3_bucket=bucket,
        evidence_s3_prefix="cases/evidence", evidence_s3_endpoint_url=s3.endpoint_url, evidence_s3_region=REGION))


def stored_object(s3: S3Server, bucket: str) -> tuple[str, bytes]:
    client = s3.client()
    [entry] = client.list_objects_v2(Bucket=bucket)["Contents"]
    return entry["Key"], client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()


def test_stored_bytes_read_back_exactly_and_the_bucket_holds_only_ciphertext(
    tmp_path: Path, s3_server: S3Server, bucket: str, ring: KeyRing
) -> None:
    store = host(tmp_path, "a", s3_server, bucket, ring)
    data = synthetic(25 * CHUNK + 123)
    ref = store.put_bytes(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest() and ref.size == len(data)
    assert store.exists(ref.sha256) and store.read_bytes(ref.sha256) == data
    assert store.verify(ref.sha256) == ref
    key, sealed = stored_object(s3_server, bucket)
    assert key == f"cases/evidence/{ref.sha256[:2]}/{ref.sha256[2:4]}/{ref.sha256}"
    assert sealed.startswith(b"TLEV") and MARKER not in sealed
    assert list(store.backend.names()) == [ref.sha256]
    with pytest.raises(TypeError, match="not in local files"):
        store.path_for(ref.sha256)
    # Storing the same bytes again keeps the object: content addressing works the same in a bucket.
    assert store.put_bytes(data) == ref
    assert stored_object(s3_server, bucket)[1] == sealed


def test_seeks_read_single_chunks_by_ranged_get_never_the_whole_object(
    tmp_path: Path, s3_server: S3Server, bucket: str, ring: KeyRing
) -> None:
    store = host(tmp_path, "a", s3_server, bucket, ring)
    data = synthetic(40 * CHUNK + 7)
    sha256 = store.put_bytes(data).sha256
    requests = RequestLog(store.backend._client)  # type: ignore[attr-defined]
    with store.open(sha256) as reader:
        assert isinstance(reader, EvidenceReader) and reader.size == len(data)
        reader.seek(17 * CHUNK - 5)
        assert reader.read(10) == data[17 * CHUNK - 5:17 * CHUNK + 5]  # across a chunk boundary
        reader.seek(-3, io.SEEK_END)
        assert reader.read() == data[-3:]
    gets = requests.of("GetObject")
    assert gets and all("Range" in params for params in gets)
    fetched = sum(int(end) - int(start) + 1 for start, end in
                  (params["Range"].removeprefix("bytes=").split("-") for params in gets))
    # The header probe, the final chunk (authenticated at open) and the two chunks read: a few KiB of ~160.
    assert len(gets) <= 5 and fetched < 6 * (CHUNK + 16) < len(data) // 4, gets
    assert requests.of("HeadObject") == []


def test_a_second_host_reads_what_the_first_stored(
    tmp_path: Path, s3_server: S3Server, bucket: str, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_host = host_from_settings(tmp_path, "api-host", s3_server, bucket, ring, monkeypatch)
    worker_host = host_from_settings(tmp_path, "worker-host", s3_server, bucket, ring, monkeypatch)
    data = synthetic(3 * (1 << 20) + 11, seed=2)  # several 1 MiB chunks, the format's default
    with api_host.incoming_file() as (path, sink):
        sink.write(data)
        ref = api_host.put_path(path)
    assert worker_host.exists(ref.sha256)
    assert worker_host.verify(ref.sha256) == ref
    assert b"".join(worker_host.iter_plaintext(ref.sha256)) == data
    # Nothing of the object on either host's disk: only the (empty) scratch folders.
    for name in ("api-host", "worker-host"):
        files = [p for p in (tmp_path / name).rglob("*") if p.is_file() and p.name != "evidence-keys.json"]
        assert files == [], files


def test_object_storage_needs_shared_keys_not_a_generated_key_file(
    tmp_path: Path, s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEYS_ENV, raising=False)
    with pytest.raises(EvidenceKeyError, match="TIPLINE_EVIDENCE_KEYS"):
        EvidenceStore.from_settings(Settings(data_dir=tmp_path, evidence_backend="s3", evidence_s3_bucket=bucket,
                                             evidence_s3_endpoint_url=s3_server.endpoint_url))
    assert not (tmp_path / "evidence-keys.json").exists()


def test_settings_name_the_field_that_is_wrong() -> None:
    with pytest.raises(ValueError, match="evidence_s3_bucket"):
        Settings(evidence_backend="s3")
    with pytest.raises(ValueError, match="evidence_s3_endpoint_url"):
        Settings(evidence_s3_endpoint_url="http://user:pass@minio:9000")
    with pytest.raises(ValueError, match="evidence_s3_prefix"):
        Settings(evidence_s3_prefix="a//b")
    with pytest.raises(ValueError, match="evidence_s3_part_bytes"):
        Settings(evidence_s3_part_bytes=1 << 20)
    assert Settings(evidence_s3_prefix="/tipline/evidence/").evidence_s3_prefix == "tipline/evidence/"


def test_a_tampered_object_is_detected_as_corrupted(
    tmp_path: Path, s3_server: S3Server, bucket: str, ring: KeyRing
) -> None:
    store = host(tmp_path, "a", s3_server, bucket, ring)
    data = synthetic(10 * CHUNK, seed=3)
    sha256 = store.put_bytes(data).sha256
    key, sealed = stored_object(s3_server, bucket)
    client = s3_server.client()
    altered = bytearray(sealed)
    altered[len(sealed) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(altered))
    with store.open(sha256) as reader, pytest.raises(EvidenceCorrupted, match="failed authentication"):
        reader.read()
    with pytest.raises(EvidenceCorrupted):
        store.verify(sha256)
    client.put_object(Bucket=bucket, Key=key, Body=sealed[:-(CHUNK // 2)])  # truncated
    with pytest.raises(EvidenceCorrupted, match="truncated|authentication"):
        store.open(sha256)
    client.put_object(Bucket=bucket, Key=key, Body=b"")
    with pytest.raises(EvidenceCorrupted):
        store.open(sha256)
    # Storing the same bytes again repairs the damaged object, as on disk.
    store.put_bytes(data)
    assert store.read_bytes(sha256) == data


def test_a_missing_object_is_evidence_missing(tmp_path: Path, s3_server: S3Server, bucket: str,
                                              ring: KeyRing) -> None:
    store = host(tmp_path, "a", s3_server, bucket, ring)
    absent = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(absent)
    with pytest.raises(EvidenceMissing):
        store.open(absent)
    with pytest.raises(EvidenceMissing):
        store.backend.size(absent)
    sha256 = store.put_bytes(synthetic(100)).sha256
    assert store.backend.size(sha256) > 100
    store.delete(sha256)
    store.delete(sha256)  # deleting twice is fine
    with pytest.raises(EvidenceMissing):
        store.read_bytes(sha256)


def test_an_object_replaced_mid_read_is_a_retryable_change_not_corruption(
    tmp_path: Path, s3_server: S3Server, bucket: str, ring: KeyRing
) -> None:
    first, second = (host(tmp_path, name, s3_server, bucket, ring) for name in ("a", "b"))
    data = synthetic(8 * CHUNK, seed=4)
    sha256 = first.put_bytes(data).sha256
    with first.open(sha256) as reader:
        assert reader.read(10) == data[:10]
        second._seal(sha256, [data])  # a concurrent re-seal: same plaintext, new salt, new ciphertext
        reader.seek(5 * CHUNK)
        with pytest.raises(EvidenceChanged):
            reader.read(10)
    assert first.read_bytes(sha256) == data  # reopening reads the new copy


def test_evidence_written_locally_reads_from_the_bucket_after_a_plain_copy(
    tmp_path: Path, s3_server: S3Server, bucket: str, ring: KeyRing
) -> None:
    """Migration is a file copy (``aws s3 sync evidence/ s3://bucket/prefix/ --exclude 'incoming/*'``):
    object keys keep the local layout, and the sealed bytes are the same whatever holds them."""
    local = EvidenceStore(tmp_path / "old-host" / "evidence", ring, chunk_size=CHUNK)
    data = synthetic(5 * CHUNK + 1, seed=5)
    sha256 = local.put_bytes(data).sha256
    client = s3_server.client()
    for path in local.root.rglob("*"):
        if path.is_file() and "incoming" not in path.parts:
            client.put_object(Bucket=bucket, Key=f"cases/evidence/{path.relative_to(local.root)}",
                              Body=path.read_bytes())
    assert host(tmp_path, "new-host", s3_server, bucket, ring).read_bytes(sha256) == data


class GeneratedStream(io.RawIOBase):
    """``size`` pseudo-random bytes made on demand: a large upload that never exists whole in memory."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._left = size
        self._random = random.Random(40)
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        take = self._left if size is None or size < 0 else min(size, self._left)
        piece = self._random.randbytes(take)
        self._left -= take
        self.sha256.update(piece)
        return piece


def test_a_large_upload_streams_through_multipart_with_bounded_memory(
    tmp_path: Path, s3_server: S3Server, bucket: str, ring: KeyRing
) -> None:
    size = 40 << 20
    backend = S3Backend(s3_server.client(), bucket, "cases/evidence/", part_size=MIN_PART_SIZE)
    store = EvidenceStore(tmp_path / "a" / "evidence", ring, backend=backend)  # 1 MiB chunks, as deployed
    requests = RequestLog(backend._client)
    source = GeneratedStream(size)
    tracemalloc.start()
    try:
        ref = store.put_stream(source)  # type: ignore[arg-type]
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read_back = hashlib.sha256()
        for piece in store.iter_plaintext(ref.sha256):
            read_back.update(piece)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == size and ref.sha256 == source.sha256.hexdigest() == read_back.hexdigest()
    assert len(requests.of("UploadPart")) >= 7 and len(requests.of("CompleteMultipartUpload")) == 1
    assert requests.of("PutObject") == []
    # Bounded by about two parts and a chunk, not by the file: well under half of its 40 MiB.
    assert upload_peak < 16 << 20, f"upload peak {upload_peak / 2**20:.1f} MiB"
    assert read_peak < 8 << 20, f"read peak {read_peak / 2**20:.1f} MiB"


def test_a_failed_upload_leaves_no_object_and_no_open_multipart_upload(
    tmp_path: Path, s3_server: S3Server, bucket: str, ring: KeyRing
) -> None:
    backend = S3Backend(s3_server.client(), bucket, "cases/evidence/", part_size=MIN_PART_SIZE)

    def failing() -> Iterator[bytes]:
        yield b"x" * (MIN_PART_SIZE + 1)  # one part sent
        raise OSError("the source went away")

    with pytest.raises(OSError, match="went away"):
        backend.put_stream("a" * 64, failing())
    client = s3_server.client()
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Every log line the process emits, through the project's own logging set-up at its most verbose."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("DEBUG")
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    keep = Keep()
    keep.setFormatter(root.handlers[0].formatter)
    root.addHandler(keep)
    try:
        yield lines
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_credentials_never_reach_logs_errors_or_reprs(
    tmp_path: Path, s3_server: S3Server, bucket: str, ring: KeyRing, monkeypatch: pytest.MonkeyPatch,
    captured_logs: list[str]
) -> None:
    store = host_from_settings(tmp_path, "a", s3_server, bucket, ring, monkeypatch)
    sha256 = store.put_bytes(synthetic(3 * CHUNK)).sha256
    assert store.read_bytes(sha256) == synthetic(3 * CHUNK)
    texts = [repr(store), str(store.backend)]
    gone = host_from_settings(tmp_path, "b", s3_server, "tipline-no-such-bucket", ring, monkeypatch)
    for attempt in (lambda: gone.put_bytes(b"lost"), lambda: gone.open(sha256)):
        with pytest.raises(Exception) as failure:
            attempt()
        texts.append("".join(traceback.format_exception(failure.value)))
    assert "NoSuchBucket" in texts[-2]
    assert any("evidence stored" in line and bucket in line for line in captured_logs), captured_logs
    everything = "\n".join(texts + captured_logs)
    assert SECRET_ACCESS_KEY not in everything
    assert ACCESS_KEY_ID not in everything
