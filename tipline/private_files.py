"""The umask of every Tipline server: what it writes is its owner's alone.

Its own module, so the ``tipline`` command sets it without importing the database layer first."""

from __future__ import annotations

# Files (and folders) only their owner may read: the database holds case records, the evidence store media.
PRIVATE_UMASK = 0o077
