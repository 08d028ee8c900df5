"""operator passwords for the console

Revision ID: 0018
Revises: 0016
Create Date: 2026-11-26 05:15:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fulema.core.db


revision: str = '0018'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot add columns with constraints in place on every version
    with op.batch_alter_table('operators') as batch:
        batch.add_column(sa.Column('password_hash', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('password_changed_at', fulema.core.db.UTCDateTime(),
                                   nullable=True))
        batch.add_column(sa.Column('failed_logins', sa.Integer(), server_default='0',
                                   nullable=False))
        batch.add_column(sa.Column('locked_until', fulema.core.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('operators') as batch:
        batch.drop_column('locked_until')
        batch.drop_column('failed_logins')
        batch.drop_column('password_changed_at')
        batch.drop_column('password_hash')
