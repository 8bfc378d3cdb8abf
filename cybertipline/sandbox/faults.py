"""Fault injection for chaos runs: latency, errors that commit nothing, and answers dropped after committing.

An injected error is either a bare 503 (a load balancer in front of NCMEC) or, when ``error_codes`` is set,
one of NCMEC's own application errors in NCMEC's shape: a ``reportResponse`` (``reportDoneResponse`` on
``/finish``) with the code, at the configured HTTP status; 2000 comes as HTTP 401 with the realm, as NCMEC
answers bad credentials.

Implemented as pure ASGI middleware so a dropped answer can really abort the connection mid-response, which
is what a client sees when a load balancer or the network fails after NCMEC has already saved the change.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cybertipline import responses as codes

FAULT_PATH_PREFIX = "/ispws"


class DropMode(StrEnum):
    STATUS_502 = "status_502"  # commit, then answer 502 with an empty body
    ABORT = "abort"  # commit, then close the connection halfway through the answer
    RANDOM = "random"  # either, chosen per request


@dataclass
class FaultSettings:
    latency_ms: int = 0
    # Held after the change is committed, before the answer leaves: the window in which a client that
    # crashes has changed NCMEC's state without learning it.
    answer_delay_ms: int = 0
    error_rate: float = 0.0
    # NCMEC response codes an injected error answers with, one drawn per error; empty: a bare 503.
    error_codes: list[int] = field(default_factory=list)
    # How many more errors to inject before stopping (None: no limit), so a test can fail exactly the next call.
    error_count: int | None = None
    drop_rate: float = 0.0
    outage: bool = False
    seed: int | None = None
    drop_mode: DropMode = DropMode.RANDOM

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["drop_mode"] = self.drop_mode.value
        return data


class FaultInjector:
    def __init__(self) -> None:
        self.settings = FaultSettings()
        self._rng = random.Random()

    def configure(self, **changes: Any) -> FaultSettings:
        """Apply a partial update; fields not given keep their value. Reseeds when ``seed`` is given."""
        for name, value in changes.items():
            if not hasattr(self.settings, name):
                raise ValueError(f"unknown fault setting {name!r}")
            setattr(self.settings, name, list(value or []) if name == "error_codes" else value)
        for name in ("error_rate", "drop_rate"):
            rate = getattr(self.settings, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.settings.latency_ms < 0 or self.settings.answer_delay_ms < 0:
            raise ValueError("latency_ms and answer_delay_ms must not be negative")
        if self.settings.error_count is not None and self.settings.error_count < 0:
            raise ValueError("error_count must not be negative")
        self.settings.drop_mode = DropMode(self.settings.drop_mode)
        if "seed" in changes:
            self._rng = random.Random(self.settings.seed)
        return self.settings

    def reset(self) -> None:
        self.settings = FaultSettings()
        self._rng = random.Random()

    def roll(self, rate: float) -> bool:
        # rate 1.0 must always fire and 0.0 never, whatever the generator returns.
        return rate >= 1.0 or (rate > 0.0 and self._rng.random() < rate)

    def roll_error(self) -> bool:
        settings = self.settings
        if settings.error_count == 0 or not self.roll(settings.error_rate):
            return False
        if settings.error_count is not None:
            settings.error_count -= 1
        return True

    def pick_error_code(self) -> int | None:
        return self._rng.choice(self.settings.error_codes) if self.settings.error_codes else None

    def pick_drop_mode(self) -> DropMode:
        mode = self.settings.drop_mode
        if mode is DropMode.RANDOM:
            return self._rng.choice([DropMode.STATUS_502, DropMode.ABORT])
        return mode


# uvicorn logs "ASGI callable returned without completing response" at ERROR level for a deliberate abort;
# this flag (set in the same task uvicorn logs from) lets a filter drop exactly those lines.
_deliberate_abort: ContextVar[bool] = ContextVar("sandbox_deliberate_abort", default=False)


class _SuppressDeliberateAbort(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _deliberate_abort.get()


_ABORT_FILTER = _SuppressDeliberateAbort()


def _install_abort_filter() -> None:
    # Installed lazily: uvicorn reconfigures its loggers whenever a server is created.
    uvicorn_error = logging.getLogger("uvicorn.error")
    if _ABORT_FILTER not in uvicorn_error.filters:
        uvicorn_error.addFilter(_ABORT_FILTER)


async def _send_plain(send: Send, status: int, body: bytes = b"") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


_REALM_HEADER = (b"www-authenticate", b'Basic realm="ESP Web Services"')


async def _drain(receive: Receive) -> None:
    # Read the request to its end before refusing it, as a real server does: answering mid-upload makes the
    # client see a reset connection instead of the error.
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class FaultMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        injector: FaultInjector,
        *,
        error_http_status: int = 200,
        render_error: Callable[[str, int, str | None], bytes] | None = None,
    ) -> None:
        self.app = app
        self.injector = injector
        self.error_http_status = error_http_status
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(FAULT_PATH_PREFIX):
            await self.app(scope, receive, send)
            return
        settings = self.injector.settings
        if settings.outage:
            await _drain(receive)
            await _send_plain(send, 503, b"Service Unavailable")
            return
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        if self.injector.roll_error():
            await _drain(receive)
            await self._error(scope, send)
            return
        if self.injector.roll(settings.drop_rate):
            await self._drop(scope, receive, send)
        elif settings.answer_delay_ms:
            await self._delayed(scope, receive, send, settings.answer_delay_ms)
        else:
            await self.app(scope, receive, send)

    async def _error(self, scope: Scope, send: Send) -> None:
        code = self.injector.pick_error_code()
        if code is None or self.render_error is None:
            await _send_plain(send, 503, b"Service Unavailable")
            return
        body = self.render_error(str(scope.get("path", "")), code, None)
        headers = [(b"content-type", b"application/xml"), (b"content-length", str(len(body)).encode())]
        status = self.error_http_status
        if code == codes.AUTHENTICATION_REQUIRED:
            status = 401
            headers.append(_REALM_HEADER)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _delayed(self, scope: Scope, receive: Receive, send: Send, delay_ms: int) -> None:
        answer: list[Message] = []

        async def hold(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, hold)
        await asyncio.sleep(delay_ms / 1000)
        for message in answer:
            await send(message)

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None

        async def swallow(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message

        # The handler runs to completion, so the change is committed; only the answer is lost.
        await self.app(scope, receive, swallow)
        if self.injector.pick_drop_mode() is DropMode.STATUS_502:
            await _send_plain(send, 502)
            return
        headers = list(start["headers"]) if start is not None else []
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        headers.append((b"content-length", b"4096"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<?xml", "more_body": True})
        _install_abort_filter()
        _deliberate_abort.set(True)
        # Returning now, with the body incomplete, makes uvicorn close the connection.
