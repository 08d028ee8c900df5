"""pgbench TPC-B-like TPS on the same PostgreSQL, taken in the same run as the scenarios."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from typing import Any

from bench.dbstats import PG_HOST, PG_USER, recreate_database

PGBENCH_DB = os.environ.get("FULEMA_PGBENCH_DB", "fulema_pgbench")  # see dbstats.BENCH_DB


def find_pgbench() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))
    return candidates[-1] if candidates else None


def run_pgbench(seconds: int, *, clients: int = 8, threads: int = 2, scale: int = 8
                ) -> dict[str, Any]:
    """`pgbench -i -s SCALE` on a scratch database, then `pgbench -c 8 -j 2 -T seconds`.

    Scale 8 gives each of the 8 clients its own branch row on average: at scale 1 all eight
    queue on one row of pgbench_branches and the baseline would measure that lock, not the
    database."""
    exe = find_pgbench()
    if exe is None:
        return {"available": False, "reason": "pgbench not found (PATH, /usr/lib/postgresql/*/bin)"}
    recreate_database(PGBENCH_DB)
    conn = ["-h", PG_HOST, "-U", PG_USER]
    subprocess.run([exe, *conn, "-i", "-q", "-s", str(scale), PGBENCH_DB], check=True,
                   capture_output=True, timeout=300)
    done = subprocess.run([exe, *conn, "-c", str(clients), "-j", str(threads), "-T", str(seconds),
                           PGBENCH_DB], check=True, capture_output=True, text=True,
                          timeout=seconds + 120)
    tps = re.search(r"tps = ([0-9.]+)", done.stdout)
    lat = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
    return {"available": True, "tps": float(tps.group(1)) if tps else None,
            "latency_avg_ms": float(lat.group(1)) if lat else None,
            "command": f"pgbench -i -s {scale} {PGBENCH_DB} && pgbench -c {clients} -j {threads} "
                       f"-T {seconds} {PGBENCH_DB}", "scale": scale}
