"""The type preserved media is served as comes from its first bytes; anything unknown is a plain download."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tipline.media_types import EXTENSIONS, OCTET_STREAM, SNIFF_BYTES, sniff_media_type


def image_bytes(format_name: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(buffer, format=format_name)
    return buffer.getvalue()


@pytest.mark.parametrize(("format_name", "expected"), [
    ("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("BMP", "image/bmp"),
    ("TIFF", "image/tiff"), ("WEBP", "image/webp"),
])
def test_images_pillow_writes_are_recognised(format_name: str, expected: str) -> None:
    assert sniff_media_type(image_bytes(format_name)[:SNIFF_BYTES]) == expected


@pytest.mark.parametrize(("head", "expected"), [
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "video/mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "video/quicktime"),
    (b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00", "image/heic"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "video/webm"),
    (b"RIFF\x24\x00\x00\x00AVI LIST", "video/x-msvideo"),
])
def test_videos_and_iso_media_are_recognised(head: bytes, expected: str) -> None:
    assert sniff_media_type(head) == expected


@pytest.mark.parametrize("head", [b"<html><script>alert(1)</script>", b"<svg xmlns='http://www.w3.org/2000/svg'>",
                                  b"%PDF-1.7", b"", b"\x89PN", b"RIFF\x00\x00\x00\x00WAVE"])
def test_anything_else_is_an_octet_stream_never_a_document(head: bytes) -> None:
    assert sniff_media_type(head) == OCTET_STREAM


def test_every_type_it_names_has_a_file_extension() -> None:
    named = {"image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff", "image/webp", "image/avif",
             "image/heic", "image/heif", "video/webm", "video/mp4", "video/quicktime", "video/x-msvideo", OCTET_STREAM}
    assert named == set(EXTENSIONS)
    assert not any(media_type.startswith(("text/", "application/xhtml", "image/svg")) for media_type in EXTENSIONS)
