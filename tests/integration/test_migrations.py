"""The one Alembic history builds the schema on every supported database, and the models and
the migrations agree (`alembic check`), as warehouse's bin/db-check does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from fulema.core.db import Base, Database
from fulema.migrate import check, upgrade
from tests.conftest import BACKENDS, backend_url


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrade_head_then_check_on_a_clean_database(backend: str, tmp_path: Path) -> None:
    import fulema.app  # noqa: F401 - every context's tables

    url = backend_url(backend, tmp_path)
    db = Database(url)
    await db.drop_all()
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await db.dispose()

    await asyncio.to_thread(upgrade, url)
    await asyncio.to_thread(check, url)  # raises if models and migrations differ

    db = Database(url)
    async with db.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    await db.dispose()
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
