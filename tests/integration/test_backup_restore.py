"""Point-in-time recovery on a real PostgreSQL the test starts itself: what a bank's DBA checks
is that a chosen moment comes back from a base backup and the archived WAL (what committed
before it is there, nothing after it is), without touching the running primary, and that
pruning never deletes the newest backup or the WAL it needs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from fulema.core.clock import clock
from fulema.ops import backup
from tests.integration.pg_pair import PgPair, bindir, pg_pair

pytestmark = pytest.mark.skipif(bindir() is None,
                                reason="PostgreSQL server binaries (pg_config --bindir) missing")


@pytest.fixture
def pair() -> Iterator[PgPair]:
    with pg_pair() as started:
        yield started


async def _archived(url: str, segment: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for _ in range(200):
            last = await conn.fetchval("SELECT last_archived_wal FROM pg_stat_archiver")
            if last is not None and last >= segment:
                return
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError(f"segment {segment} never archived")


async def test_a_chosen_moment_comes_back(pair: PgPair) -> None:
    conn = await asyncpg.connect(pair.primary)
    await conn.execute("CREATE TABLE payments_probe (n int primary key)")
    await conn.execute("INSERT INTO payments_probe SELECT generate_series(1, 100)")
    taken = backup.base_backup(pair.primary, pair.root / "backups")
    assert taken.size_bytes > 1_000_000
    await conn.execute("INSERT INTO payments_probe SELECT generate_series(101, 200)")
    chosen = await conn.fetchval("SELECT clock_timestamp()")
    await asyncio.sleep(0.3)
    await conn.execute("INSERT INTO payments_probe SELECT generate_series(201, 300)")  # the mistake
    segment = await conn.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
    await conn.close()
    await _archived(pair.primary, segment)

    restored = await backup.restore(taken.path, pair.archive, target_time=chosen,
                                    data_dir=pair.root / "restored")

    back = await asyncpg.connect(restored.url)
    try:
        assert await back.fetchval("SELECT count(*) FROM payments_probe") == 200
        assert await back.fetchval("SELECT max(n) FROM payments_probe") == 200
    finally:
        await back.close()
    primary = await asyncpg.connect(pair.primary)  # untouched
    assert await primary.fetchval("SELECT count(*) FROM payments_probe") == 300
    await primary.close()


async def test_restoring_into_an_existing_directory_is_refused(pair: PgPair) -> None:
    taken = backup.base_backup(pair.primary, pair.root / "backups")
    with pytest.raises(FileExistsError):
        await backup.restore(taken.path, pair.archive, target_time=clock.now(),
                             data_dir=pair.root)


def test_pruning_keeps_the_newest_backup_and_the_wal_it_needs(tmp_path: Path) -> None:
    backups, archive = tmp_path / "backups", tmp_path / "archive"
    archive.mkdir()
    now = clock.now()
    for age in (4000, 2000, 10):
        (backups / f"base-{now - timedelta(days=age):%Y%m%dT%H%M%S%fZ}").mkdir(parents=True)
    old_wal, new_wal = archive / "000000010000000000000001", archive / "000000010000000000000009"
    old_wal.write_bytes(b"x")
    new_wal.write_bytes(b"x")
    ancient = (now - timedelta(days=3000)).timestamp()
    os.utime(old_wal, (ancient, ancient))
    gone = backup.prune(backups, archive, retention_days=1830)
    newest = f"base-{now - timedelta(days=10):%Y%m%dT%H%M%S%fZ}"
    assert [p.name for p in backups.iterdir()] == [newest]  # 4000 and 2000 days: past five years
    assert old_wal in gone
    assert new_wal.exists()
    # however old, the newest backup is never pruned
    assert backup.prune(backups, archive, retention_days=1) == []
    assert [p.name for p in backups.iterdir()] == [newest]


def test_the_commands_back_up_and_restore(pair: PgPair, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from fulema.cli import app as cli

    monkeypatch.setenv("FULEMA_DR_NODES", f'["{pair.primary}", "{pair.standby}"]')
    monkeypatch.setenv("FULEMA_BACKUP_DIR", str(pair.root / "backups"))
    monkeypatch.setenv("FULEMA_BACKUP_ARCHIVE_DIR", str(pair.archive))
    taken = CliRunner().invoke(cli, ["dr", "backup"])
    assert taken.exit_code == 0, taken.output
    assert "base backup" in taken.output
    naive = CliRunner().invoke(cli, ["dr", "restore", "--target-time", "2026-11-26T10:00:00",
                                     "--data-dir", str(pair.root / "restored-x")])
    assert naive.exit_code == 2  # a time without its zone is refused
    before = CliRunner().invoke(cli, ["dr", "restore", "--target-time", "2000-01-01T00:00:00+08:00",
                                      "--data-dir", str(pair.root / "restored-y")])
    assert before.exit_code == 1
    assert "no base backup" in before.output
