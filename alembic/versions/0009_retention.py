"""retention settings and bulk operations (issue 13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


RETENTION = ('retention_succeeded_seconds', 'retention_failed_seconds',
             'retention_cancelled_seconds')


def upgrade() -> None:
    # Nullable columns without defaults: PostgreSQL adds them without rewriting the table.
    for column in RETENTION:
        op.add_column('queues', sa.Column(column, sa.Float(), nullable=True))
    op.add_column('kv', sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('kv_expires_idx', 'kv', ['expires_at'], unique=False,
                    postgresql_where=sa.text('expires_at IS NOT NULL'))
    op.create_index('tasks_finished_idx', 'tasks', ['queue', 'status', 'finished_at'],
                    unique=False,
                    postgresql_where=sa.text("status IN ('succeeded', 'failed', 'cancelled')"))
    op.create_index('workflow_runs_finished_idx', 'workflow_runs', ['finished_at'], unique=False,
                    postgresql_where=sa.text("status <> 'running'"))


def downgrade() -> None:
    op.drop_index('workflow_runs_finished_idx', table_name='workflow_runs',
                  postgresql_where=sa.text("status <> 'running'"))
    op.drop_index('tasks_finished_idx', table_name='tasks',
                  postgresql_where=sa.text("status IN ('succeeded', 'failed', 'cancelled')"))
    op.drop_index('kv_expires_idx', table_name='kv',
                  postgresql_where=sa.text('expires_at IS NOT NULL'))
    op.drop_column('kv', 'expires_at')
    for column in reversed(RETENTION):
        op.drop_column('queues', column)
