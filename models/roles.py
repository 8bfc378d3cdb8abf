"""Who may do what: the roles an API key or a reviewer's account carries (models.records stores them).

Apart from the tables, so the command line lists them without loading the database library."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PLATFORM = "platform"
    ADMIN = "admin"
    MODERATOR_MANAGER = "moderator_manager"
    CHILD_SAFETY_MODERATOR = "child_safety_moderator"
    MODERATOR = "moderator"
    AUDITOR = "auditor"
