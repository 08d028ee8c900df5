"""Async database access: engine, one declarative Base, and the unit of work.

The same models run on SQLite (embedded default), PostgreSQL (production) and MySQL-protocol
distributed SQL (TDSQL, TiDB; MariaDB here). Types below smooth the three over: money as
BIGINT fen, datetimes stored as naive UTC with microseconds everywhere (MySQL's DATETIME drops
them unless asked), ids as short strings.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, DateTime, String, Table, event, text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from fulema.core.money import Money
from fulema.core.signal import Signal

T = TypeVar("T")


class StatementCounter:
    """Statements sent to the database by this process; the benchmark harness divides the
    change by the operations it ran to report round trips per operation."""

    total = 0




class MoneyType(TypeDecorator[Money]):
    """Money stored as BIGINT fen."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Money | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if not isinstance(value, Money):
            raise TypeError("MoneyType columns take Money, not raw numbers")
        return value.fen

    def process_result_value(self, value: int | None, dialect: Dialect) -> Money | None:
        return None if value is None else Money(int(value))


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; naive UTC with microseconds in every database."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def IdColumnType() -> String:
    return String(40)


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A model's Table, typed as one, for Core statements built once on hot paths."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


class Database:
    """Engine plus session factory. Each use case runs in one `transaction()`."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if _is_sqlite(url):
            kwargs["connect_args"] = {"timeout": 30}
            if ":memory:" in url:
                raise ValueError("use a file for SQLite: the app and worker share it")
        elif "+aiomysql" in url or "+asyncmy" in url:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600,
                          isolation_level="READ COMMITTED")
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        if url.endswith("#nullpool"):
            self.url = url = url[: -len("#nullpool")]
            kwargs.pop("pool_size", None)
            kwargs.pop("max_overflow", None)
            kwargs["poolclass"] = NullPool
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.dialect = self.engine.dialect.name
        if _is_sqlite(url):
            _sqlite_serialized_writes(self.engine)
        _count_statements(self.engine)
        # `committed` wakes this process's event dispatcher (and the loops that act on rows
        # the same transactions wrote) when a transaction that published an event commits;
        # on PostgreSQL the transaction also NOTIFYs EVENTS_CHANNEL for other processes.
        self.committed = Signal()
        self.notify_other_processes = self.dialect == "postgresql"
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False,
                                               info={DB_KEY: self})
        # Process-local memo of read-mostly rows (e.g. API credentials), owned by the
        # contexts that fill it; it belongs to this database so two databases never mix.
        self.memo: dict[str, Any] = {}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any exception."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def create_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def drop_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)

    async def dispose(self) -> None:
        await self.engine.dispose()


DB_KEY = "fulema.db"
PUBLISHED_KEY = "fulema.published"
EVENTS_CHANNEL = "fulema_events"


def mark_published(session: AsyncSession) -> None:
    """Called by `events.publish`: this transaction's commit must wake the consumers."""
    session.info[PUBLISHED_KEY] = True


@event.listens_for(Session, "before_commit")
def _notify_other_processes(session: Session) -> None:
    db = session.info.get(DB_KEY)
    if session.info.get(PUBLISHED_KEY) and db is not None and db.notify_other_processes:
        # Delivered by PostgreSQL only if and when this transaction commits; one per
        # transaction however many events it published (NOTIFY de-duplicates).
        session.execute(text(f"NOTIFY {EVENTS_CHANNEL}"))


@event.listens_for(Session, "after_commit")
def _wake_this_process(session: Session) -> None:
    if session.info.pop(PUBLISHED_KEY, False):
        db = session.info.get(DB_KEY)
        if db is not None:
            db.committed.notify()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(PUBLISHED_KEY, None)


def _sqlite_serialized_writes(engine: AsyncEngine) -> None:
    """SQLite has one writer. BEGIN IMMEDIATE takes the write lock up front, so two
    read-then-write transactions queue on busy_timeout instead of failing with
    'database is locked' when both try to upgrade; WAL lets readers carry on."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _count_statements(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        StatementCounter.total += 1


_RETRYABLE_MYSQL = {1205, 1213}  # lock wait timeout, deadlock
_RETRYABLE_PG = {"40001", "40P01"}  # serialization failure, deadlock detected


def is_retryable(exc: BaseException) -> bool:
    """A conflict the database resolved by aborting us; the whole transaction may be rerun.

    InnoDB (MariaDB, TDSQL, TiDB's pessimistic mode) reports a deadlock when concurrent inserts
    of one unique key wait on each other; PostgreSQL reports 40001/40P01. Nothing was written.
    """
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _RETRYABLE_MYSQL:
        return True
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in _RETRYABLE_PG or "database is locked" in str(orig)


async def retry_on_conflict(fn: Callable[[], Awaitable[T]], *, attempts: int = 5) -> T:
    """Run a whole unit of work again when the database aborted it for a lock conflict.

    `fn` must open its own transaction, so a rerun starts from a clean read.
    """
    for attempt in range(attempts):
        try:
            return await fn()
        except Exception as exc:
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
            await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
    raise AssertionError("unreachable")
