"""The umask of every Tipline server: what it writes is its owner's alone.

Its own module, so the ``tipline`` command sets it without importing the database layer first."""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path

# Files (and folders) only their owner may read: the database holds case records, the evidence store media.
PRIVATE_UMASK = 0o077


def create_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, unless the file exists already.

    The API and the worker may start at once: the text is written whole to a private temporary file and linked
    into place; link() fails if the name exists, so exactly one process's file wins and nobody reads a half-written
    one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # mkstemp creates it 0600
    try:
        with os.fdopen(handle, "w") as sink:
            sink.write(text)
            sink.flush()
            os.fsync(sink.fileno())
        with suppress(FileExistsError):
            os.link(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
