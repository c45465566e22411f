"""durable tasks: steps, waits, events, signals, triggers (issue 11)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


STATUSES = "'queued','running','succeeded','failed','cancelled'"
WITH_WAITING = "'queued','running','waiting','succeeded','failed','cancelled'"


def _status_check(statuses: str) -> None:
    op.drop_constraint('tasks_status_check', 'tasks', type_='check')
    op.create_check_constraint('tasks_status_check', 'tasks', f"status IN ({statuses})")


def upgrade() -> None:
    _status_check(WITH_WAITING)
    op.create_table('task_steps',
    sa.Column('task_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('fn', sa.Text(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id', 'name')
    )
    op.create_table('task_waits',
    sa.Column('task_id', sa.BigInteger(), nullable=False),
    sa.Column('step', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('key', sa.Text(), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id')
    )
    op.create_index('task_waits_key_idx', 'task_waits', ['kind', 'key'], unique=False)
    op.create_index('task_waits_deadline_idx', 'task_waits', ['deadline'], unique=False,
                    postgresql_where=sa.text('deadline IS NOT NULL'))
    op.create_table('events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('events_key_idx', 'events', ['key', 'id'], unique=False)
    op.create_index('events_idempotency_idx', 'events', ['idempotency_key'], unique=True,
                    postgresql_where=sa.text('idempotency_key IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('events_idempotency_idx', table_name='events',
                  postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.drop_index('events_key_idx', table_name='events')
    op.drop_table('events')
    op.drop_index('task_waits_deadline_idx', table_name='task_waits',
                  postgresql_where=sa.text('deadline IS NOT NULL'))
    op.drop_index('task_waits_key_idx', table_name='task_waits')
    op.drop_table('task_waits')
    op.drop_table('task_steps')
    op.execute("UPDATE tasks SET status = 'queued' WHERE status = 'waiting'")
    _status_check(STATUSES)
