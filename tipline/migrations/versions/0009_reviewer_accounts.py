"""reviewer accounts, their server-side sessions, failed logins; media views record the person

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reviewer_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('oidc_subject', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username'),
    sa.UniqueConstraint('oidc_subject')
    )
    with op.batch_alter_table('reviewer_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reviewer_account_org_id'), ['org_id'], unique=False)

    op.create_table('login_session',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['reviewer_account.id'], ),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('login_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_session_account_id'), ['account_id'], unique=False)

    op.create_table('login_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('client_address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failure_username'), ['username'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failure_client_address'), ['client_address'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failure_failed_at'), ['failed_at'], unique=False)

    with op.batch_alter_table('media_view', schema=None) as batch_op:
        batch_op.alter_column('api_key_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_media_view_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('media_view', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_view_user_id'))
        batch_op.drop_column('user_id')
        batch_op.alter_column('api_key_id', existing_type=sa.Integer(), nullable=False)
    op.drop_table('login_failure')
    op.drop_table('login_session')
    op.drop_table('reviewer_account')
