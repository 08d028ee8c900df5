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


async def run_migrations_online() -> None:
    if not vault.is_installed():  # data migrations seal values with the deployment's keyring
        vault.install(get_settings().keyring())
    db = Database(_url())
    # plain engine connection: SQLite's BEGIN IMMEDIATE hook is harmless for DDL
    async with db.engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await db.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
