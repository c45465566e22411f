"""flow control: debounce and uniqueness windows (issue 10)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


DEBOUNCE_WHERE = "debounce_key IS NOT NULL AND status = 'queued' AND started_at IS NULL"
ACTIVE_WHERE = ("unique_key IS NOT NULL AND unique_until IS NULL"
                " AND status NOT IN ('succeeded','failed','cancelled')")


def upgrade() -> None:
    op.add_column('tasks', sa.Column('debounce_key', sa.Text(), nullable=True))
    op.add_column('tasks', sa.Column('debounce_deadline', sa.DateTime(timezone=True),
                                     nullable=True))
    op.add_column('tasks', sa.Column('unique_key', sa.Text(), nullable=True))
    op.add_column('tasks', sa.Column('unique_until', sa.DateTime(timezone=True), nullable=True))
    op.create_index('tasks_debounce_idx', 'tasks', ['name', 'debounce_key'], unique=True,
                    postgresql_where=sa.text(DEBOUNCE_WHERE))
    op.create_index('tasks_unique_active_idx', 'tasks', ['name', 'unique_key'], unique=True,
                    postgresql_where=sa.text(ACTIVE_WHERE))
    op.create_table('task_unique_keys',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('task_id', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', 'key')
    )


def downgrade() -> None:
    op.drop_table('task_unique_keys')
    op.drop_index('tasks_unique_active_idx', table_name='tasks',
                  postgresql_where=sa.text(ACTIVE_WHERE))
    op.drop_index('tasks_debounce_idx', table_name='tasks',
                  postgresql_where=sa.text(DEBOUNCE_WHERE))
    op.drop_column('tasks', 'unique_until')
    op.drop_column('tasks', 'unique_key')
    op.drop_column('tasks', 'debounce_deadline')
    op.drop_column('tasks', 'debounce_key')
