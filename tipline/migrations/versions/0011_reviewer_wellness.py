"""per-reviewer wellness settings: blur, greyscale, reveal on hover, re-blur on leaving, video muted and paused

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reviewer_wellness',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('blur_px', sa.Integer(), nullable=False),
    sa.Column('greyscale', sa.Boolean(), nullable=False),
    sa.Column('reveal_on_hover', sa.Boolean(), nullable=False),
    sa.Column('reblur_on_leave', sa.Boolean(), nullable=False),
    sa.Column('video_muted', sa.Boolean(), nullable=False),
    sa.Column('video_paused', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['reviewer_account.id'], ),
    sa.PrimaryKeyConstraint('account_id')
    )


def downgrade() -> None:
    op.drop_table('reviewer_wellness')
