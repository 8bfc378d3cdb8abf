from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image

from detection.digests import Digests, digest_bytes, digest_file
from detection.image_hashes import (
    PDQ_SIDE,
    ImageHashes,
    UnhashableMedia,
    hash_image,
    open_image_safely,
    pdq_bits_to_hex,
    pdq_distance,
    pdq_of_luma,
)
from detection.media_hashes import MediaHashes, hash_media


def test_digests_match_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000  # > 1 chunk
    expected = Digests(
        md5=hashlib.md5(data).hexdigest(),
        sha1=hashlib.sha1(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    assert digest_bytes(data) == expected
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert digest_file(path) == expected
    assert digest_bytes(b"").md5 == "d41d8cd98f00b204e9800998ecf8427e"


def test_hash_image_fields(image_bytes: bytes) -> None:
    h = hash_image(image_bytes, dihedral=True)
    assert len(h.pdq) == 64 and int(h.pdq, 16) >= 0
    assert 0 <= h.pdq_quality <= 100
    assert len(h.phash) == 16
    assert h.crop_resistant
    assert (h.width, h.height) == (640, 480)
    assert len(h.pdq_dihedral) == 8 and h.pdq_dihedral[0] == h.pdq
    assert hash_image(image_bytes).pdq_dihedral == ()


def test_fast_path_drift_is_small(make_image, encode_image) -> None:
    big = encode_image(make_image(7, (2048, 1536)), quality=90)
    assert pdq_distance(hash_image(big).pdq, hash_image(big, fast=False).pdq) <= 16


def test_luma_decode_gives_the_pdq_of_the_rgb_pixels(make_image, encode_image) -> None:
    # hash_image decodes JPEGs straight to luma; pdqhash on the RGB decode is the reference it replaces.
    data = encode_image(make_image(5, (1024, 768)), quality=90)
    with Image.open(io.BytesIO(data)) as im:
        rgb = np.asarray(im.convert("RGB").resize((PDQ_SIDE, PDQ_SIDE), Image.Resampling.BOX))
    reference = pdq_bits_to_hex(pdqhash.compute(rgb)[0])
    luma, _, _ = open_image_safely(data, target_side=None, mode="L")
    pdq, _, _ = pdq_of_luma(luma)
    assert pdq_distance(pdq, reference) <= 4


def test_near_duplicates_are_close_and_unrelated_far(make_image, encode_image) -> None:
    img = make_image(3)
    original = hash_image(encode_image(img, quality=95))
    half = img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR)
    resized = hash_image(encode_image(half, quality=70))
    unrelated = hash_image(encode_image(make_image(4), quality=95))
    assert pdq_distance(original.pdq, resized.pdq) <= 31
    assert pdq_distance(original.pdq, unrelated.pdq) > 31


def test_mirror_recovered_by_dihedral(make_image, encode_image) -> None:
    img = make_image(5)
    original = hash_image(encode_image(img, "PNG"), dihedral=True)
    mirrored = hash_image(encode_image(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG"))
    assert pdq_distance(original.pdq, mirrored.pdq) > 31
    assert min(pdq_distance(d, mirrored.pdq) for d in original.pdq_dihedral) <= 31


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(width: int, height: int, colour_type: int, extra: bytes = b"", rows: int = 16) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    bytes_per_row = width * (1 if colour_type == 3 else 3)
    # Only a few rows of (highly compressible) data: the limits must reject the file from its header.
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(b"\x00" * (bytes_per_row + 1)) for _ in range(rows)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + extra + _png_chunk(b"IDAT", idat) + _png_chunk(
        b"IEND", b""
    )


HOSTILE = {
    "not an image": b"%PDF-1.4 definitely not an image" * 10,
    "empty": b"",
    "png header 100000x100000": _png(100_000, 100_000, 2),
    "palette bomb 20000x20000": _png(20_000, 20_000, 3, extra=_png_chunk(b"PLTE", bytes(range(256)) * 3)),
    "palette bomb 9000x9000": _png(9_000, 9_000, 3, extra=_png_chunk(b"PLTE", bytes(range(256)) * 3)),
    "png zero width": _png(0, 10, 2),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_inputs_are_unhashable_not_crashes(name: str) -> None:
    data = HOSTILE[name]
    with pytest.raises(UnhashableMedia) as info:
        hash_image(data)
    assert info.value.reason
    media = hash_media(data)
    assert media.image is None and media.unhashable_reason == info.value.reason
    assert media.digests == digest_bytes(data)


def test_truncated_jpeg_is_unhashable(image_bytes: bytes) -> None:
    for cut in (20, len(image_bytes) // 3, len(image_bytes) - 200):
        with pytest.raises(UnhashableMedia):
            hash_image(image_bytes[:cut])


def test_unsupported_format_rejected(make_image) -> None:
    out = io.BytesIO()
    make_image(1, (64, 64)).save(out, format="PPM")  # a format we deliberately do not decode
    assert hash_media(out.getvalue()).unhashable_reason == "not a supported image"


def test_other_modes_hash(make_image, encode_image) -> None:
    img = make_image(2, (200, 150))
    for variant in (img.convert("L"), img.convert("P"), img.convert("RGBA"), img.convert("1")):
        assert len(hash_image(encode_image(variant, "PNG")).pdq) == 64
    sixteen = Image.new("I;16", (100, 80))
    assert len(hash_image(encode_image(sixteen, "PNG")).pdq) == 64
    assert len(hash_image(encode_image(img, "GIF")).pdq) == 64


def test_media_hashes_json_round_trip(image_bytes: bytes) -> None:
    media = hash_media(image_bytes, dihedral=True)
    assert isinstance(media.image, ImageHashes) and media.unhashable_reason is None
    again = MediaHashes.model_validate_json(media.model_dump_json())
    assert again == media
