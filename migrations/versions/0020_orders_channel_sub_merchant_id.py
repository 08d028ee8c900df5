"""The sub-merchant id an order went to its channel under (partner form), on orders.

Revision ID: 0020
Revises: 0022
Create Date: 2026-11-26 09:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: existing orders went out in the direct form (None).
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel_sub_merchant_id', sa.String(length=64),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('channel_sub_merchant_id')
