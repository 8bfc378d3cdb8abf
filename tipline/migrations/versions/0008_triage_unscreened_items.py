"""triage keeps items whose screening gave up: evidence optional, the reason recorded

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-01 21:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('triage_item', schema=None) as batch_op:
        batch_op.alter_column('evidence_sha256', existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column('screening_error', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('triage_item', schema=None) as batch_op:
        batch_op.drop_column('screening_error')
        batch_op.alter_column('evidence_sha256', existing_type=sa.String(length=64), nullable=False)
