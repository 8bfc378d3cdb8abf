"""API keys remembered for a few seconds in the API process, so a platform's stream of requests is not a
stream of key ``SELECT`` s. Revocation (``tipline apikey revoke``, from any process) is honoured once an entry
expires: within ``TIPLINE_API_KEY_CACHE_SECONDS``.

Only keys that are valid are remembered: an unknown key is looked up every time, so guessing cannot fill the
cache, and a key created a moment ago is never refused from a stale answer. Entries are keyed by the key's
SHA-256, never the key itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy import Engine
from sqlmodel import Session, select

from models.records import ApiKey, Role

# Distinct valid keys kept; the oldest goes first. An org has a handful of keys, so this is generous.
MAX_KEYS = 10_000


class ApiKeyCache:
    def __init__(self, engine: Engine, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        # key hash -> (api key id, org id, role, when the entry expires)
        self._entries: OrderedDict[str, tuple[int, str, Role, float]] = OrderedDict()

    async def lookup(self, key_hash: str) -> tuple[int, str, Role] | None:
        """The live key's (id, org, role), or None when there is no such key or it is revoked."""
        now = self.clock()
        cached = self._entries.get(key_hash)
        if cached is not None and cached[3] > now:
            return cached[:3]
        # The database read leaves the event loop free; concurrent misses for one key each read, harmlessly.
        found = await asyncio.to_thread(self._read, key_hash)
        if found is None:
            self._entries.pop(key_hash, None)
            return None
        if self.ttl_seconds > 0:
            self._entries[key_hash] = (*found, now + self.ttl_seconds)
            self._entries.move_to_end(key_hash)
            while len(self._entries) > MAX_KEYS:
                self._entries.popitem(last=False)
        return found

    def _read(self, key_hash: str) -> tuple[int, str, Role] | None:
        with Session(self.engine) as session:
            row = session.exec(select(ApiKey).where(ApiKey.key_hash == key_hash,
                                                    ApiKey.revoked_at.is_(None))).first()  # type: ignore[union-attr]
        if row is None or row.id is None:
            return None
        return row.id, row.org_id, Role(row.role)
