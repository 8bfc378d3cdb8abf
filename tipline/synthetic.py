"""Benign synthetic images for tests, the demo and benchmarks: shapes, gradients and noise, never photos."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw


def synthetic_image(seed: int, *, size: tuple[int, int] = (320, 240), image_format: str = "PNG") -> bytes:
    """A deterministic abstract picture: the same seed always gives the same bytes."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = rng.randrange(x0, width + 1), rng.randrange(y0, height + 1)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.ellipse((x0, y0, x1, y1), outline=colour, width=3)
    draw.text((8, 8), f"synthetic #{seed}", fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()
