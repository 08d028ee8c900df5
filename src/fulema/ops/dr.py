"""Disaster recovery: a controlled switchover between a PostgreSQL primary and its streaming
standby, with the data loss (RPO) and the outage (RTO) measured rather than promised.

The order of steps is what makes the RPO zero with asynchronous replication: the primary is
fenced first (read-only by default for every session, and every client session ended, so no
transaction can commit after the moment we read its last WAL position), the standby is then
waited for until it has replayed up to that position, and only then promoted. The platform
follows by itself when its database URL lists both hosts with
`target_session_attrs=read-write` (libpq's and asyncpg's rule): the fenced node reports
`default_transaction_read_only=on` and is skipped, the promoted one is taken.

The fence is `ALTER SYSTEM`, so it survives a restart of the old primary: it must never take
writes again until it has been rebuilt as a standby of the new primary (docs/operations.md).
Node addresses are libpq URLs (`postgresql://user@host:port/db`), read from the settings tree
(`dr_nodes`); they are shown with any password removed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg


class DrError(Exception):
    """A switchover refused or stopped; the message says where, and nothing was promoted
    unless the message says so."""


@dataclass(frozen=True)
class NodeStatus:
    url: str
    reachable: bool
    role: str  # primary | standby | fenced | unreachable
    wal_lsn: str | None = None
    replay_lag_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class SwitchoverReport:
    old_primary: str
    new_primary: str
    fenced_at_lsn: str
    replayed_lsn: str
    rpo_bytes: int
    rto_seconds: float
    steps: list[tuple[str, float]]


def safe_url(url: str) -> str:
    """The URL without its password, for logs and answers."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, timeout=5.0)


async def node_status(url: str) -> NodeStatus:
    try:
        conn = await _connect(url)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return NodeStatus(safe_url(url), False, "unreachable", error=type(exc).__name__)
    try:
        in_recovery = bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
        if in_recovery:
            lsn = await conn.fetchval("SELECT pg_last_wal_replay_lsn()::text")
            lag = await conn.fetchval(
                "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())")
            return NodeStatus(safe_url(url), True, "standby", str(lsn),
                              int(lag) if lag is not None else None)
        read_only = await conn.fetchval("SHOW default_transaction_read_only")
        lsn = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        return NodeStatus(safe_url(url), True, "fenced" if read_only == "on" else "primary",
                          str(lsn))
    finally:
        await conn.close()


async def cluster_status(urls: list[str]) -> list[NodeStatus]:
    return list(await asyncio.gather(*(node_status(u) for u in urls)))


def _pick(statuses: list[NodeStatus], urls: list[str], role: str) -> str:
    found = [u for u, st in zip(urls, statuses, strict=True) if st.role == role]
    if len(found) != 1:
        seen = ", ".join(f"{st.url}={st.role}" for st in statuses)
        raise DrError(f"need exactly one {role} node to switch over; found: {seen}")
    return found[0]


async def fence(url: str) -> str:
    """Makes the node read-only for every session, present and future, and ends every other
    client session (their open transactions abort, unacknowledged); answers the last WAL
    position it will ever write."""
    conn = await _connect(url)
    try:
        await conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        await conn.execute("SELECT pg_reload_conf()")
        # A session forked before the postmaster read the new setting could still write:
        # end sessions, then again once the setting is visible to new sessions.
        for _ in range(2):
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
            for _ in range(50):
                probe = await _connect(url)
                try:
                    if await probe.fetchval("SHOW default_transaction_read_only") == "on":
                        break
                finally:
                    await probe.close()
                await asyncio.sleep(0.02)
        return str(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
    finally:
        await conn.close()


async def unfence(url: str) -> None:
    """Undoes `fence` (only for a node that never stopped being the one primary: an aborted
    switchover before the standby was promoted)."""
    conn = await _connect(url)
    try:
        await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def wait_replayed(url: str, lsn: str, *, within: float) -> str:
    conn = await _connect(url)
    try:
        deadline = time.monotonic() + within
        while True:
            replayed = await conn.fetchval("SELECT pg_last_wal_replay_lsn()::text")
            done = await conn.fetchval("SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn) >= 0",
                                       replayed, lsn)
            if done:
                return str(replayed)
            if time.monotonic() > deadline:
                raise DrError(f"standby replayed {replayed}, not {lsn}, in {within:.0f} s")
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def promote(url: str, *, within: float) -> None:
    conn = await _connect(url)
    try:
        ok = await conn.fetchval("SELECT pg_promote(true, $1)", max(1, int(within)))
        if not ok:
            raise DrError("standby did not promote in time")
    finally:
        await conn.close()


async def verify_writable(url: str, *, within: float) -> None:
    """A read-write transaction succeeds (txid_current() refuses in read-only and recovery)."""
    deadline = time.monotonic() + within
    while True:
        try:
            conn = await _connect(url)
            try:
                await conn.fetchval("SELECT txid_current()")
                return
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def switchover(urls: list[str], *, within: float = 30.0,
                     on_step: Callable[[str], Awaitable[None] | None] | None = None
                     ) -> SwitchoverReport:
    """Primary → standby, in the order that loses nothing. Refuses unless exactly one node is
    primary and one standby. If the standby does not catch up in time, the old primary is
    unfenced and the switchover refused (nothing was promoted)."""
    statuses = await cluster_status(urls)
    old = _pick(statuses, urls, "primary")
    new = _pick(statuses, urls, "standby")
    steps: list[tuple[str, float]] = []
    started = time.monotonic()

    async def mark(name: str) -> None:
        steps.append((name, round(time.monotonic() - started, 4)))
        if on_step is not None:
            result = on_step(name)
            if result is not None:
                await result

    fenced_lsn = await fence(old)
    await mark("fenced old primary")
    try:
        replayed = await wait_replayed(new, fenced_lsn, within=within)
    except DrError:
        await unfence(old)
        raise
    await mark("standby replayed every committed transaction")
    await promote(new, within=within)
    await mark("standby promoted")
    await verify_writable(new, within=within)
    await mark("new primary takes writes")
    conn = await _connect(new)
    try:
        lost = int(await conn.fetchval(
            "SELECT greatest(pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn), 0)",
            fenced_lsn, replayed))
    finally:
        await conn.close()
    return SwitchoverReport(old_primary=safe_url(old), new_primary=safe_url(new),
                            fenced_at_lsn=fenced_lsn, replayed_lsn=replayed, rpo_bytes=lost,
                            rto_seconds=round(time.monotonic() - started, 3), steps=steps)


def platform_url(urls: list[str], *, driver: str = "postgresql+asyncpg") -> str:
    """The platform's database URL over every node: the one that takes writes is used.
    SQLAlchemy's form (`+asyncpg`: hosts as repeated `host=` parameters) or, for plain
    `postgresql`, libpq's (`host1:port1,host2:port2`)."""
    hosts = []
    dbname = user = ""
    for url in urls:
        parts = urlsplit(url)
        hosts.append(f"{parts.hostname}:{parts.port or 5432}")
        dbname = parts.path.lstrip("/") or "postgres"
        user = parts.username or "postgres"
    if "+" not in driver:
        return f"{driver}://{user}@{','.join(hosts)}/{dbname}?target_session_attrs=read-write"
    query = "&".join(f"host={h}" for h in hosts) + "&target_session_attrs=read-write"
    return f"{driver}://{user}@/{dbname}?{query}"
