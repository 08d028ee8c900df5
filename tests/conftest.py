"""Shared fixtures.

`db` runs a test on every database this machine offers: SQLite always; PostgreSQL and MariaDB
when FULEMA_TEST_POSTGRES_URL / FULEMA_TEST_MYSQL_URL are set (CI sets both), skipped with the
reason otherwise. `sqlite_db` is SQLite only, for tests that are not about the database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Base, Database

BACKENDS = ["sqlite", "postgres", "mysql"]
_created: set[str] = set()


def backend_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    var = {"postgres": "FULEMA_TEST_POSTGRES_URL", "mysql": "FULEMA_TEST_MYSQL_URL"}[backend]
    url = os.environ.get(var)
    if not url:
        pytest.skip(f"{var} is not set: no {backend} database to test against")
    return url


async def open_database(backend: str, tmp_path: Path) -> Database:
    import fulema.app  # noqa: F401 - registers every context's tables on Base.metadata

    url = backend_url(backend, tmp_path)
    database = Database(url)
    if backend == "sqlite" or url not in _created:
        await database.drop_all()
        await database.create_all()
        _created.add(url)
    else:
        async with database.transaction() as s:
            for table in reversed(Base.metadata.sorted_tables):
                await s.execute(delete(table))
    return database


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(request.param, tmp_path)
    yield database
    await database.dispose()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database("sqlite", tmp_path)
    yield database
    await database.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(environment="test", public_base_url="http://testserver", data_dir=tmp_path,
                    database_url=f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
                    operator_token="test-operator", run_background=False, seed_demo=False,
                    # the merchants' notify receivers in tests live on the ASGI app's host
                    outbound_allow_hosts=["testserver"])


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()
