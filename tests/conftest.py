"""Shared fixtures.

`db` runs a test on every database this machine offers: SQLite always; PostgreSQL and MariaDB
when FULEMA_TEST_POSTGRES_URL / FULEMA_TEST_MYSQL_URL are set (CI sets both), skipped with the
reason otherwise. `sqlite_db` is SQLite only, for tests that are not about the database.

Run in parallel (`pytest -n N`, pytest-xdist), each worker gets a database of its own beside
the one named: `test` becomes `test_gw0`, `test_gw1`, ... (created when missing), since every
test empties the tables it uses.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Base, Database

BACKENDS = ["sqlite", "postgres", "mysql"]
_created: set[str] = set()
URL_VARS = ("FULEMA_TEST_POSTGRES_URL", "FULEMA_TEST_MYSQL_URL")


async def _ensure_database(url: str) -> None:
    """Create the database `url` names if the server lacks it (connecting to the server's
    default database to do so)."""
    parsed = make_url(url)
    admin = parsed.set(database="postgres" if parsed.get_backend_name() == "postgresql" else "mysql")
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if parsed.get_backend_name() == "postgresql":
                found = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                          {"n": parsed.database})
                if not found:
                    await conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
            else:
                await conn.execute(text(
                    f"CREATE DATABASE IF NOT EXISTS `{parsed.database}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    finally:
        await engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, point this worker at its own databases (the URLs of its processes,
    the CLI tests' subprocesses included, follow the variables)."""
    # A served process freezes its startup heap (FULEMA_GC_FREEZE); a test process starts
    # hundreds of apps, and what each froze would never be collected. Tests that mean to
    # freeze say so (tests/unit/test_heap_freeze.py).
    os.environ.setdefault("FULEMA_GC_FREEZE", "false")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    for var in URL_VARS:
        url = os.environ.get(var)
        if not url:
            continue
        parsed = make_url(url)
        mine = parsed.set(database=f"{parsed.database}_{worker}").render_as_string(
            hide_password=False)
        asyncio.run(_ensure_database(mine))
        os.environ[var] = mine


def backend_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    var = {"postgres": "FULEMA_TEST_POSTGRES_URL", "mysql": "FULEMA_TEST_MYSQL_URL"}[backend]
    url = os.environ.get(var)
    if not url:
        pytest.skip(f"{var} is not set: no {backend} database to test against")
    return url


_sqlite_template: list[Path] = []


async def _fresh_sqlite(target: Path) -> None:
    """Copy an empty schema made once per process: `create_all` costs about a third of a
    second of CPU on SQLite, paid by every test that opens a database otherwise."""
    if not _sqlite_template:
        template = Path(tempfile.mkdtemp(prefix="fulema-schema-")) / "template.db"
        maker = Database(f"sqlite+aiosqlite:///{template}")
        await maker.drop_all()
        await maker.create_all()
        await maker.dispose()
        _sqlite_template.append(template)
    for suffix in ("-wal", "-shm", "-journal"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(_sqlite_template[0], target)


async def open_database(backend: str, tmp_path: Path) -> Database:
    import fulema.app  # noqa: F401 - registers every context's tables on Base.metadata

    url = backend_url(backend, tmp_path)
    if backend == "sqlite":
        await _fresh_sqlite(tmp_path / "test.db")
        return Database(url)
    database = Database(url)
    if url not in _created:
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
                    gc_freeze=False,  # a test process builds many apps: let them be collected
                    # the merchants' notify receivers in tests live on the ASGI app's host
                    outbound_allow_hosts=["testserver"],
                    # the cheapest argon2 the setting allows: tests log in often
                    password_hash_time_cost=1, password_hash_memory_kib=8192)


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()

