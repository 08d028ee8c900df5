"""The database side of the harness: preparing the bench database, reading PostgreSQL's own
counters around each phase, and checking that no acknowledged order was lost.

Why counters from PostgreSQL: `fulema.core.db.StatementCounter` counts in the server process,
which the harness does not reach (and must not, without new endpoints in src). PostgreSQL's
`pg_stat_database` gives transactions and rows per database; `pg_stat_statements` would give
statements, but it needs `shared_preload_libraries` (a server restart), so the harness uses it
only when it is already there. PostgreSQL 15 flushes an idle backend's counters up to 10 s
late, hence the settle wait around each phase (Plan.settle).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; used for counters only
from sqlalchemy import inspect, select

from bench.server import BIN, ROOT

PG_HOST, PG_USER = "127.0.0.1", "postgres"
# FULEMA_BENCH_DB: a session sharing the PostgreSQL server with others names its own
# (the harness drops and recreates it every run).
BENCH_DB = os.environ.get("FULEMA_BENCH_DB", "fulema_bench")
COUNTERS = ("xact_commit", "xact_rollback", "sessions", "tup_inserted", "tup_updated", "tup_deleted",
            "tup_fetched", "tup_returned", "blks_read", "blks_hit")


def pg_url(db: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://{PG_USER}@{PG_HOST}:5432/{db}"


def psql(sql: str, db: str = "postgres") -> str:
    exe = shutil.which("psql") or "psql"
    done = subprocess.run([exe, "-h", PG_HOST, "-U", PG_USER, "-d", db, "-Atc", sql],
                          capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip()


def postgres_available() -> str | None:
    """None when usable, else why not."""
    if shutil.which("psql") is None:
        return "psql is not on PATH"
    try:
        psql("select 1")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"PostgreSQL at {PG_HOST}:5432 does not answer ({exc})"
    return None


def recreate_database(name: str) -> None:
    """The bench database is dedicated to this harness and recreated per run: orders left
    PAYING by an earlier run would expire mid-run and the server's expiry job would spend
    the measured CPU closing them."""
    psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(f"CREATE DATABASE {name}")


def ensure_database(name: str) -> None:
    if psql(f"select 1 from pg_database where datname = '{name}'") != "1":  # noqa: S608 - our constant
        psql(f"CREATE DATABASE {name}")


async def migrate(database_url: str) -> str:
    """`fulema migrate`, exactly as an operator runs it. While the migration history lags the
    models (tables missing afterwards), the schema is completed from the models with
    `create_all` and the result says so, so the harness keeps working during development."""
    done = await asyncio.to_thread(
        subprocess.run, [str(BIN / "fulema"), "migrate"], cwd=ROOT, check=False, timeout=300,
        env={**os.environ, "FULEMA_DATABASE_URL": database_url}, capture_output=True, text=True)
    import fulema.app  # noqa: F401 - registers every context's tables on Base.metadata
    from fulema.core.db import Base, Database

    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            present = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        missing = sorted(set(Base.metadata.tables) - present)
        if not missing and done.returncode == 0:
            return "fulema migrate"
        await db.create_all()
    finally:
        await db.dispose()
    why = f"exit {done.returncode}: {done.stderr.strip()[-200:]}" if done.returncode else \
        f"it left {len(missing)} tables missing ({', '.join(missing[:6])}...)"
    return f"fulema migrate, then create_all from the models ({why})"


async def has_pg_stat_statements(db: str) -> bool:
    conn = await asyncpg.connect(pg_url(db, "postgresql"))
    try:
        preload = await conn.fetchval("show shared_preload_libraries")
        if "pg_stat_statements" not in (preload or ""):
            return False
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return True
    finally:
        await conn.close()


async def snapshot(db: str, *, statements: bool = False) -> dict[str, int]:
    conn = await asyncpg.connect(pg_url(db, "postgresql"))
    try:
        row = await conn.fetchrow(
            f"select {', '.join(COUNTERS)} from pg_stat_database where datname = $1",  # noqa: S608
            db)
        snap = {k: int(row[k]) for k in COUNTERS} if row else {}
        if statements:
            snap["statements"] = int(await conn.fetchval(
                "select coalesce(sum(calls), 0) from pg_stat_statements s "
                "join pg_database d on d.oid = s.dbid where d.datname = $1", db))
        return snap
    finally:
        await conn.close()


def per_op(before: dict[str, int], after: dict[str, int], ops: int, *, idle_rate: dict[str, float],
           seconds: float) -> dict[str, float]:
    """Counter deltas per operation, less what the idle server does in the same time
    (its scheduler and outbox loops poll the database even with no load)."""
    if not ops or not before or not after:
        return {}
    out: dict[str, float] = {}
    for key in after:
        noise = idle_rate.get(key, 0.0) * seconds
        out[key] = round(max(0.0, after[key] - before[key] - noise) / ops, 2)
    return out


def rate(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, float]:
    return {k: (after[k] - before[k]) / seconds for k in after} if seconds > 0 else {}


async def orders_by_prefix(database_url: str, prefix: str) -> dict[str, list[str]]:
    """out_trade_no -> order ids, straight from the orders table."""
    from fulema.core.db import Database
    from fulema.payments.models import Order

    db = Database(database_url)
    try:
        async with db.transaction() as s:
            rows = (await s.execute(select(Order.out_trade_no, Order.id).where(
                Order.out_trade_no.like(f"{prefix}%")))).all()
    finally:
        await db.dispose()
    found: dict[str, list[str]] = defaultdict(list)
    for no, oid in rows:
        found[no].append(oid)
    return found


def lost_check(result: dict[str, Any], found: dict[str, list[str]], prefix: str
               ) -> dict[str, Any]:
    """Every request the server acknowledged has exactly one order with the id it answered;
    requests that failed and were retried exist at most once."""
    acked = {r["no"]: r["id"] for r in result.get("records", [])}
    lost = [no for no, oid in acked.items() if found.get(no) != [oid]]
    duplicates = [no for no, ids in found.items() if len(ids) > 1]
    unresolved = [f"{prefix}{i:08d}" for i in result.get("unresolved", [])]
    return {"sent": result.get("sent", 0), "acknowledged": len(acked),
            "orders_in_db": sum(len(v) for v in found.values()), "lost": len(lost),
            "duplicates": len(duplicates),
            "unresolved_after_retry": len(unresolved),
            "unresolved_in_db": sum(1 for no in unresolved if no in found),
            "examples_lost": lost[:5]}


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"
