"""retention: legal holds, evidence links per case ref, tombstones of purged cases

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 08:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('legal_hold',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('case_ref', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('placed_by', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('renewals', sa.Integer(), server_default='0', nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_by', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('legal_hold', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legal_hold_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_legal_hold_case_ref'), ['case_ref'], unique=False)
    op.create_table('evidence_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('case_ref', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_ref', 'sha256', name='uq_evidence_link')
    )
    with op.batch_alter_table('evidence_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_link_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evidence_link_case_ref'), ['case_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_evidence_link_sha256'), ['sha256'], unique=False)
    op.create_table('case_tombstone',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('case_ref', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('case_number', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('ncmec_report_ids', sa.Text(), nullable=False),
    sa.Column('evidence_sha256', sa.Text(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('audit_seq', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_ref', 'case_number', name='uq_case_tombstone')
    )
    with op.batch_alter_table('case_tombstone', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_tombstone_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_tombstone_case_ref'), ['case_ref'], unique=False)


def downgrade() -> None:
    op.drop_table('case_tombstone')
    op.drop_table('evidence_link')
    op.drop_table('legal_hold')
