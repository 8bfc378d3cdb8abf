"""What a file is, from its first bytes: the type preserved media is served as, never the platform's word.

A platform's ``Content-Type`` is a claim (``text/html`` included), so it is kept as a record and never sent
back. Only image and video types a reviewer's browser may render are named; anything else is
``application/octet-stream``.
"""

from __future__ import annotations

OCTET_STREAM = "application/octet-stream"
# Enough for every signature below.
SNIFF_BYTES = 32

_SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
]
# ISO base media files: ``size | "ftyp" | brand``.
_FTYP_BRANDS: dict[bytes, str] = {
    b"qt  ": "video/quicktime",
    b"avif": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
}
_FTYP_DEFAULT = "video/mp4"


def sniff_media_type(head: bytes) -> str:
    """The media type ``head`` (a file's first ``SNIFF_BYTES`` bytes) shows it to be."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], _FTYP_DEFAULT)
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    return OCTET_STREAM


EXTENSIONS: dict[str, str] = {
    "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/bmp": "bmp", "image/tiff": "tif",
    "image/webp": "webp", "image/avif": "avif", "image/heic": "heic", "image/heif": "heif",
    "video/webm": "webm", "video/mp4": "mp4", "video/quicktime": "mov", "video/x-msvideo": "avi",
    OCTET_STREAM: "bin",
}
