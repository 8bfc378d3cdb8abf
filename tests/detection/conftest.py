"""Synthetic, benign test images only: noise, gradients, shapes and text drawn with Pillow."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw


def synthetic_image(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
    draw.text((10, 10), f"synthetic {seed}", fill=(255, 255, 255))
    return img


def encode(img: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kwargs)
    return out.getvalue()


@pytest.fixture
def image_bytes() -> bytes:
    return encode(synthetic_image(1), quality=92)


# Fixtures hand out the helpers, so test modules never import conftest by name (other test
# directories have their own conftest.py and tests/detection is not a package).
@pytest.fixture
def make_image():  # noqa: ANN201 - returns the helper itself
    return synthetic_image


@pytest.fixture
def encode_image():  # noqa: ANN201
    return encode
