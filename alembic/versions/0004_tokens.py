"""tokens: access tokens with a role and scopes (issue 9, item 12)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 05:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('queues', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('names', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('secret_sha256', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('admin','worker','sender','viewer')", name='api_tokens_role_check'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('api_tokens_live_name_idx', 'api_tokens', ['name'], unique=True,
                    postgresql_where=sa.text('revoked_at IS NULL'))


def downgrade() -> None:
    op.drop_index('api_tokens_live_name_idx', table_name='api_tokens',
                  postgresql_where=sa.text('revoked_at IS NULL'))
    op.drop_table('api_tokens')
