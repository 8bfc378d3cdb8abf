"""ASGI middleware every response passes through: body size limits and security headers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, BodyTooLarge, too_large

# API answers are data, never documents: nothing in them may run, be framed, or load anything.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Case data, media and records must not linger in browser or proxy caches.
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` and a strict CSP to every HTTP response that has not set its own.

    Pages that need more than the API's CSP (the review page, the OpenAPI docs) set their own policy.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {**SECURITY_HEADERS, "Content-Security-Policy": API_CSP}.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class BodyLimit:
    limit: int
    setting: str


class BodyLimits:
    """Refuses a request body over its endpoint's limit with 413, before reading it whole.

    A declared Content-Length over the limit is refused before a byte is read; a body without one (chunked)
    is counted as it streams in, and the read that crosses the limit raises ``BodyTooLarge``.
    """

    def __init__(self, app: ASGIApp, *, default: BodyLimit, per_path: Mapping[str, BodyLimit]) -> None:
        self.app = app
        self.default = default
        self.per_path = dict(per_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.default)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit.limit:
            await _refuse(send, limit)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.limit:
                    raise BodyTooLarge(limit.limit, limit.setting)
            return message

        await self.app(scope, counting_receive, send)


async def _refuse(send: Send, limit: BodyLimit) -> None:
    body = too_large(limit.limit, limit.setting).model_dump_json(exclude_none=True).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class PathCORS:
    """CORS for one path prefix and one origin, with credentials (the UI's cookie option); elsewhere none.

    Starlette's ``CORSMiddleware`` does the protocol; this only keeps it off every other endpoint.
    """

    def __init__(self, app: ASGIApp, prefix: str, origin: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/") + "/"
        self.cors = CORSMiddleware(app, allow_origins=[origin], allow_methods=["POST"], allow_credentials=True,
                                   allow_headers=["content-type", "x-namespace", "authorization", "x-api-key"],
                                   max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
