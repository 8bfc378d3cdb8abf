"""case claims (holder, claimed and decided times) and the log of every claim, release and reassignment

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('case_claim',
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('case_number', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('workflow_id', 'case_number')
    )
    with op.batch_alter_table('case_claim', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_claim_org_id'), ['org_id'], unique=False)

    op.create_table('claim_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('case_number', sa.Integer(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('claim_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claim_event_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_claim_event_workflow_id'), ['workflow_id'], unique=False)


def downgrade() -> None:
    op.drop_table('claim_event')
    op.drop_table('case_claim')
