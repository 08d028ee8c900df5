"""Two real PostgreSQL servers on loopback, a primary and its streaming standby, made with the
machine's own server binaries (`pg_config --bindir`) in a temporary directory, for the
disaster-recovery drill. initdb refuses to run as root (CI runs as root), so the servers run as
the `postgres` user when we are root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PgPair:
    primary: str
    standby: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bindir() -> Path | None:
    """Where initdb, pg_ctl and pg_basebackup are, or None (the reason to skip)."""
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    out = subprocess.run([pg_config, "--bindir"],  # noqa: S603 - the machine's own pg_config
                         capture_output=True, text=True, check=False)
    path = Path(out.stdout.strip())
    needed = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
    return path if all((path / n).exists() for n in needed) else None


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root without runuser: cannot start PostgreSQL")
    return [runuser, "-u", "postgres", "--"]


@contextmanager
def pg_pair() -> Iterator[PgPair]:
    bins = bindir()
    if bins is None:
        raise RuntimeError("PostgreSQL server binaries not found (pg_config --bindir)")
    run_as = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="fulema-dr-"))
    primary_dir, standby_dir = root / "primary", root / "standby"
    if run_as:
        shutil.chown(root, user="postgres", group="postgres")
    os.chmod(root, 0o700)
    p1, p2 = _free_port(), _free_port()

    def run(*args: str) -> None:
        subprocess.run([*run_as, *args],  # noqa: S603 - our own arguments, no shell input
                       check=True, capture_output=True, timeout=120)

    started: list[Path] = []
    try:
        run(str(bins / "initdb"), "-D", str(primary_dir), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C")
        conf = (f"\nlisten_addresses = '127.0.0.1'\nport = {p1}\n"
                f"unix_socket_directories = '{root}'\nwal_level = replica\n"
                "max_wal_senders = 5\nhot_standby = on\nfsync = off\n"
                "full_page_writes = off\nshared_buffers = 32MB\n")
        run("sh", "-c", f"cat >> {primary_dir}/postgresql.conf <<'EOF'\n{conf}EOF")
        run(str(bins / "pg_ctl"), "-D", str(primary_dir), "-l", str(root / "primary.log"),
            "-w", "start")
        started.append(primary_dir)
        run(str(bins / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(p1), "-U", "postgres",
            "-D", str(standby_dir), "-R", "-X", "stream")
        run("sh", "-c", f"echo 'port = {p2}' >> {standby_dir}/postgresql.conf")
        run(str(bins / "pg_ctl"), "-D", str(standby_dir), "-l", str(root / "standby.log"),
            "-w", "start")
        started.append(standby_dir)
        yield PgPair(primary=f"postgresql://postgres@127.0.0.1:{p1}/postgres",
                     standby=f"postgresql://postgres@127.0.0.1:{p2}/postgres")
    finally:
        for data in started:
            subprocess.run([*run_as, str(bins / "pg_ctl"), "-D", str(data),  # noqa: S603
                            "-m", "immediate", "stop"], capture_output=True, check=False,
                           timeout=60)
        shutil.rmtree(root, ignore_errors=True)
