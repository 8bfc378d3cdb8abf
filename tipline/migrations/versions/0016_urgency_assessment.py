"""urgency assessment: each change of a case's urgency, for the timeline

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('urgency_assessment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('case_number', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('assessed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('level', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('reasons_json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('urgency_assessment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_urgency_assessment_workflow_id'), ['workflow_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('urgency_assessment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_urgency_assessment_workflow_id'))
    op.drop_table('urgency_assessment')
