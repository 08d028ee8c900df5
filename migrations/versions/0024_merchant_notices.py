"""Indexes for a merchant's own in-portal notices: its list by cursor and its unread count.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-26 15:40:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0024'
down_revision: str | None = '0023'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The portal counts a merchant's unread notices on every page: without these both the count
    # and the list would read every merchant's notices.
    with op.batch_alter_table('message_notices', schema=None) as batch_op:
        batch_op.create_index('ix_message_notices_merchant', ['merchant_id', 'id'], unique=False)
        batch_op.create_index('ix_message_notices_merchant_unread',
                              ['merchant_id', 'read_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_message_notices_merchant_unread')
        batch_op.drop_index('ix_message_notices_merchant')
