"""Sealed evidence objects in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2, ...).

Streaming both ways, so a two-hour upload never sits in memory: ``put_stream`` sends parts of
``part_size`` bytes through a multipart upload as they are sealed (memory per upload: about one part), and
``open`` reads by ranged GETs, one sealed chunk at a time, so ``EvidenceReader``'s seeks cost one request each
instead of a download of the whole object. A multipart upload becomes visible only when completed, which gives
the same all-or-nothing publication as the local backend's rename.

Credentials are never settings: boto3's default chain finds them (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, a web identity token, an instance or task role). Nothing
here stores, logs or formats them; reprs and errors name the bucket, prefix and object name only.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tipline.evidence_backends import EvidenceChanged, EvidenceMissing, EvidenceStoreUnavailable, check_name, fan_out

if TYPE_CHECKING:
    from tipline.settings import Settings

# S3's smallest part except the last; also the default, so an upload holds at most ~8 MiB of ciphertext.
MIN_PART_SIZE = 5 << 20
DEFAULT_PART_SIZE = 8 << 20
# The longest header the evidence format allows (fixed part, a 255-byte key id, salt, nonce prefix): the
# first GET of an ``open`` fetches this much and learns the object's length and ETag from the same answer.
_HEADER_PROBE = 10 + 255 + 32 + 7
_MISSING = {"NoSuchKey", "404", "NotFound"}
# HeadBucket answers with a bare status (a HEAD has no body), so its codes are the status numbers.
_NO_BUCKET = {"404", "NoSuchBucket", "NotFound"}
_DENIED = {"403", "AccessDenied", "Forbidden"}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def client_from_settings(settings: Settings) -> Any:
    """A boto3 S3 client for the configured endpoint; its credentials come from the default chain only."""
    options: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 5},
                               "connect_timeout": 10, "read_timeout": 60}
    if settings.evidence_s3_endpoint_url:
        # MinIO, Ceph and most self-hosted servers serve buckets by path, not by virtual host name.
        options["s3"] = {"addressing_style": "path"}
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.evidence_s3_endpoint_url, region_name=settings.evidence_s3_region,
        config=Config(**options))


class S3Source:
    """A ``RangedSource`` over one object version: every read after the first is conditional on the ETag the
    first one saw, so a concurrent replacement is detected (``EvidenceChanged``) instead of mixing two
    ciphertexts, which would fail authentication and look like tampering."""

    def __init__(self, client: Any, bucket: str, key: str, name: str) -> None:
        self._client, self._bucket, self._key, self._name = client, bucket, key, name
        try:
            answer = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{_HEADER_PROBE - 1}")
        except ClientError as error:
            code = _code(error)
            if code in _MISSING:
                raise EvidenceMissing(name) from None
            if code == "InvalidRange":  # an empty object: no header, which the reader reports as corrupted
                self.size, self._etag, self._head = 0, None, b""
                return
            raise
        with answer["Body"] as body:
            self._head: bytes = body.read()
        self._etag: str | None = answer.get("ETag")
        content_range = answer.get("ContentRange")
        self.size: int = int(content_range.rsplit("/", 1)[1]) if content_range else len(self._head)

    def read_at(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        if offset + length <= len(self._head):
            return self._head[offset:offset + length]
        last = min(offset + length, self.size) - 1
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={offset}-{last}",
                                             IfMatch=self._etag or "*")
        except ClientError as error:
            code = _code(error)
            if code == "PreconditionFailed":
                raise EvidenceChanged(f"evidence {self._name} was replaced while being read") from None
            if code in _MISSING:
                raise EvidenceMissing(self._name) from None
            raise
        with answer["Body"] as body:
            return body.read()

    def close(self) -> None:
        self._head = b""


class S3Backend:
    def __init__(self, client: Any, bucket: str, prefix: str = "", *, part_size: int = DEFAULT_PART_SIZE) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part)")
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Backend:
        assert settings.evidence_s3_bucket is not None  # Settings refuses backend "s3" without a bucket
        return cls(client_from_settings(settings), settings.evidence_s3_bucket, settings.evidence_s3_prefix,
                   part_size=settings.evidence_s3_part_bytes)

    def __repr__(self) -> str:
        endpoint = getattr(getattr(self._client, "meta", None), "endpoint_url", None)
        return f"S3Backend(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={endpoint!r})"

    def key(self, name: str) -> str:
        return self.prefix + fan_out(check_name(name))

    def put_file(self, name: str, path: Path) -> None:
        def pieces() -> Iterator[bytes]:
            with path.open("rb") as sealed:
                while piece := sealed.read(self.part_size):
                    yield piece

        self.put_stream(name, pieces())
        path.unlink(missing_ok=True)

    def put_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        key = self.key(name)
        pending = io.BytesIO()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        def send() -> None:
            nonlocal upload_id, pending
            if upload_id is None:
                upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            # The buffer itself is the body (botocore streams a file object for checksum and send), so a
            # part is never copied; a fresh buffer then lets the sent one be freed.
            pending.seek(0)
            answer = self._client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              PartNumber=len(parts) + 1, Body=pending)
            parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})
            pending = io.BytesIO()

        try:
            for chunk in chunks:
                pending.write(chunk)
                # Parts need only be at least the minimum size, not all equal: what is held goes out whole,
                # so nothing is split or copied, and an upload holds about one part.
                if pending.tell() >= self.part_size:
                    send()
            if upload_id is None:
                # Smaller than one part: a single PUT is just as atomic and one request instead of three.
                pending.seek(0)
                self._client.put_object(Bucket=self.bucket, Key=key, Body=pending)
                return
            if pending.tell():
                send()
            self._client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                   MultipartUpload={"Parts": parts})
        except BaseException:
            if upload_id is not None:
                # Best effort: a bucket lifecycle rule (README) reclaims parts a killed process leaves.
                with suppress(Exception):
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def open(self, name: str) -> S3Source:
        return S3Source(self._client, self.bucket, self.key(name), name)

    def _head(self, name: str) -> dict[str, Any] | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as error:
            if _code(error) in _MISSING:
                return None
            raise

    def exists(self, name: str) -> bool:
        return self._head(name) is not None

    def delete(self, name: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def size(self, name: str) -> int:
        head = self._head(name)
        if head is None:
            raise EvidenceMissing(name)
        return int(head["ContentLength"])

    def probe(self) -> None:
        """HeadBucket: the bucket exists and these credentials may use it. A lookup of an object would not do:
        HEAD of a key in a missing bucket is the same bare 404 as a missing key."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = _code(error)
            if code in _NO_BUCKET:
                raise EvidenceStoreUnavailable(f"the evidence bucket {self.bucket!r} does not exist "
                                               "(TIPLINE_EVIDENCE_S3_BUCKET)") from None
            if code in _DENIED:
                raise EvidenceStoreUnavailable(f"access to the evidence bucket {self.bucket!r} is denied: the "
                                               "credentials in the environment may not use it") from None
            raise EvidenceStoreUnavailable(f"the evidence bucket {self.bucket!r} answered "
                                           f"{code or 'an error'}") from None
        except BotoCoreError as error:
            # EndpointConnectionError and the like: botocore's messages name the endpoint, never a credential.
            raise EvidenceStoreUnavailable(f"the S3 endpoint of the evidence bucket {self.bucket!r} cannot be "
                                           f"reached ({type(error).__name__})") from None

    def names(self) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for entry in page.get("Contents", []):
                relative = entry["Key"][len(self.prefix):]
                name = relative.rsplit("/", 1)[-1]
                with suppress(ValueError):
                    if fan_out(check_name(name)) == relative:
                        yield name
