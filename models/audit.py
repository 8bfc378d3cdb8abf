"""The audit log's table; ``tipline.audit_log`` appends to it and checks its chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, Text
from sqlmodel import Field, SQLModel

from models.records import UtcDateTime


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_log"

    # 1, 2, 3, ... assigned by ``append``, never by the database: a gap is a removed row.
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    org_id: str | None = Field(default=None, max_length=40, index=True)
    actor: str = Field(max_length=80)
    action: str = Field(max_length=60, index=True)
    subject: str | None = Field(default=None, max_length=200, index=True)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    prev_seal: str = Field(max_length=64)
    seal: str = Field(max_length=64)
