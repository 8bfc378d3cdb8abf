"""Perceptual hashes of still images: PDQ (industry lists), pHash and crop-resistant hash (own bank).

Every input is treated as hostile: the header is inspected and size limits enforced *before* any pixel
is decoded, only a short list of decoders is enabled, and every failure becomes ``UnhashableMedia``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO, Literal

import imagehash
import numpy as np
import pdqhash
from PIL import Image

from detection.crop_resistant import crop_resistant_hash

# Limits on what we are willing to decode. Pillow's own bomb guard (MAX_IMAGE_PIXELS) is a process-wide
# global that other code may change, so we enforce our own explicit limits on top of it.
# Decoded pixels are counted after JPEG draft-mode reduction: a 200 MP JPEG decodes at 1/8 scale cheaply.
MAX_DECODED_PIXELS = 64_000_000
# Any side above this is a crafted file, whatever the pixel count (e.g. 1 x 10^7 strips).
MAX_SIDE = 30_000
# Header-declared pixels; bounds the work of formats whose draft() is a no-op.
MAX_DECLARED_PIXELS = 400_000_000

# Decoders we allow. Everything else (EPS via Ghostscript, exotic formats with less-audited decoders) is
# rejected at open time instead of being sniffed.
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO")
_ALLOWED_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
                            "I", "I;16", "I;16L", "I;16B", "F"})

# Images are decoded reduced (JPEG DCT scaling) to at least this side: the pHash and crop-resistant
# thumbnails are made at this size.
FAST_PATH_SIDE = 512
# PDQ downsamples to 64x64 internally. Hashing a 384-pixel version is 2-3x faster than 512 and, on the
# benchmark's images, nearer the full-resolution hash (median 2-4 bits off, against 4-10 at 512).
PDQ_SIDE = 384


class UnhashableMedia(Exception):  # noqa: N818 - public name fixed by the integration contract
    """The bytes cannot be hashed as an image. ``reason`` is short, stable and safe to show reviewers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ImageHashes:
    pdq: str  # 64 lower-case hex chars, bit 0 of pdqhash's vector is the most significant bit
    pdq_quality: int  # 0-100; below 50 only exact matching should be trusted
    phash: str  # 16 hex chars, imagehash.phash
    crop_resistant: str  # str(imagehash.crop_resistant_hash(...)): comma-separated segment dhashes
    width: int  # dimensions as declared by the file
    height: int
    # When requested: the 8 dihedral PDQ hashes in pdqhash order (original, rot90, rot180, rot270,
    # flip vertical, flip horizontal, rot90+flip vertical, rot90+flip horizontal).
    pdq_dihedral: tuple[str, ...] = ()


def pdq_bits_to_hex(bits: np.ndarray) -> str:
    """The python-threatexchange / HMA convention: the first bit is the most significant."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def open_image_safely(
    data: bytes | BinaryIO, *, target_side: int | None = FAST_PATH_SIDE, mode: Literal["RGB", "L"] = "RGB"
) -> tuple[Image.Image, int, int]:
    """Open ``data``, enforce limits, decode it (reduced when the decoder can), and return it in ``mode``.

    ``data`` may be a seekable file (an evidence reader): Pillow then reads only what decoding needs, so memory
    is bounded by the pixel limits below, never by the file's size.

    ``L`` (luma) is what every perceptual hash reads, and a JPEG decodes straight to it, skipping chroma.
    Returns ``(image, declared_width, declared_height)``. Raises ``UnhashableMedia``.
    """
    try:
        # Pillow may warn (DecompressionBombWarning) between its MAX_IMAGE_PIXELS and twice that; our own
        # limits below decide. We do not silence it: warnings.catch_warnings() is not thread-safe.
        source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
        im = Image.open(source, formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise UnhashableMedia("decompression bomb: declared dimensions too large") from None
    except Exception:  # UnidentifiedImageError, SyntaxError from bad headers, struct errors, ...
        raise UnhashableMedia("not a supported image") from None

    try:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise UnhashableMedia("invalid image dimensions")
        if width > MAX_SIDE or height > MAX_SIDE:
            raise UnhashableMedia(f"image dimensions too large ({width}x{height})")
        if width * height > MAX_DECLARED_PIXELS:
            raise UnhashableMedia(f"decompression bomb: {width}x{height} declared")
        if im.mode not in _ALLOWED_MODES:
            raise UnhashableMedia(f"unsupported image mode {im.mode!r}")
        if target_side is not None and im.format in ("JPEG", "MPO"):
            # DCT-domain scaling: decodes at 1/2, 1/4 or 1/8 while staying >= the requested size.
            im.draft(mode, (target_side, target_side))
        dw, dh = im.size
        if dw * dh > MAX_DECODED_PIXELS:
            raise UnhashableMedia(f"decompression bomb: {width}x{height} too many pixels to decode")
        im.load()  # truncated files raise OSError here (LOAD_TRUNCATED_IMAGES is left False)
        decoded = _convert(im, mode)
    except UnhashableMedia:
        im.close()
        raise
    except MemoryError:
        im.close()
        raise UnhashableMedia("image too large to decode") from None
    except Exception:
        im.close()
        raise UnhashableMedia("corrupt or truncated image") from None
    if decoded is not im:
        im.close()
    return decoded, width, height


def _convert(im: Image.Image, mode: Literal["RGB", "L"]) -> Image.Image:
    if im.mode == mode:
        return im
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "F"):
        # 16-bit / float greyscale: rescale to 8 bits instead of letting convert() clip everything to white.
        # Reduce first so a 64 MP 16-bit scan does not become a 512 MB float array.
        im = im.convert("F")
        im.thumbnail((4 * FAST_PATH_SIDE, 4 * FAST_PATH_SIDE), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 0.0 if hi <= lo else 255.0 / (hi - lo)
        scaled = ((arr - lo) * scale).astype(np.uint8)
        return Image.fromarray(scaled).convert(mode)
    # Alpha is dropped, not composited: python-threatexchange/HMA hash the RGB channels as stored, and
    # matching hashes computed elsewhere matters more than what a viewer would see on white.
    return im.convert(mode)


def _reduce(image: Image.Image, side: int) -> Image.Image:
    w, h = image.size
    if w <= side and h <= side:
        return image
    # BOX (area average) is the cheapest filter that does not alias; PDQ low-passes again itself.
    return image.resize((min(w, side), min(h, side)), Image.Resampling.BOX, reducing_gap=2.0)


def pdq_of_luma(
    luma: Image.Image, *, dihedral: bool = False, side: int | None = PDQ_SIDE
) -> tuple[str, int, tuple[str, ...]]:
    """PDQ hash, quality and (when asked) the 8 dihedral hashes of an ``L`` image reduced to ``side``.

    pdqhash takes RGB only and computes 0.299 R + 0.587 G + 0.114 B itself: three equal channels give back
    the luma unchanged, the same value (up to rounding) an RGB decode would have produced.
    """
    grey = np.asarray(luma if side is None else _reduce(luma, side), dtype=np.uint8)
    pixels = np.broadcast_to(grey[:, :, None], (*grey.shape, 3))  # a view: the channels are not copied
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(pixels)
        hashes = tuple(pdq_bits_to_hex(v) for v in vectors)
        return hashes[0], int(quality), hashes
    vector, quality = pdqhash.compute(pixels)
    return pdq_bits_to_hex(vector), int(quality), ()


def hash_image(data: bytes | BinaryIO, *, dihedral: bool = False, fast: bool = True) -> ImageHashes:
    """Hash an image. ``fast`` decodes reduced and hashes PDQ at PDQ_SIDE (a few bits of drift)."""
    luma, width, height = open_image_safely(data, target_side=FAST_PATH_SIDE if fast else None, mode="L")
    try:
        pdq, quality, pdq_dihedral = pdq_of_luma(luma, dihedral=dihedral, side=PDQ_SIDE if fast else None)
        # imagehash reduces to 32x32 / 300x300 itself; an aspect-preserving 512 thumbnail keeps segment
        # shapes right for the crop-resistant hash while avoiding work on full-resolution pixels.
        thumb = luma.copy()
        thumb.thumbnail((FAST_PATH_SIDE, FAST_PATH_SIDE), Image.Resampling.BILINEAR)
        phash = str(imagehash.phash(thumb))
        crop_resistant = crop_resistant_hash(thumb)
    except UnhashableMedia:
        raise
    except Exception as exc:  # a hashing library choking on odd input must not take the worker down
        raise UnhashableMedia(f"hashing failed: {type(exc).__name__}") from None
    finally:
        luma.close()
    return ImageHashes(
        pdq=pdq,
        pdq_quality=quality,
        phash=phash,
        crop_resistant=crop_resistant,
        width=width,
        height=height,
        pdq_dihedral=pdq_dihedral,
    )


def pdq_distance(a: str, b: str) -> int:
    """Hamming distance between two 64-hex PDQ hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
