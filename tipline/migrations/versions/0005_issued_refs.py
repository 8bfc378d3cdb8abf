"""issued refs: the org of every case and screening id, recorded when Tipline issues it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('issued_ref',
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('subject_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ref'),
    sa.UniqueConstraint('kind', 'org_id', 'subject_key', name='uq_issued_ref_subject')
    )
    with op.batch_alter_table('issued_ref', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_issued_ref_org_id'), ['org_id'], unique=False)

    # Ids issued before this table existed keep their owner. Their user is unknown (the id was an unkeyed hash),
    # so subject_key stays empty until intake recomputes the legacy id for a user and claims the row.
    op.execute("""
        INSERT INTO issued_ref (ref, kind, org_id, subject_key, created_at)
        SELECT workflow_id, 'case', MIN(org_id), NULL, MIN(at) FROM (
            SELECT workflow_id, org_id, opened_at AS at FROM case_summary
            UNION ALL SELECT workflow_id, org_id, opened_at FROM filed_report
        ) AS known GROUP BY workflow_id
    """)
    op.execute("""
        INSERT INTO issued_ref (ref, kind, org_id, subject_key, created_at)
        SELECT screening_id, 'screening', org_id, NULL, created_at FROM triage_item
    """)


def downgrade() -> None:
    with op.batch_alter_table('issued_ref', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_issued_ref_org_id'))

    op.drop_table('issued_ref')
