"""closed cases kept whole, so any of a user's closed cases is readable by its number

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0012'
# Branch h7 was cut before 0010 (audit log) landed on main: the lead chains this after it when merging.
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('closed_case',
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('case_number', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state_json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('workflow_id', 'case_number'),
    )
    op.create_index(op.f('ix_closed_case_org_id'), 'closed_case', ['org_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_closed_case_org_id'), table_name='closed_case')
    op.drop_table('closed_case')
