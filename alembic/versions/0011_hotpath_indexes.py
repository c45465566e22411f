"""tasks_parent_idx holds only tasks that have a parent (issue 14)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 12:00:00

Every task row version was indexed in ``tasks_parent_idx``, ``(NULL, id)`` for the tasks
without a parent (most of them); no status change of a task is a HOT update, so each send,
claim and report wrote an entry there for nothing. Every query on it names a parent
(``parent_id = x``, ``= ANY``, ``< x``: strict operators, which imply ``IS NOT NULL``), so
the partial index serves them all. Built under a new name before the old one is dropped, so
the table is only write-locked (not read-locked) during the build.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(where: str | None) -> None:
    op.create_index('tasks_parent_idx_new', 'tasks', ['parent_id', 'id'], unique=False,
                    postgresql_where=sa.text(where) if where else None)
    op.drop_index('tasks_parent_idx', table_name='tasks')
    op.execute('ALTER INDEX tasks_parent_idx_new RENAME TO tasks_parent_idx')


def upgrade() -> None:
    _rebuild('parent_id IS NOT NULL')


def downgrade() -> None:
    _rebuild(None)
