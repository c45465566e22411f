"""stuck tasks: progress time and stuck settings of tasks and queues

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: PostgreSQL adds them without rewriting the table.
    op.add_column('tasks', sa.Column('last_progress_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('stuck_after_seconds', sa.Float(), nullable=True))
    op.add_column('tasks', sa.Column('stuck_action', sa.Text(), nullable=True))
    op.add_column('queues', sa.Column('stuck_after_seconds', sa.Float(), nullable=True))
    op.add_column('queues', sa.Column('stuck_action', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('queues', 'stuck_action')
    op.drop_column('queues', 'stuck_after_seconds')
    op.drop_column('tasks', 'stuck_action')
    op.drop_column('tasks', 'stuck_after_seconds')
    op.drop_column('tasks', 'last_progress_at')
