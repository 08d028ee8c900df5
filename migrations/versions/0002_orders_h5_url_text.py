"""orders.h5_url: TEXT

An Alipay H5 order's h5_url is a signed alipay.trade.wap.pay URL: the url-encoded biz_content
(a 128-character Chinese subject alone is over 1,100 characters encoded) plus a 344-character
RSA2 signature. VARCHAR(1024) refused it on PostgreSQL and MariaDB (SQLite does not check).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('h5_url', existing_type=sa.String(length=1024), type_=sa.Text(),
                              existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('h5_url', existing_type=sa.Text(), type_=sa.String(length=1024),
                              existing_nullable=True)
