"""urgency: queue order, review deadlines, escalation records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:16:51.354545
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('case_summary', schema=None) as batch_op:
        batch_op.add_column(sa.Column('urgency_level', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False,
                                      server_default='normal'))
        batch_op.add_column(sa.Column('urgency_score', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('review_deadline', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('filed_report', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('urgency_suggestion', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('urgency_outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('filed_report', schema=None) as batch_op:
        batch_op.drop_column('urgency_outcome')
        batch_op.drop_column('urgency_suggestion')
        batch_op.drop_column('escalation_reason')

    with op.batch_alter_table('case_summary', schema=None) as batch_op:
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('review_deadline')
        batch_op.drop_column('urgency_score')
        batch_op.drop_column('urgency_level')

