"""durable tasks: approvals and parents waiting on children (issue 11)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('event_triggers',
    sa.Column('event_key', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('task','workflow')", name='event_triggers_kind_check'),
    sa.PrimaryKeyConstraint('event_key', 'kind', 'target')
    )
    op.create_index('event_triggers_target_idx', 'event_triggers', ['kind', 'target'])


def downgrade() -> None:
    op.drop_index('event_triggers_target_idx', table_name='event_triggers')
    op.drop_table('event_triggers')
