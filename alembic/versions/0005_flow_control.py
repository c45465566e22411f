"""flow control: rate limits and concurrency keys (issue 10)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CLAIM_WHERE = "status = 'queued'"
CLAIM_WHERE = "status = 'queued' AND fair_tag IS NULL"
FLOW_WHERE = "status = 'queued' AND fair_tag IS NOT NULL"
KEY_WHERE = "concurrency_key IS NOT NULL AND status IN ('queued', 'running')"


def upgrade() -> None:
    op.add_column('tasks', sa.Column('concurrency_key', sa.Text(), nullable=True))
    op.add_column('tasks', sa.Column('concurrency_limit', sa.Integer(), nullable=True))
    op.add_column('tasks', sa.Column('rate_limits', postgresql.JSONB(astext_type=sa.Text()),
                                     nullable=True))
    op.add_column('tasks', sa.Column('fair_tag', sa.BigInteger(), nullable=True))
    op.add_column('queues', sa.Column('rate_limit', sa.Text(), nullable=True))
    op.add_column('queues', sa.Column('fair_clock', sa.BigInteger(), server_default='0',
                                      nullable=False))
    op.add_column('queues', sa.Column('flow', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.add_column('queues', sa.Column('keyed', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    # The plain claim's index leaves flow rows out (they have their own, in fair order).
    op.drop_index('tasks_claim_idx', table_name='tasks', postgresql_where=sa.text(OLD_CLAIM_WHERE))
    op.create_index('tasks_claim_idx', 'tasks', ['queue', sa.literal_column('priority DESC'),
                                                 'run_at', 'id'],
                    postgresql_where=sa.text(CLAIM_WHERE))
    op.create_index('tasks_flow_claim_idx', 'tasks', ['queue', 'fair_tag', 'id'],
                    postgresql_where=sa.text(FLOW_WHERE))
    op.create_index('tasks_concurrency_key_idx', 'tasks', ['queue', 'concurrency_key', 'status'],
                    postgresql_where=sa.text(KEY_WHERE))
    op.create_table('rate_limits',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('period_seconds', sa.Float(), nullable=False),
    sa.Column('burst', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('units > 0 AND period_seconds > 0 AND burst >= 0',
                       name='rate_limits_positive_check'),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('rate_limit_buckets',
    sa.Column('limit_name', sa.Text(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('tat', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['limit_name'], ['rate_limits.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('limit_name', 'key')
    )
    op.create_table('concurrency_keys',
    sa.Column('queue', sa.Text(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('last_tag', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('queue', 'key')
    )


def downgrade() -> None:
    op.drop_table('concurrency_keys')
    op.drop_table('rate_limit_buckets')
    op.drop_table('rate_limits')
    op.drop_index('tasks_concurrency_key_idx', table_name='tasks',
                  postgresql_where=sa.text(KEY_WHERE))
    op.drop_index('tasks_flow_claim_idx', table_name='tasks',
                  postgresql_where=sa.text(FLOW_WHERE))
    op.drop_index('tasks_claim_idx', table_name='tasks', postgresql_where=sa.text(CLAIM_WHERE))
    op.create_index('tasks_claim_idx', 'tasks', ['queue', sa.literal_column('priority DESC'),
                                                 'run_at', 'id'],
                    postgresql_where=sa.text(OLD_CLAIM_WHERE))
    op.drop_column('queues', 'keyed')
    op.drop_column('queues', 'flow')
    op.drop_column('queues', 'fair_clock')
    op.drop_column('queues', 'rate_limit')
    op.drop_column('tasks', 'fair_tag')
    op.drop_column('tasks', 'rate_limits')
    op.drop_column('tasks', 'concurrency_limit')
    op.drop_column('tasks', 'concurrency_key')
