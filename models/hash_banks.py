"""Hash-bank tables: banks of known hashes per org, their entries, the allowlist and hash-sharing checkpoints.

Change tracking, so a matcher can refresh without reloading everything (see ``detection/matcher.py``):

* Every write to a bank's entries first bumps ``HashBank.change_seq`` in the same transaction. That
  UPDATE row-locks the bank until commit, so writers of one bank are serialised, and because entry ids
  come from a sequence *after* that lock is taken, a bank's entry ids become visible in increasing order:
  "entries with id > the largest id I have seen" never skips a row that commits later.
* A tombstone sets ``deleted_at`` and ``deleted_seq`` (the bank's new ``change_seq``); rows are never
  deleted, so "tombstones with deleted_seq > what I have seen" is the complete list of removals.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models.bank_kinds import DEFAULT_PDQ_DISTANCE as DEFAULT_PDQ_DISTANCE  # defined apart for the command line
from models.bank_kinds import BankHashType as BankHashType
from models.bank_kinds import BankSource as BankSource
from models.records import UtcDateTime, utcnow

# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit id.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def _timestamp(*, nullable: bool = False) -> Column:
    return Column(UtcDateTime(), nullable=nullable)




class HashBank(SQLModel, table=True):
    __tablename__ = "hash_bank"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    name: str = Field(max_length=200)
    pdq_distance: int = Field(default=DEFAULT_PDQ_DISTANCE, sa_column_kwargs={"server_default": "31"})
    enabled: bool = Field(default=True, sa_column_kwargs={"server_default": "true"})
    source: str = Field(default=BankSource.FILE.value, max_length=20, sa_column_kwargs={"server_default": "file"})
    change_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class HashBankEntry(SQLModel, table=True):
    __tablename__ = "hash_bank_entry"
    __table_args__ = (
        Index("ix_hash_bank_entry_lookup", "bank_id", "hash_type", "value"),
        Index("ix_hash_bank_entry_external", "bank_id", "external_id"),
        # Partial: only tombstones are indexed, so a bulk import of live rows pays nothing for it.
        Index("ix_hash_bank_entry_deleted_seq", "bank_id", "deleted_seq",
              postgresql_where=text("deleted_seq IS NOT NULL"), sqlite_where=text("deleted_seq IS NOT NULL")),
    )

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True, autoincrement=True))
    bank_id: int = Field(sa_column=Column(Integer, ForeignKey("hash_bank.id", ondelete="CASCADE"), nullable=False))
    hash_type: str = Field(max_length=20)
    # Lower-case hex; a crop-resistant hash is a comma-separated list of them, hence Text.
    value: str = Field(sa_column=Column(Text, nullable=False))
    external_id: str | None = Field(default=None, max_length=256)
    classification: str | None = Field(default=None, max_length=256)
    added_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    deleted_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    deleted_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    hit_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_hit_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class HashBankAllowlist(SQLModel, table=True):
    """A known false positive: a match involving this hash (the media's or the bank entry's) is ignored.

    ``bank_id`` None means every bank of the org.
    """

    __tablename__ = "hash_bank_allowlist"
    __table_args__ = (Index("ix_hash_bank_allowlist_lookup", "org_id", "hash_type", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(max_length=40)
    bank_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("hash_bank.id", ondelete="CASCADE"), nullable=True)
    )
    hash_type: str = Field(max_length=20)
    value: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    added_by: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    added_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class HashSharingCheckpoint(SQLModel, table=True):
    """Where a hash-sharing fetch into a bank stands: the window [window_from, window_to) and, while a window
    is being paged through, the ``next`` URL of the first page not yet written.

    It is written in the same transaction as the page's entries, so a resumed fetch neither skips nor repeats.
    """

    __tablename__ = "hash_sharing_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, max_length=40)
    bank_id: int = Field(
        sa_column=Column(Integer, ForeignKey("hash_bank.id", ondelete="CASCADE"), nullable=False, unique=True)
    )
    window_from: datetime = Field(sa_column=_timestamp())
    window_to: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    next_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    pages_fetched: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
