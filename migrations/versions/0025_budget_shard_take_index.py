"""The index an order's budget pick reads (marketing_budget_shards: campaign_id, remaining,
shard), so a locking pick visits only the shards that cover its discount and never locks a
spent one (MariaDB keeps such locks: two orders racing near exhaustion deadlocked).

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-26 15:30:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0025'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('marketing_budget_shards', schema=None) as batch_op:
        batch_op.create_index('ix_marketing_budget_shards_take',
                              ['campaign_id', 'remaining', 'shard'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('marketing_budget_shards', schema=None) as batch_op:
        batch_op.drop_index('ix_marketing_budget_shards_take')
