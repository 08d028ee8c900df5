"""Base backups and point-in-time recovery (PITR) of the PostgreSQL database.

A base backup plus the archived WAL after it can bring the database back to any chosen moment,
for instance just before an operator's mistake. The primary archives each finished WAL segment
(`archive_mode = on`, `archive_command` copying `%p` into the archive: docs/operations.md);
`base_backup` copies the data directory while the server runs; `restore` starts a separate
server from a backup that replays the archive up to the chosen time and then opens for
inspection, never touching the running primary. The restore drill (`fulema dr restore-drill`,
and the test) proves a chosen moment comes back: what committed before it is there, nothing
after it is.

Retention: payment records are kept at least five years (PBOC record-keeping rules), so the
archive and the backups are kept `FULEMA_BACKUP_RETENTION_DAYS` (default 1,830) before
`prune` may delete them.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from fulema.core.clock import clock
from fulema.ops import pgserver


@dataclass(frozen=True)
class Backup:
    path: Path
    taken_at: datetime
    size_bytes: int


@dataclass(frozen=True)
class Restored:
    data_dir: Path
    url: str
    seconds: float


def base_backup(node_url: str, backups: Path) -> Backup:
    """A plain (uncompressed) base backup with the WAL it needs to be consistent."""
    pgserver.own_dir(backups)
    taken = clock.now()
    target = backups / f"base-{taken:%Y%m%dT%H%M%S%fZ}"
    pgserver.run(str(pgserver.tools() / "pg_basebackup"), "-d", node_url, "-D", str(target),
                 "-X", "stream", "-c", "fast", "--no-sync")
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return Backup(path=target, taken_at=taken, size_bytes=size)


async def restore(backup: Path, archive: Path, *, target_time: datetime, data_dir: Path,
                  within: float = 120.0) -> Restored:
    """A new server from `backup`, replaying `archive` up to `target_time`, then promoted
    (writable, separate from the primary) on a free loopback port."""
    started = time.monotonic()
    url = await asyncio.to_thread(_start_restored, backup, archive, target_time, data_dir)
    deadline = time.monotonic() + within
    while True:
        conn = await asyncpg.connect(url)
        try:
            if not await conn.fetchval("SELECT pg_is_in_recovery()"):
                break
        finally:
            await conn.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"recovery to {target_time} not finished in {within:.0f} s")
        await asyncio.sleep(0.1)
    return Restored(data_dir=data_dir, url=url, seconds=round(time.monotonic() - started, 2))


def _start_restored(backup: Path, archive: Path, target_time: datetime, data_dir: Path) -> str:
    if data_dir.exists():
        raise FileExistsError(f"{data_dir} exists: restore into a new directory")
    pgserver.run("cp", "-a", str(backup), str(data_dir))
    port = pgserver.free_port()
    pgserver.run("rm", "-f", str(data_dir / "standby.signal"))
    pgserver.run("touch", str(data_dir / "recovery.signal"))
    pgserver.append_conf(data_dir, "\n".join([
        f"port = {port}", "listen_addresses = '127.0.0.1'",
        f"unix_socket_directories = '{data_dir}'", "archive_mode = off",
        f"restore_command = 'cp {archive}/%f %p'",
        f"recovery_target_time = '{target_time.isoformat()}'",
        "recovery_target_inclusive = true", "recovery_target_action = 'promote'"]))
    pgserver.start(data_dir, data_dir.parent / f"{data_dir.name}.log")
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def prune(backups: Path, archive: Path, *, retention_days: int) -> list[Path]:
    """Deletes base backups older than retention, keeping the newest one whatever its age,
    and archived WAL older than the oldest base backup kept."""
    bases = sorted(p for p in backups.glob("base-*") if p.is_dir())
    if not bases:
        return []
    cutoff = clock.now() - timedelta(days=retention_days)
    doomed = [p for p in bases[:-1] if _taken(p) < cutoff]
    kept = [p for p in bases if p not in doomed]
    oldest_kept = _taken(kept[0])
    for p in doomed:
        shutil.rmtree(p)
    old_wal = [f for f in archive.iterdir()
               if f.is_file() and datetime.fromtimestamp(f.stat().st_mtime, tz=oldest_kept.tzinfo)
               < oldest_kept - timedelta(hours=1)] if archive.exists() else []
    for f in old_wal:
        f.unlink()
    return doomed + old_wal


def newest_before(backups: Path, moment: datetime) -> Path | None:
    """The base backup to recover `moment` from: the newest taken before it."""
    bases = sorted(p for p in backups.glob("base-*") if p.is_dir() and _taken(p) < moment)
    return bases[-1] if bases else None


def _taken(path: Path) -> datetime:
    return datetime.strptime(path.name, "base-%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
