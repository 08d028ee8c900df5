"""Alembic environment: one linear history for SQLite, PostgreSQL and MySQL-protocol databases."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import fulema.app  # noqa: F401 - imports every context's models onto Base.metadata
from fulema.core import vault
from fulema.core.config import get_settings
from fulema.core.db import Base, Database

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return str(config.attributes.get("database_url") or get_settings().database_url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=_url().startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"migration left rows without their parent: {broken[:5]}")


async def run_migrations_online() -> None:
    if not vault.is_installed():  # data migrations seal values with the deployment's keyring
        vault.install(get_settings().keyring())
    db = Database(_url())
    # plain engine connection: SQLite's BEGIN IMMEDIATE hook is harmless for DDL
    async with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # SQLite changes a column by copying its table and dropping the old one, which rows
            # referencing it would refuse; SQLite's own procedure for such rebuilds: foreign
            # keys off (possible only outside a transaction, hence on the driver's connection
            # before SQLAlchemy begins one), and `foreign_key_check` before the commit (_run).
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute("PRAGMA foreign_keys=OFF")
        await connection.run_sync(_run)
        await connection.commit()
    await db.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
