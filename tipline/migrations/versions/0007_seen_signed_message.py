"""seen signed messages: replay protection shared by every process

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('seen_signed_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id', 'message_id', name='uq_seen_signed_message'),
    )
    with op.batch_alter_table('seen_signed_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seen_signed_message_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('seen_signed_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seen_signed_message_expires_at'))
    op.drop_table('seen_signed_message')
