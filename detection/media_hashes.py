"""One call that hashes any uploaded media item: exact digests always, perceptual hashes for images."""

from __future__ import annotations

from typing import BinaryIO

from pydantic import BaseModel, ConfigDict

from detection.digests import Digests, digest_bytes
from detection.image_hashes import ImageHashes, UnhashableMedia, hash_image


class MediaHashes(BaseModel):
    """JSON-serialisable (``model_dump_json`` / ``model_validate_json``), so it can cross Temporal."""

    model_config = ConfigDict(frozen=True)

    digests: Digests
    image: ImageHashes | None = None
    # Why ``image`` is None ("not a supported image", "decompression bomb: ..."): shown to reviewers and
    # used to route the item to exact-only matching. None when the image hashed fine.
    unhashable_reason: str | None = None


def hash_media(data: bytes, *, dihedral: bool = False) -> MediaHashes:
    """Never raises for bad input: a hostile or non-image upload still gets digests and a reason."""
    return hash_media_stream(data, digest_bytes(data), dihedral=dihedral)


def hash_media_stream(source: bytes | BinaryIO, digests: Digests, *, dihedral: bool = False) -> MediaHashes:
    """``hash_media`` for bytes already digested (preserved evidence), read from a seekable file as needed."""
    try:
        image = hash_image(source, dihedral=dihedral)
    except UnhashableMedia as exc:
        return MediaHashes(digests=digests, image=None, unhashable_reason=exc.reason)
    return MediaHashes(digests=digests, image=image)
