"""triage queue

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:46:44.620000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('triage_item',
    sa.Column('screening_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('creator_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('content_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('evidence_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('classifier_priority', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('case_ref', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.PrimaryKeyConstraint('screening_id')
    )
    with op.batch_alter_table('triage_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_triage_item_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_triage_item_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('triage_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_triage_item_status'))
        batch_op.drop_index(batch_op.f('ix_triage_item_org_id'))

    op.drop_table('triage_item')
