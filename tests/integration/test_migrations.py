"""The one Alembic history builds the schema on every supported database, and the models and
the migrations agree (`alembic check`), as warehouse's bin/db-check does."""

from __future__ import annotations

import asyncio
from datetime import datetime
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


@pytest.mark.parametrize("backend", BACKENDS)
async def test_events_from_before_the_consumers_reach_a_consumer_that_backfills(
        backend: str, tmp_path: Path) -> None:
    """A deployment upgraded from the one-global-delivery outbox (0003) keeps its events; the
    first dispatcher numbers them and a consumer starting from the beginning gets them; and
    the migration goes down and up again."""
    from alembic import command

    import fulema.app  # noqa: F401
    from fulema.core.events import Consumer, Dispatcher, Event
    from fulema.migrate import alembic_config

    url = backend_url(backend, tmp_path)
    db = Database(url)
    await db.drop_all()
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await db.dispose()
    await asyncio.to_thread(upgrade, url, "0003")
    db = Database(url)
    async with db.engine.begin() as conn:
        for n, ts in enumerate([datetime(2026, 10, 1, 8), datetime(2026, 10, 2, 8)]):
            await conn.execute(text(
                "INSERT INTO outbox_events (id, topic, payload, created_at, available_at, "
                "attempts, delivered_at) VALUES (:id, 'payment.succeeded', :payload, :ts, :ts, "
                "1, :ts)"), {"id": f"evt_old{n}", "payload": f'{{"n": {n}}}', "ts": ts})
    await db.dispose()

    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    got: list[str] = []

    async def ledger(_db: Database, event: Event) -> None:
        got.append(event.id)

    try:
        await Dispatcher(db, [Consumer("ledger.postings", ledger)]).drain()
    finally:
        await db.dispose()
    assert got == ["evt_old0", "evt_old1"]

    config = alembic_config(url)
    await asyncio.to_thread(command.downgrade, config, "-1")
    await asyncio.to_thread(upgrade, url)
    await asyncio.to_thread(check, url)
