"""Running the machine's own PostgreSQL server binaries: for base backups, restore drills and
the disaster-recovery test pair. initdb and postgres refuse to run as root, so when we are
root the commands run as the `postgres` user (as they do on a bank's database hosts)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path


class PgToolsMissing(RuntimeError):
    """The server binaries are not on this machine (`pg_config --bindir`)."""


def bindir() -> Path | None:
    """Where initdb, pg_ctl and pg_basebackup are, or None."""
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    out = subprocess.run([pg_config, "--bindir"],  # noqa: S603 - the machine's own pg_config
                         capture_output=True, text=True, check=False)
    path = Path(out.stdout.strip())
    needed = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
    return path if all((path / n).exists() for n in needed) else None


def tools() -> Path:
    found = bindir()
    if found is None:
        raise PgToolsMissing("PostgreSQL server binaries not found (pg_config --bindir)")
    return found


def as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PgToolsMissing("running as root without runuser: cannot run PostgreSQL tools")
    return [runuser, "-u", "postgres", "--"]


def run(*args: str, timeout: float = 300) -> str:
    """One server tool, as the server user; its output, or CalledProcessError with it."""
    done = subprocess.run([*as_server_user(), *args],  # noqa: S603 - our arguments, no shell
                          check=True, capture_output=True, text=True, timeout=timeout)
    return done.stdout


def own_dir(path: Path) -> None:
    """A directory the server user owns, private (PostgreSQL refuses group access)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")
    os.chmod(path, 0o700)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def append_conf(data_dir: Path, lines: str) -> None:
    run("sh", "-c", f"cat >> '{data_dir}/postgresql.auto.conf' <<'EOF'\n{lines}\nEOF")


def start(data_dir: Path, log: Path) -> None:
    run(str(tools() / "pg_ctl"), "-D", str(data_dir), "-l", str(log), "-w", "-t", "120", "start")


def stop(data_dir: Path) -> None:
    subprocess.run([*as_server_user(), str(tools() / "pg_ctl"),  # noqa: S603
                    "-D", str(data_dir), "-m", "immediate", "stop"],
                   capture_output=True, check=False, timeout=60)
