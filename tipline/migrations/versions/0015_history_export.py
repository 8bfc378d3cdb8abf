"""history export: every run's history of a closed case, kept in the evidence store; tombstones keep its digest

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 10:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('history_export',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('case_ref', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('case_number', sa.Integer(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('exported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_ref', 'case_number', name='uq_history_export_case')
    )
    with op.batch_alter_table('history_export', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_history_export_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_history_export_case_ref'), ['case_ref'], unique=False)
    with op.batch_alter_table('case_tombstone', schema=None) as batch_op:
        batch_op.add_column(sa.Column('history_sha256', sa.Text(), server_default='[]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('case_tombstone', schema=None) as batch_op:
        batch_op.drop_column('history_sha256')
    with op.batch_alter_table('history_export', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_history_export_case_ref'))
        batch_op.drop_index(batch_op.f('ix_history_export_org_id'))
    op.drop_table('history_export')
