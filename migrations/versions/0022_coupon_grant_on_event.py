"""Coupon templates that grant on events (grant_event, grant_min_amount, grant_merchant_ids),
and the paid order a granted coupon came from (one per template and order); sharded campaign
budgets (marketing_campaigns.budget_shards, marketing_budget_shards).

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-26 09:25:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fulema.core.db

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('marketing_budget_shards',
    sa.Column('campaign_id', sa.String(length=40), nullable=False),
    sa.Column('shard', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('remaining', fulema.core.db.MoneyType(), nullable=False),
    sa.PrimaryKeyConstraint('campaign_id', 'shard')
    )
    with op.batch_alter_table('marketing_campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget_shards', sa.Integer(), server_default='1',
                                      nullable=False))
    with op.batch_alter_table('marketing_coupon_templates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('grant_event', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('grant_min_amount', fulema.core.db.MoneyType(),
                                      nullable=True))
        batch_op.add_column(sa.Column('grant_merchant_ids', sa.JSON(), nullable=True))
        batch_op.create_index('ix_marketing_coupon_templates_grant', ['grant_event', 'status'],
                              unique=False)
    with op.batch_alter_table('marketing_coupons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_order_id', sa.String(length=40), nullable=True))
        batch_op.create_unique_constraint('uq_marketing_coupons_template_source',
                                          ['template_id', 'source_order_id'])


def downgrade() -> None:
    with op.batch_alter_table('marketing_coupons', schema=None) as batch_op:
        batch_op.drop_constraint('uq_marketing_coupons_template_source', type_='unique')
        batch_op.drop_column('source_order_id')
    with op.batch_alter_table('marketing_coupon_templates', schema=None) as batch_op:
        batch_op.drop_index('ix_marketing_coupon_templates_grant')
        batch_op.drop_column('grant_merchant_ids')
        batch_op.drop_column('grant_min_amount')
        batch_op.drop_column('grant_event')
    with op.batch_alter_table('marketing_campaigns', schema=None) as batch_op:
        batch_op.drop_column('budget_shards')
    op.drop_table('marketing_budget_shards')
