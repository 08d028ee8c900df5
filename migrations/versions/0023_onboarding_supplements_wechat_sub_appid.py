"""The merchant's own WeChat app (official account / mini-program / mobile app) as sub_appid.

Revision ID: 0023
Revises: 0020
Create Date: 2026-11-26 12:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0023'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a merchant without its own app pays under our appid (sp_openid).
    with op.batch_alter_table('onboarding_supplements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wechat_sub_appid', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('onboarding_supplements', schema=None) as batch_op:
        batch_op.drop_column('wechat_sub_appid')
