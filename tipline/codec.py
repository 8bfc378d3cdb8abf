"""The payload codec for everything Tipline sends through Temporal: compress, then encrypt.

Histories hold user metadata, IP addresses and conversation text, so no payload reaches the server in the
clear: each is AES-256-GCM encrypted under the current payload key (``tipline.payload_keys``), its key id in the
metadata so a rotation keeps old histories readable. Before that, large payloads are zlib-compressed: a case
carries its whole state when it continues as new, and JSON of thousands of media items is repetitive.
Compressing first matters: ciphertext does not compress.

Decoding still accepts compressed-only and plain payloads, the way histories were written before encryption
(tests/fixtures/histories). Operators read payloads in the Web UI through the codec server (api/routers/codec.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import zlib
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from tipline.payload_keys import PayloadKeySource, StaticKeySource, key_source
from tipline.settings import Settings

ENCODING = b"binary/zlib"
COMPRESS_FROM_BYTES = 4096
OFF_THE_LOOP_FROM_BYTES = 256 * 1024
ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
# Binds the ciphertext to its format and key id, so a payload relabelled with another key id fails to decrypt.
_AAD_PREFIX = b"tipline-payload-v1\x00"


class PayloadDecryptionError(Exception):
    """An encrypted payload did not authenticate: altered in storage, or encrypted under a different key."""


class CompressionCodec(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [await _off_the_loop(self._compress, p, len(p.data)) if len(p.data) >= COMPRESS_FROM_BYTES else p
                for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [await _off_the_loop(self._decompress, p, len(p.data)) if p.metadata.get("encoding") == ENCODING
                else p for p in payloads]

    @staticmethod
    def _compress(payload: Payload) -> Payload:
        return Payload(metadata={"encoding": ENCODING}, data=zlib.compress(payload.SerializeToString(), 6))

    @staticmethod
    def _decompress(payload: Payload) -> Payload:
        return Payload.FromString(zlib.decompress(payload.data))


async def _off_the_loop(step: Callable[[Payload], Payload], payload: Payload, size: int) -> Payload:
    """A large payload (a case of thousands of items, queried or continued as new) is compressed in a thread:
    zlib lets go of the GIL, and the worker's event loop, which polls and completes every other task, is not
    held for the hundreds of milliseconds 20 MB takes."""
    if size < OFF_THE_LOOP_FROM_BYTES:
        return step(payload)
    return await asyncio.to_thread(step, payload)


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over the serialized payload, metadata included (the encoding name would tell too much)."""

    def __init__(self, keys: PayloadKeySource) -> None:
        self._keys = keys

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id, key = await self._keys.current()
        cipher = AESGCM(key)
        aad = _AAD_PREFIX + key_id.encode()
        encoded = []
        for payload in payloads:
            # Random 96-bit nonces: safe for far more payloads than a key should see between rotations.
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), aad)
            encoded.append(Payload(metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: key_id.encode()},
                                   data=nonce + sealed))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [await self._decrypt(p) if p.metadata.get("encoding") == ENCRYPTED_ENCODING else p
                for p in payloads]

    async def _decrypt(self, payload: Payload) -> Payload:
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        if raw_id is None:
            raise PayloadDecryptionError(f"an encrypted payload has no {KEY_ID_METADATA} in its metadata")
        key_id = raw_id.decode("utf-8", errors="replace")
        key = await self._keys.key(key_id)
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, _AAD_PREFIX + key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"a payload encrypted with key {key_id!r} failed authentication: it was altered, or that key id "
                "names a different key here"
            ) from None
        return Payload.FromString(plain)


class TiplineCodec(PayloadCodec):
    """Compression, then encryption; decoding undoes them in reverse and passes older payloads through."""

    def __init__(self, keys: PayloadKeySource) -> None:
        self._compression = CompressionCodec()
        self._encryption = EncryptionCodec(keys)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self._encryption.encode(await self._compression.encode(payloads))

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self._compression.decode(await self._encryption.decode(payloads))


def converter_with(keys: PayloadKeySource) -> DataConverter:
    # Failure messages and stack traces go into an encoded payload too: a message may quote what a platform sent.
    return dataclasses.replace(pydantic_data_converter, payload_codec=TiplineCodec(keys),
                               failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def data_converter(settings: Settings) -> DataConverter:
    """One way to reach Temporal, so the API, the worker, the CLI and the tests agree on the converter."""
    return converter_with(key_source(settings))


def throwaway_converter() -> DataConverter:
    """A converter with a fresh random key: for replaying recorded histories (decoding them needs no key, the
    replayed workflow's own commands are encoded and dropped) and for benchmarks."""
    return converter_with(StaticKeySource.generate())
