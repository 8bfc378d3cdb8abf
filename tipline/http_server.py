"""Run an ASGI app on a real socket inside the current event loop (tests, demo stack, sandbox)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn

_STARTUP_TIMEOUT = 10.0
_SHUTDOWN_TIMEOUT = 10.0
_POLL_INTERVAL = 0.005
_TICK = 0.1


class _EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    # The embedding process owns SIGINT/SIGTERM; uvicorn must not swap its handlers in and out.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        # uvicorn's loop, except that an exit request wakes it at once instead of at the next 0.1 s tick.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), _TICK)
            should_exit = await self.on_tick(counter)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP, and
    # without it every response pays a ~40 ms delayed-ACK stall on loopback.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        # uvicorn calls sys.exit() when startup fails; inside a task that would tear down the whole loop.
        raise RuntimeError(f"uvicorn failed to start (exit code {exc.code})") from None


@contextlib.asynccontextmanager
async def serve_app(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` until the block exits; yields the base URL, e.g. ``http://127.0.0.1:54321``."""
    # Binding ourselves makes port 0 work and tells us the real port before uvicorn starts.
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, host=host, port=bound_port, log_level="warning", lifespan="on")
    server = _EmbeddedServer(config)
    task = asyncio.create_task(_run(server, sock))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STARTUP_TIMEOUT
        while not server.started:
            if task.done():
                # Startup failed (e.g. the lifespan raised); surface uvicorn's own exception.
                task.result()
                raise RuntimeError("uvicorn exited before it started serving")
            if loop.time() > deadline:
                raise TimeoutError(f"uvicorn did not start within {_STARTUP_TIMEOUT}s")
            await asyncio.sleep(_POLL_INTERVAL)
        display_host = f"[{host}]" if ":" in host else host
        yield f"http://{display_host}:{bound_port}"
    finally:
        server.request_exit()
        try:
            await asyncio.wait_for(asyncio.shield(task), _SHUTDOWN_TIMEOUT)
        except TimeoutError:
            # Open keep-alive connections or slow handlers: stop waiting for them.
            server.force_exit = True
            with contextlib.suppress(Exception):
                await task
        except Exception:
            # A startup failure already surfaced above; do not mask the original error on the way out.
            pass
        finally:
            sock.close()
