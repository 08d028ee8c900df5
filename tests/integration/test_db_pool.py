"""The connection pool is sized by the settings (FULEMA_DB_POOL_SIZE, FULEMA_DB_MAX_OVERFLOW):
what a process keeps open, and what it opens beyond that when every pooled connection is busy
and closes again on return (each such connection is a new database session: docs/scaling.md,
"Connections"). On PostgreSQL and MariaDB; SQLite has no pool of this kind."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import QueuePool

from fulema.app import create_app
from fulema.core.config import Settings
from fulema.core.db import Database
from tests.conftest import backend_url

SERVERS = ["postgres", "mysql"]


async def hold(db: Database, n: int) -> list[AsyncConnection]:
    conns = [await db.engine.connect() for _ in range(n)]
    for c in conns:
        await c.execute(text("SELECT 1"))
    return conns


@pytest.mark.parametrize("backend", SERVERS)
async def test_overflow_connections_are_opened_when_all_are_busy_and_closed_on_return(
        backend: str, tmp_path: Path) -> None:
    db = Database(backend_url(backend, tmp_path), pool_size=2, max_overflow=1)
    try:
        pool = db.engine.pool
        assert isinstance(pool, QueuePool)
        conns = await hold(db, 3)  # two pooled and one overflow, all at once
        assert pool.checkedout() == 3
        for c in conns:
            await c.close()
        assert pool.checkedin() == 2  # the overflow one was closed, not kept
        assert pool.overflow() == 0
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", SERVERS)
async def test_without_a_setting_the_overflow_is_as_large_as_the_pool(backend: str,
                                                                       tmp_path: Path) -> None:
    db = Database(backend_url(backend, tmp_path), pool_size=2)
    try:
        conns = await hold(db, 4)  # two pooled and two overflow
        assert db.engine.pool.checkedout() == 4  # type: ignore[attr-defined]
        for c in conns:
            await c.close()
        assert db.engine.pool.checkedin() == 2  # type: ignore[attr-defined]
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", SERVERS)
async def test_the_app_sizes_its_pool_from_the_settings(backend: str, tmp_path: Path) -> None:
    settings = Settings(environment="test", data_dir=tmp_path, seed_demo=False,
                        run_background=False, database_url=backend_url(backend, tmp_path),
                        db_pool_size=3, db_max_overflow=0)
    app = create_app(settings)
    db: Database = app.state.db
    try:
        pool = db.engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.size() == 3
        conns = await hold(db, 3)
        assert pool.overflow() == 0  # no room beyond the three
        for c in conns:
            await c.close()
    finally:
        await db.dispose()
