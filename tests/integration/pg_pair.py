"""Two real PostgreSQL servers on loopback, a primary (archiving its WAL) and its streaming
standby, made with the machine's own server binaries in a temporary directory, for the
disaster-recovery and backup drills (`fulema.ops.pgserver` runs them as the `postgres` user
when we are root, since initdb refuses root)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fulema.ops import pgserver
from fulema.ops.pgserver import bindir as bindir


@dataclass(frozen=True)
class PgPair:
    primary: str
    standby: str
    root: Path
    archive: Path


@contextmanager
def pg_pair() -> Iterator[PgPair]:
    bins = pgserver.tools()
    root = Path(tempfile.mkdtemp(prefix="fulema-dr-"))
    pgserver.own_dir(root)
    primary_dir, standby_dir, archive = root / "primary", root / "standby", root / "archive"
    pgserver.own_dir(archive)
    p1, p2 = pgserver.free_port(), pgserver.free_port()
    started: list[Path] = []
    try:
        pgserver.run(str(bins / "initdb"), "-D", str(primary_dir), "-U", "postgres",
                     "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
        pgserver.append_conf(primary_dir, "\n".join([
            "listen_addresses = '127.0.0.1'", f"port = {p1}",
            f"unix_socket_directories = '{root}'", "wal_level = replica", "max_wal_senders = 5",
            "hot_standby = on", "fsync = off", "full_page_writes = off", "shared_buffers = 32MB",
            "archive_mode = on",
            f"archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'"]))
        pgserver.start(primary_dir, root / "primary.log")
        started.append(primary_dir)
        pgserver.run(str(bins / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(p1),
                     "-U", "postgres", "-D", str(standby_dir), "-R", "-X", "stream")
        pgserver.append_conf(standby_dir, f"port = {p2}\narchive_mode = off")
        pgserver.start(standby_dir, root / "standby.log")
        started.append(standby_dir)
        yield PgPair(primary=f"postgresql://postgres@127.0.0.1:{p1}/postgres",
                     standby=f"postgresql://postgres@127.0.0.1:{p2}/postgres",
                     root=root, archive=archive)
    finally:
        for data in [*started, *root.glob("restored*")]:
            if data.is_dir():
                pgserver.stop(data)
        shutil.rmtree(root, ignore_errors=True)
