"""SIGTERM stops the long-running commands the way Ctrl-C does.

Without a handler, SIGTERM (``docker stop``, systemd, ``kill``) ends the process on the spot: the worker
would not drain its running activities, and ``tipline up`` would leave the Temporal dev server, which runs
in its own session, listening after the rest has gone.
"""

from __future__ import annotations

import asyncio
import signal


def cancel_on_sigterm() -> None:
    """Cancel the running task on SIGTERM, as ``asyncio.run`` does on SIGINT, so every ``finally`` runs."""
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("cancel_on_sigterm() must be called from inside a task")
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
