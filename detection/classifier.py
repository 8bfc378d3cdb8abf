"""Image classifiers shaped like Google's Content Safety API, plus a deterministic local sandbox.

Wire shape (as used by public clients of the API, e.g. ROOST Coop's ``googleContentSafetyLib``; Google
publishes the reference only to approved partners, so treat field names as the best public knowledge)::

    POST https://contentsafety.googleapis.com/v1beta1/images:classify
    X-Goog-Api-Key: API_KEY            (Google APIs also accept ?key=API_KEY; we avoid it, see below)
    Content-Type: application/json
    {"images": ["<base64 of the image bytes>", ...]}

    200 {"reviewPriorities": ["VERY_LOW" | "LOW" | "MEDIUM" | "HIGH" | "VERY_HIGH", ...],
         "modelVersion": "..."}

One priority per image, in request order. This module sends one image per request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, Protocol, runtime_checkable

import httpx
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from detection.image_hashes import UnhashableMedia, open_image_safely

CONTENT_SAFETY_ENDPOINT = "https://contentsafety.googleapis.com/v1beta1/images:classify"
SANDBOX_PATH = "/v1beta1/images:classify"
# Read from a file 3 bytes at a time times this: base64 of whole 3-byte groups concatenates into valid base64.
_STREAM_CHUNK = 3 * (1 << 18)


class Priority(enum.IntEnum):
    """Review priority; ordered, so thresholds read ``priority >= Priority.HIGH``. Wire form: ``.name``."""

    VERY_LOW = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    VERY_HIGH = 5


class ClassifierError(Exception):
    """Base class; messages never contain the API key."""


class ClassifierUnavailable(ClassifierError):  # noqa: N818 - reads better at call sites than ...Error
    """Transient: 5xx, 429, timeout or connection failure. Retry later (Temporal activity retry)."""


class ClassifierRejected(ClassifierError):  # noqa: N818
    """Permanent for this input or configuration: 4xx (bad key, image refused). Do not retry blindly."""


class ClassifierProtocolError(ClassifierError):
    """The service answered 2xx with a body we cannot read."""


@runtime_checkable
class Classifier(Protocol):
    async def classify(self, image: bytes | BinaryIO) -> Priority: ...


def parse_classify_response(body: Any) -> Priority:
    """Read the first ``reviewPriorities`` value of a classify response."""
    if not isinstance(body, dict):
        raise ClassifierProtocolError("classifier response is not a JSON object")
    priorities = body.get("reviewPriorities")
    if not isinstance(priorities, list) or not priorities:
        raise ClassifierProtocolError("classifier response has no reviewPriorities")
    value = priorities[0]
    if not isinstance(value, str) or value not in Priority.__members__:
        raise ClassifierProtocolError(f"unknown review priority {str(value)[:40]!r}")
    return Priority[value]


class ContentSafetyHttpClassifier:
    """Calls the Content Safety API (or the sandbox app below) over HTTP.

    One ``httpx.AsyncClient`` is kept for connection reuse; call ``aclose()`` (or use ``async with``)
    when done. ``transport`` lets tests inject ``httpx.MockTransport`` or an ASGI transport.
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        self._endpoint = endpoint
        self._api_key = api_key
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout)

    async def __aenter__(self) -> ContentSafetyHttpClassifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _redact(self, text: str) -> str:
        # Real keys are ~40 characters; short test keys would redact ordinary words.
        return text.replace(self._api_key, "***") if len(self._api_key) >= 8 else text

    async def classify(self, image: bytes | BinaryIO) -> Priority:
        """Classify ``image``; a file is streamed into the request body, never read whole into memory."""
        headers = {"X-Goog-Api-Key": self._api_key, "Content-Type": "application/json"}
        try:
            # The key travels in Google's X-Goog-Api-Key header rather than ``?key=``: httpx logs request
            # URLs at INFO level, and a key in the URL would end up in every log line.
            if isinstance(image, bytes | bytearray):
                body = {"images": [base64.b64encode(image).decode("ascii")]}
                response = await self._client.post(self._endpoint, headers=headers, json=body)
            else:
                response = await self._client.post(self._endpoint, headers=headers, content=_json_body(image))
        except httpx.TimeoutException as exc:
            raise ClassifierUnavailable(f"classifier timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise ClassifierUnavailable(
                f"classifier unreachable: {type(exc).__name__}: {self._redact(str(exc))[:200]}"
            ) from None
        status = response.status_code
        if status >= 500 or status == 429:
            raise ClassifierUnavailable(f"classifier returned HTTP {status}: {self._snippet(response)}")
        if status >= 400:
            raise ClassifierRejected(f"classifier returned HTTP {status}: {self._snippet(response)}")
        if status != 200:
            raise ClassifierProtocolError(f"classifier returned unexpected HTTP {status}")
        try:
            payload = response.json()
        except ValueError:
            raise ClassifierProtocolError("classifier response is not JSON") from None
        return parse_classify_response(payload)

    def _snippet(self, response: httpx.Response) -> str:
        return self._redact(response.text[:200]).replace("\n", " ")


async def _json_body(image: BinaryIO) -> AsyncIterator[bytes]:
    """``{"images": ["<base64>"]}`` produced a chunk at a time; file reads run on a thread, off the event loop."""
    yield b'{"images": ["'
    while chunk := await asyncio.to_thread(image.read, _STREAM_CHUNK):
        yield base64.b64encode(chunk)
    yield b'"]}'


# --------------------------------------------------------------------------------------------- sandbox

SANDBOX_MARKER_SIZE = 32
# Marker colours, chosen far apart so JPEG re-encoding cannot turn one into another.
SANDBOX_MARKERS: dict[Priority, tuple[int, int, int]] = {
    Priority.LOW: (0, 0, 255),  # blue
    Priority.MEDIUM: (255, 255, 0),  # yellow
    Priority.HIGH: (255, 128, 0),  # orange
    Priority.VERY_HIGH: (255, 0, 0),  # red
}
SANDBOX_OUTAGE_MARKER = (255, 0, 255)  # magenta: simulate a 503 from the service
_MARKER_TOLERANCE = 40


class SandboxClassifier:
    """Deterministic stand-in for the real classifier, for tests and demos. Synthetic images only.

    The answer is read from a marker: the mean colour of the top-left 32x32 pixels.

    * within 40 per channel of blue (0, 0, 255): LOW
    * yellow (255, 255, 0): MEDIUM
    * orange (255, 128, 0): HIGH
    * red (255, 0, 0): VERY_HIGH
    * magenta (255, 0, 255): raises ``ClassifierUnavailable`` (the HTTP sandbox answers 503)
    * anything else, including images smaller than 32x32: VERY_LOW

    Bytes that are not a decodable image raise ``ClassifierRejected`` (the HTTP sandbox answers 400),
    as the real API refuses them. ``make_sandbox_image`` draws images that get any priority.
    """

    async def classify(self, image: bytes | BinaryIO) -> Priority:
        # Decoding (and reading a file) is blocking work; keep the event loop responsive when the image is large.
        return await asyncio.to_thread(self.classify_sync, image)

    def classify_sync(self, image: bytes | BinaryIO) -> Priority:
        try:
            rgb, _, _ = open_image_safely(image, target_side=None)
        except UnhashableMedia as exc:
            raise ClassifierRejected(f"sandbox classifier cannot read the image: {exc.reason}") from None
        with rgb:
            if rgb.width < SANDBOX_MARKER_SIZE or rgb.height < SANDBOX_MARKER_SIZE:
                return Priority.VERY_LOW
            patch = np.asarray(rgb.crop((0, 0, SANDBOX_MARKER_SIZE, SANDBOX_MARKER_SIZE)), dtype=np.float64)
        mean = patch.reshape(-1, 3).mean(axis=0)
        if _close(mean, SANDBOX_OUTAGE_MARKER):
            raise ClassifierUnavailable("sandbox classifier: simulated outage (magenta marker)")
        for priority, colour in SANDBOX_MARKERS.items():
            if _close(mean, colour):
                return priority
        return Priority.VERY_LOW


def _close(mean: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.all(np.abs(mean - np.asarray(colour, dtype=np.float64)) <= _MARKER_TOLERANCE))


def make_sandbox_image(
    priority: Priority | None,
    *,
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
    fmt: str = "JPEG",
    outage: bool = False,
) -> bytes:
    """A synthetic image (smooth noise) that the sandbox classifies as ``priority``.

    ``priority=None`` or ``VERY_LOW`` leaves no marker; ``outage=True`` draws the magenta 503 marker.
    Different seeds give unrelated PDQ hashes, so demos can create many distinct "novel" images.
    """
    import io

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    colour = SANDBOX_OUTAGE_MARKER if outage else SANDBOX_MARKERS.get(priority) if priority else None
    if colour is None:
        # Keep unmarked images away from every marker colour: a grey corner.
        colour = (128, 128, 128)
    ImageDraw.Draw(img).rectangle((0, 0, SANDBOX_MARKER_SIZE - 1, SANDBOX_MARKER_SIZE - 1), fill=colour)
    out = io.BytesIO()
    img.save(out, format=fmt, **({"quality": 90} if fmt.upper() == "JPEG" else {}))
    return out.getvalue()


def create_classifier_sandbox_app(
    *, api_key: str | None = None, classifier: SandboxClassifier | None = None
) -> FastAPI:
    """A FastAPI app serving ``POST /v1beta1/images:classify`` in the Content Safety API shape.

    With ``api_key`` set, requests must carry it in ``X-Goog-Api-Key`` or ``?key=`` (403 otherwise, like
    Google's APIs).
    Errors use Google's JSON error envelope ``{"error": {"code", "message", "status"}}``.
    """
    sandbox = classifier or SandboxClassifier()
    app = FastAPI(title="Tipline classifier sandbox", docs_url=None, redoc_url=None)

    def error(code: int, status: str, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message, "status": status}}, status_code=code)

    @app.post(SANDBOX_PATH)
    async def classify(request: Request) -> JSONResponse:
        presented = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if api_key is not None and presented != api_key:
            return error(403, "PERMISSION_DENIED", "API key not valid.")
        try:
            body = await request.json()
            images = body["images"]
            if not isinstance(images, list) or not images:
                raise ValueError
            decoded = [base64.b64decode(item, validate=True) for item in images]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return error(400, "INVALID_ARGUMENT", "Body must be {\"images\": [<base64>, ...]}.")
        priorities: list[str] = []
        for data in decoded:
            try:
                priorities.append((await sandbox.classify(data)).name)
            except ClassifierUnavailable as exc:
                return error(503, "UNAVAILABLE", str(exc))
            except ClassifierRejected as exc:
                return error(400, "INVALID_ARGUMENT", str(exc))
        return JSONResponse({"reviewPriorities": priorities, "modelVersion": "tipline-sandbox-1"})

    return app
