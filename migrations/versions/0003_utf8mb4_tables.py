"""MySQL-protocol tables in utf8mb4 (utf8mb4_bin)

Tables were created with the database's default character set: on a database whose default is
latin1 a Chinese merchant name or order subject could not be stored. New tables now say
utf8mb4 in their CREATE TABLE (fulema.core.db's before_create listener); this converts the
tables of an existing deployment. MySQL-protocol databases only: SQLite and PostgreSQL store
UTF-8 already, and there this revision does nothing.

A table already utf8mb4_bin, with every column so (TiDB's default), is left alone; every other
table is rebuilt by ALTER TABLE ... CONVERT TO, which copies it: on a large deployment run this
in a maintenance window. Downgrade does nothing: converting back could lose characters.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 22:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHARSET = 'utf8mb4'
COLLATION = 'utf8mb4_bin'

# The tables as of this revision (frozen: a later table is created utf8mb4 by its own migration).
TABLES = (
    'alembic_version', 'api_nonces', 'merchants', 'notifications', 'orders', 'outbox_events',
    'merchant_apps', 'merchant_events', 'merchant_fee_rates', 'merchant_stores',
    'notification_attempts', 'order_events', 'refunds', 'merchant_terminals', 'qr_plates',
)

# The foreign keys as of this revision (0001): (table, column, referred table, referred column).
FOREIGN_KEYS = (
    ('merchant_apps', 'merchant_id', 'merchants', 'id'),
    ('merchant_events', 'merchant_id', 'merchants', 'id'),
    ('merchant_fee_rates', 'merchant_id', 'merchants', 'id'),
    ('merchant_stores', 'merchant_id', 'merchants', 'id'),
    ('notification_attempts', 'notification_id', 'notifications', 'id'),
    ('order_events', 'order_id', 'orders', 'id'),
    ('refunds', 'order_id', 'orders', 'id'),
    ('merchant_terminals', 'merchant_id', 'merchants', 'id'),
    ('merchant_terminals', 'store_id', 'merchant_stores', 'id'),
    ('qr_plates', 'merchant_id', 'merchants', 'id'),
    ('qr_plates', 'store_id', 'merchant_stores', 'id'),
)


def _tables_to_convert(bind: sa.engine.Connection) -> list[str]:
    """Our tables whose own collation, or any column's, is not utf8mb4_bin."""
    rows = bind.execute(sa.text(
        "SELECT t.table_name FROM information_schema.tables t "
        "WHERE t.table_schema = DATABASE() AND (t.table_collation <> :coll OR EXISTS ("
        " SELECT 1 FROM information_schema.columns c WHERE c.table_schema = t.table_schema"
        " AND c.table_name = t.table_name AND c.collation_name IS NOT NULL"
        " AND c.collation_name <> :coll))"), {'coll': COLLATION}).scalars().all()
    return [name for name in TABLES if name in set(rows)]


def _keep_text_types(bind: sa.engine.Connection, table: str) -> list[str]:
    """MODIFY clauses that keep each TEXT column TEXT.

    CONVERT TO widens a TEXT column to MEDIUMTEXT (and TINYTEXT to TEXT) so that it still holds
    as many characters at four bytes each; the models say TEXT, so `alembic check` would then
    disagree. These columns (a PEM key, a notification body, an H5 URL, an error message) hold
    a few kilobytes of what latin1 could store, far below TEXT's 65,535 bytes; in strict mode a
    longer value would fail the ALTER rather than be cut. None of them has a default.
    """
    rows = bind.execute(sa.text(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = :t "
        "AND data_type IN ('tinytext', 'text', 'mediumtext') ORDER BY ordinal_position"),
        {'t': table}).all()
    return [f'MODIFY `{column}` {data_type.upper()} CHARACTER SET {CHARSET} COLLATE {COLLATION} '
            + ('NULL' if nullable == 'YES' else 'NOT NULL') for column, data_type, nullable in rows]


def upgrade() -> None:
    if op.get_context().dialect.name not in {'mysql', 'mariadb'}:
        return
    if context.is_offline_mode():
        raise RuntimeError('0003 reads information_schema to find what to convert: run it online '
                           '(fulema migrate), not with --sql')
    bind = op.get_bind()
    tables = _tables_to_convert(bind)
    # MariaDB refuses to change the character set of a column in a foreign key, even with
    # foreign_key_checks off (error 1832), so the keys touching a converted table are dropped
    # and made again, under their own names, once both sides are utf8mb4. MySQL DDL does not
    # roll back: a run cut short is finished by running it again, which also makes any of the
    # revision's keys found missing. Checks are off only so re-adding a key does not re-read
    # rows that did not change.
    names: dict[tuple[str, str], str] = {}
    op.execute('SET FOREIGN_KEY_CHECKS = 0')
    try:
        for table, column, referred, _ in FOREIGN_KEYS:
            if table in tables or referred in tables:
                for fk in sa.inspect(bind).get_foreign_keys(table):
                    if fk['constrained_columns'] == [column]:
                        names[(table, column)] = fk['name']
                        op.drop_constraint(fk['name'], table, type_='foreignkey')
        for name in tables:
            op.execute(f'ALTER TABLE `{name}` CONVERT TO CHARACTER SET {CHARSET} COLLATE {COLLATION}'
                       + ''.join(f', {keep}' for keep in _keep_text_types(bind, name)))
        for table, column, referred, referred_column in FOREIGN_KEYS:
            present = [fk['constrained_columns'] for fk in sa.inspect(bind).get_foreign_keys(table)]
            if [column] not in present:
                op.create_foreign_key(names.get((table, column)), table, referred, [column],
                                      [referred_column])
    finally:
        op.execute('SET FOREIGN_KEY_CHECKS = 1')


def downgrade() -> None:
    pass
