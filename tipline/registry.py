"""The record of which org every case and screening id belongs to, written when Tipline issues the id.

Ownership checks read the org from here (``api.ownership``); intake asks here which workflow a user's content
goes to, so a user whose case was opened under a legacy (unkeyed) id keeps getting their content there.
"""

from __future__ import annotations

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from models.records import IssuedRef, RefKind
from tipline.ids import IdMinter, id_minter, legacy_case_id
from tipline.settings import Settings


class RefRegistry:
    def __init__(self, engine: Engine, minter: IdMinter) -> None:
        self.engine = engine
        self.minter = minter

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> RefRegistry:
        return cls(engine, id_minter(settings))

    def case_ref_for(self, org_id: str, user_id: str) -> str:
        """The workflow id of the user's case, recorded as the org's before anything is started under it."""
        subject = self.minter.user_key(org_id, user_id)
        with Session(self.engine) as session:
            known = self._case_of(session, org_id, subject)
            if known is not None:
                return known
            # A case opened before keyed ids: the migration recorded its id and org, but not whose it is.
            legacy = legacy_case_id(org_id, user_id)
            claimed = session.exec(
                update(IssuedRef)
                .where(col(IssuedRef.ref) == legacy, col(IssuedRef.org_id) == org_id,
                       col(IssuedRef.kind) == RefKind.CASE, col(IssuedRef.subject_key).is_(None))
                .values(subject_key=subject)
            )
            if claimed.rowcount == 1:
                session.commit()
                return legacy
            ref = self.minter.case_id(org_id, user_id)
            session.add(IssuedRef(ref=ref, kind=RefKind.CASE, org_id=org_id, subject_key=subject))
            try:
                session.commit()
            except IntegrityError:  # another process recorded the user's case first: use theirs
                session.rollback()
                known = self._case_of(session, org_id, subject)
                assert known is not None
                return known
        return ref

    def screening_ref_for(self, org_id: str, content_id: str) -> str:
        ref = self.minter.screening_id(org_id, content_id)
        with Session(self.engine) as session:
            if session.get(IssuedRef, ref) is None:
                session.add(IssuedRef(ref=ref, kind=RefKind.SCREENING, org_id=org_id))
                try:
                    session.commit()
                except IntegrityError:  # a concurrent retry of the same item recorded it
                    session.rollback()
        return ref

    def org_of(self, kind: RefKind, ref: str) -> str | None:
        """The org the id was issued to, or None for an id Tipline never issued as ``kind``."""
        with Session(self.engine) as session:
            row = session.get(IssuedRef, ref)
        return row.org_id if row is not None and row.kind == kind else None

    @staticmethod
    def _case_of(session: Session, org_id: str, subject: str) -> str | None:
        return session.exec(select(IssuedRef.ref).where(
            IssuedRef.kind == RefKind.CASE, IssuedRef.org_id == org_id, IssuedRef.subject_key == subject,
        )).first()
