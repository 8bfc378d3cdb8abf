"""report attempts: one filed_report row per filing attempt of a case, enforced

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:25:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('filed_report', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), nullable=False, server_default='1'))
    # Earlier rows are numbered in the order they were opened, so existing cases satisfy the constraint.
    op.execute("""
        UPDATE filed_report SET attempt = (
            SELECT COUNT(*) FROM filed_report AS earlier
            WHERE earlier.workflow_id = filed_report.workflow_id AND earlier.case_number = filed_report.case_number
              AND earlier.id <= filed_report.id
        )
    """)
    with op.batch_alter_table('filed_report', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_filed_report_attempt', ['workflow_id', 'case_number', 'attempt'])


def downgrade() -> None:
    with op.batch_alter_table('filed_report', schema=None) as batch_op:
        batch_op.drop_constraint('uq_filed_report_attempt', type_='unique')
        batch_op.drop_column('attempt')
