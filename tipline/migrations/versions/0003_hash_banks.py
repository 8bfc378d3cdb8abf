"""hash banks: banks, entries with tombstones, allowlist, hash-sharing checkpoints

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:19:23.627342
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('hash_bank',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('pdq_distance', sa.Integer(), server_default='31', nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), server_default='file', nullable=False),
    sa.Column('change_seq', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id', 'name')
    )
    with op.batch_alter_table('hash_bank', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hash_bank_org_id'), ['org_id'], unique=False)

    op.create_table('hash_bank_allowlist',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('bank_id', sa.Integer(), nullable=True),
    sa.Column('hash_type', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('added_by', sqlmodel.sql.sqltypes.AutoString(length=200), server_default='', nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bank_id'], ['hash_bank.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hash_bank_allowlist', schema=None) as batch_op:
        batch_op.create_index('ix_hash_bank_allowlist_lookup', ['org_id', 'hash_type', 'value'], unique=False)

    op.create_table('hash_bank_entry',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bank_id', sa.Integer(), nullable=False),
    sa.Column('hash_type', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('classification', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_seq', sa.BigInteger(), nullable=True),
    sa.Column('hit_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_hit_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bank_id'], ['hash_bank.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hash_bank_entry', schema=None) as batch_op:
        batch_op.create_index('ix_hash_bank_entry_deleted_seq', ['bank_id', 'deleted_seq'], unique=False,
                              postgresql_where=sa.text('deleted_seq IS NOT NULL'),
                              sqlite_where=sa.text('deleted_seq IS NOT NULL'))
        batch_op.create_index('ix_hash_bank_entry_external', ['bank_id', 'external_id'], unique=False)
        batch_op.create_index('ix_hash_bank_entry_lookup', ['bank_id', 'hash_type', 'value'], unique=False)

    op.create_table('hash_sharing_checkpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('bank_id', sa.Integer(), nullable=False),
    sa.Column('window_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_url', sa.Text(), nullable=True),
    sa.Column('pages_fetched', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bank_id'], ['hash_bank.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('bank_id')
    )
    with op.batch_alter_table('hash_sharing_checkpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hash_sharing_checkpoint_org_id'), ['org_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('hash_sharing_checkpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hash_sharing_checkpoint_org_id'))

    op.drop_table('hash_sharing_checkpoint')
    with op.batch_alter_table('hash_bank_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_hash_bank_entry_lookup')
        batch_op.drop_index('ix_hash_bank_entry_external')
        batch_op.drop_index('ix_hash_bank_entry_deleted_seq')

    op.drop_table('hash_bank_entry')
    with op.batch_alter_table('hash_bank_allowlist', schema=None) as batch_op:
        batch_op.drop_index('ix_hash_bank_allowlist_lookup')

    op.drop_table('hash_bank_allowlist')
    with op.batch_alter_table('hash_bank', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hash_bank_org_id'))

    op.drop_table('hash_bank')
