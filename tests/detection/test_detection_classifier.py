from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from detection.classifier import (
    SANDBOX_PATH,
    Classifier,
    ClassifierProtocolError,
    ClassifierRejected,
    ClassifierUnavailable,
    ContentSafetyHttpClassifier,
    Priority,
    SandboxClassifier,
    create_classifier_sandbox_app,
    make_sandbox_image,
)

API_KEY = "sandbox-test-key-0123456789"


def test_priority_is_ordered() -> None:
    assert Priority.VERY_LOW < Priority.LOW < Priority.MEDIUM < Priority.HIGH < Priority.VERY_HIGH
    assert Priority["HIGH"] >= Priority.HIGH


@pytest.mark.parametrize("priority", list(Priority))
async def test_sandbox_is_deterministic(priority: Priority) -> None:
    sandbox = SandboxClassifier()
    assert isinstance(sandbox, Classifier)
    for seed in range(3):
        for fmt in ("JPEG", "PNG"):
            image = make_sandbox_image(priority, seed=seed, fmt=fmt)
            assert await sandbox.classify(image) == priority
            assert await sandbox.classify(image) == priority


async def test_sandbox_unmarked_and_errors(make_image, encode_image) -> None:
    sandbox = SandboxClassifier()
    assert await sandbox.classify(encode_image(make_image(1))) == Priority.VERY_LOW
    with pytest.raises(ClassifierRejected):
        await sandbox.classify(b"not an image")
    with pytest.raises(ClassifierUnavailable):
        await sandbox.classify(make_sandbox_image(None, outage=True))


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    """Serve the sandbox app with uvicorn on a free loopback port for the duration of one test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_classifier_sandbox_app(api_key=API_KEY), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # surface a startup failure instead of waiting out the deadline
                await asyncio.sleep(0.005)  # yield to the server task; bounded by the deadline above
        yield f"http://127.0.0.1:{port}{SANDBOX_PATH}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
        sock.close()


async def test_http_adapter_over_loopback(sandbox_url: str) -> None:
    async with ContentSafetyHttpClassifier(sandbox_url, API_KEY, timeout=5.0) as classifier:
        for priority in Priority:
            assert await classifier.classify(make_sandbox_image(priority, seed=2)) == priority
        with pytest.raises(ClassifierUnavailable, match="HTTP 503"):
            await classifier.classify(make_sandbox_image(None, outage=True))
        with pytest.raises(ClassifierRejected, match="HTTP 400"):
            await classifier.classify(b"junk")
    async with ContentSafetyHttpClassifier(sandbox_url, "wrong-key-xxxxxxxx", timeout=5.0) as classifier:
        with pytest.raises(ClassifierRejected, match="HTTP 403"):
            await classifier.classify(make_sandbox_image(Priority.HIGH))


def _mock(handler) -> httpx.MockTransport:  # noqa: ANN001
    return httpx.MockTransport(handler)


async def test_http_adapter_errors_are_clear_and_redacted() -> None:
    def server_error(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-goog-api-key"] == API_KEY and API_KEY not in str(request.url)
        return httpx.Response(500, text=f"boom {API_KEY}")

    async with ContentSafetyHttpClassifier("http://x/c", API_KEY, timeout=1, transport=_mock(server_error)) as c:
        with pytest.raises(ClassifierUnavailable) as info:
            await c.classify(b"img")
        assert "HTTP 500" in str(info.value) and API_KEY not in str(info.value)

    def bad_body(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"reviewPriorities": ["EXTREME"]})

    async with ContentSafetyHttpClassifier("http://x/c", API_KEY, timeout=1, transport=_mock(bad_body)) as c:
        with pytest.raises(ClassifierProtocolError):
            await c.classify(b"img")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused for {request.url}")

    async with ContentSafetyHttpClassifier("http://x/c", API_KEY, timeout=1, transport=_mock(refuse)) as c:
        with pytest.raises(ClassifierUnavailable) as info:
            await c.classify(b"img")
        assert API_KEY not in str(info.value)
