"""Payload compression for everything Tipline sends through Temporal.

A case carries its whole state when it continues as new; JSON of thousands of media items is repetitive, so
zlib keeps it well inside Temporal's 2 MB payload limit. Small payloads pass through untouched, so the Web UI
still shows them; large ones are marked ``binary/zlib`` (a codec server for the UI can decode them).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/zlib"
COMPRESS_FROM_BYTES = 4096


class CompressionCodec(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._compress(p) if len(p.data) >= COMPRESS_FROM_BYTES else p for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload.FromString(zlib.decompress(p.data)) if p.metadata.get("encoding") == ENCODING else p
                for p in payloads]

    @staticmethod
    def _compress(payload: Payload) -> Payload:
        return Payload(metadata={"encoding": ENCODING}, data=zlib.compress(payload.SerializeToString(), 6))


DATA_CONVERTER: DataConverter = dataclasses.replace(pydantic_data_converter, payload_codec=CompressionCodec())
