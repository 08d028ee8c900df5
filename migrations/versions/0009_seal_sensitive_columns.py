"""Seal sensitive columns at rest: app secrets, settlement accounts, contact phones, payer ids

Widens the four columns to hold sealed values (``v1:<kid>:<nonce>:<ct||tag>``, see
core/vault.py), adds the blind-index columns that searches compare (HMAC-SM3 of the phone and
of the payer id) with their indexes, and then seals every existing plaintext value in place
and fills its index, in batches, inside the migration's transaction: after `fulema migrate`
no plaintext is left. The keyring used is the deployment's (FULEMA_CRYPTO_*), created on first
use. Downgrade opens the values again before narrowing the columns.

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-26 01:31:51.903007
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fulema.core import vault, vault_jobs

revision: str = '0009'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here (not read from the models) so this migration means the same thing for ever:
# (table, primary key, column, purpose, index column, old length, plaintext characters)
COLUMNS = (
    ("merchant_apps", "app_id", "secret", "app_secret", None, 128, 128),
    ("merchants", "id", "settlement_account", "bank_account", None, 32, 32),
    ("merchants", "id", "contact_phone", "phone", "contact_phone_hash", 11, 11),
    ("orders", "id", "payer_id", "payer_id", "payer_id_hash", 128, 128),
)
NULLABLE = {"payer_id": True}


def upgrade() -> None:
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_phone_hash', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_merchants_contact_phone_hash', ['contact_phone_hash'],
                              unique=False)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payer_id_hash', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_orders_payer_id_hash', ['payer_id_hash'], unique=False)
    for table, _pk, column, _purpose, _index, old, chars in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.String(length=old),
                                  type_=sa.String(length=vault.sealed_length(chars)),
                                  existing_nullable=NULLABLE.get(column, False))
    bind = op.get_bind()
    for table, pk, column, purpose, index, _old, _chars in COLUMNS:
        vault_jobs.reencrypt(bind, vault_jobs.SealedColumn(table, pk, column, purpose, index))


def downgrade() -> None:
    bind = op.get_bind()
    for table, pk, column, purpose, _index, _old, _chars in COLUMNS:
        t = sa.table(table, sa.column(pk), sa.column(column))
        rows = bind.execute(sa.select(t.c[pk], t.c[column]).where(t.c[column].is_not(None)))
        for row_pk, value in rows.all():
            bind.execute(sa.update(t).where(t.c[pk] == row_pk)
                         .values({column: vault.open_value(purpose, value)}))
    for table, _pk, column, _purpose, _index, old, chars in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.String(length=vault.sealed_length(chars)),
                                  type_=sa.String(length=old),
                                  existing_nullable=NULLABLE.get(column, False))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_payer_id_hash')
        batch_op.drop_column('payer_id_hash')
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_index('ix_merchants_contact_phone_hash')
        batch_op.drop_column('contact_phone_hash')
