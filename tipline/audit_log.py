"""A tamper-evident record of who did what: append-only, each row chained to the one before by a keyed hash.

Each row's seal is an HMAC-SHA256, under a key derived from the deployment's id key, of the row's own fields and
the previous row's seal. Someone who can write the database but does not hold the key cannot alter, remove or
reorder a row without ``verify`` naming it: an altered row no longer matches its seal, a removed one leaves a gap
in the numbering, rows swapped break the chain. Cutting rows off the end leaves a valid shorter chain, so
``head()`` gives the newest number and seal to keep elsewhere (a ticket, a log shipper) and ``verify`` checks the
chain still reaches it.

Rows name people and objects by id (``user:7``, ``key:3``, a case ref) and never hold content, names or emails.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from models.audit import AuditRow
from models.records import utcnow
from tipline.ids import IdMinter, id_minter
from tipline.settings import Settings

GENESIS = "0" * 64
# On PostgreSQL appends queue on one transaction-level advisory lock (this number), so the chain never forks and
# nobody retries. Elsewhere (SQLite, one process) two writers may take the same next number: the primary key
# refuses the second, which reads the new head and tries again.
APPEND_LOCK = 0x7469706C  # "tipl"
APPEND_ATTEMPTS = 50


@dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.what}"


def _canonical(row: AuditRow) -> str:
    return json.dumps([row.seq, row.at.isoformat(), row.org_id, row.actor, row.action, row.subject, row.detail,
                       row.prev_seal], separators=(",", ":"), ensure_ascii=True)


class AuditLog:
    """Appends rows and checks the chain; the sealing key never leaves ``_key``."""

    def __init__(self, engine: Engine, minter: IdMinter) -> None:
        self.engine = engine
        self._key = hashlib.sha256(b"tipline audit log\x00" + minter.user_key("audit", "log").encode()).digest()

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> AuditLog:
        return cls(engine, id_minter(settings))

    def __repr__(self) -> str:
        return "AuditLog(<key hidden>)"

    def _seal(self, row: AuditRow) -> str:
        return hmac.new(self._key, _canonical(row).encode(), hashlib.sha256).hexdigest()

    def append(self, action: str, *, actor: str, org_id: str | None = None, subject: str | None = None,
               at: datetime | None = None, **detail: str | int | bool | None) -> AuditRow:
        """Record one action. ``detail`` holds ids, counts and codes only."""
        for _ in range(APPEND_ATTEMPTS):
            with Session(self.engine) as session:
                if self.engine.dialect.name == "postgresql":
                    session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": APPEND_LOCK})
                last = session.exec(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).scalars().first()
                row = AuditRow(seq=(last.seq + 1) if last else 1, at=at or utcnow(), org_id=org_id, actor=actor,
                               action=action, subject=subject, detail=json.dumps(detail, sort_keys=True),
                               prev_seal=last.seal if last else GENESIS, seal="")
                row.seal = self._seal(row)
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    continue
                session.refresh(row)
                return row
        raise RuntimeError("the audit log is too busy to append to; try again")

    def head(self) -> tuple[int, str]:
        """The newest row's number and seal (0 and the genesis seal for an empty log)."""
        with Session(self.engine) as session:
            last = session.exec(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).scalars().first()
        return (last.seq, last.seal) if last else (0, GENESIS)

    def rows(self, batch: int = 1000) -> Iterator[AuditRow]:
        after = 0
        while True:
            with Session(self.engine) as session:
                page = list(session.exec(select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq)
                                         .limit(batch)).scalars())
            if not page:
                return
            yield from page
            after = page[-1].seq

    def verify(self, expected_head: tuple[int, str] | None = None) -> list[Problem]:
        """Every row that was altered, removed or moved, and whether the chain still reaches ``expected_head``."""
        problems: list[Problem] = []
        expected_seq, prev_seal = 1, GENESIS
        seals: dict[int, str] = {}
        for row in self.rows():
            if row.seq != expected_seq:
                missing = f"rows {expected_seq}-{row.seq - 1}" if row.seq - expected_seq > 1 else f"row {expected_seq}"
                problems.append(Problem(expected_seq, f"{missing} removed (the numbering jumps to {row.seq})"))
            if not hmac.compare_digest(row.seal, self._seal(row)):
                problems.append(Problem(row.seq, "altered: its contents do not match its seal"))
            elif row.prev_seal != prev_seal:
                problems.append(Problem(row.seq, "out of place: it does not follow the row before it"))
            seals[row.seq] = row.seal
            expected_seq, prev_seal = row.seq + 1, row.seal
        if expected_head is not None:
            seq, seal = expected_head
            if seq > 0 and seals.get(seq) != seal:
                what = "missing: the log was cut short" if seq not in seals else "does not match the head kept"
                problems.append(Problem(seq, what))
        return problems
