"""`python -m bench.recon`: reconciliation over generated statements of every channel format.

For each channel and size (default 10k, 100k and 1,000,000 statement rows) it runs, in a
fresh process (so peak RSS is that case's own): parse the file, read the day's orders and
refunds from PostgreSQL through payments' export, match and classify; and, in the same
process, the baseline: a bare polars inner join of the two already-loaded tables on the id.
Prints seconds per phase, rows/s, CPU seconds (this process's and the PostgreSQL
backends'), peak RSS, the ratio to the baseline, the machine's load
average, and checks the injected differences were all found and nothing else.

Needs a PostgreSQL URL (--db, default FULEMA_TEST_POSTGRES_URL with `_bench` appended to
the database name); the orders are generated once (INSERT ... SELECT
generate_series) and kept there, the statements cached in /tmp/fulema-recon-bench.

`--base REF` runs every case on REF's src/ as well (`bench.ab.extract`), A and B alternately
(`--rounds`), each in its own fresh process: wall clock moves with the machine's load from
one minute to the next, so a change is judged on pairs run in the same minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import cpu
from bench.ab import extract
from bench.recon import data
from bench.server import ROOT

CHANNELS = ["wechat", "alipay", "unionpay", "ecny", "bankpay"]
SIZES = [10_000, 100_000, 1_000_000]


def default_db() -> str:
    url = os.environ.get("FULEMA_TEST_POSTGRES_URL",
                         "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    return url + "_bench"


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def prepare(url: str, channels: list[str], sizes: list[int]) -> None:
    """The database, its tables and each (channel, size) day's orders, made once."""
    import fulema.app  # noqa: F401 - registers every table
    from fulema.core.db import Database

    base, name = plain(url).rsplit("/", 1)
    admin = await asyncpg.connect(base + "/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    db = Database(url)
    await db.create_all()
    await db.dispose()
    conn = await asyncpg.connect(plain(url))
    try:
        for channel in channels:
            for n in sizes:
                p = data.prefix(channel, n)
                have = await conn.fetchval(
                    "SELECT count(*) FROM orders WHERE id >= $1 AND id < $2", p, p + "~")
                if have == n:
                    continue
                print(f"  generating {n:,} {channel} orders in PostgreSQL ...", flush=True)
                await conn.execute("DELETE FROM refunds WHERE id >= $1 AND id < $2",
                                   "rf_" + p, "rf_" + p + "~")
                await conn.execute("DELETE FROM orders WHERE id >= $1 AND id < $2", p, p + "~")
                async with conn.transaction():
                    for sql in data.insert_sql(channel, n):
                        await conn.execute(sql)
                await conn.execute("ANALYZE orders; ANALYZE refunds")
            for n in sizes:
                data.statement(channel, n)
    finally:
        await conn.close()


def rss_mb() -> float:
    """This process's peak resident set (VmHWM: reset at exec, unlike getrusage's maxrss,
    which a child inherits from the parent that forked it)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def backends_cpu(conn: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving this database, other than the
    asking one (the server runs on this machine: /proc has them). A query's parallel workers
    come and go within it and are not counted."""
    pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = "
                            "current_database() AND pid <> pg_backend_pid()")
    return {r["pid"]: cpu.pid_cpu(r["pid"]) for r in pids}


async def one(url: str, channel: str, n: int) -> dict[str, Any]:
    """One case, in this process: the figures as a dict. The case runs as `runs.classify`
    does (`pipeline.load`: parse and the PostgreSQL read at the same time, then
    `pipeline.classify`), plus the totals and discrepancy rows a run records."""
    from fulema.core.db import Database
    from fulema.payments import service as payments
    from fulema.reconciliation import matching, pipeline
    from fulema.reconciliation.runs import day_bounds

    blob = data.statement(channel, n)
    db = Database(url)
    start, end = day_bounds(data.day_for(n))
    await payments.export_channel_day(db, channel=channel, start=start, end=start)  # warm pool
    rss0 = rss_mb()
    load1 = os.getloadavg()[0]
    probe = await asyncpg.connect(plain(url))
    pg0 = await backends_cpu(probe)
    c0 = time.process_time()
    t0 = time.perf_counter()
    loaded = await pipeline.load(db, channel=channel, data=blob, start=start, end=end)
    t1, c1 = time.perf_counter(), time.process_time()
    rows = await pipeline.classify(db, loaded, channel=channel, start=start, end=end)
    totals = matching.totals(rows)
    flagged = matching.discrepancies(rows)
    t2, c2 = time.perf_counter(), time.process_time()
    lines, ours = loaded.statement.lines, loaded.ours
    b0 = time.perf_counter()
    bare = lines.join(ours, on=["kind", "ref"], how="inner")
    b1 = time.perf_counter()
    pg1 = await backends_cpu(probe)
    await probe.close()
    await db.dispose()
    kinds = flagged.group_by("result").len().to_dicts()
    return {"channel": channel, "rows": lines.height, "ours": ours.height,
            "bytes": len(blob), "parse_s": loaded.parse_s, "read_s": loaded.read_s,
            "load_s": t1 - t0, "match_s": t2 - t1, "total_s": t2 - t0, "cpu_s": c2 - c0,
            "cpu_load_s": c1 - c0,
            "pg_cpu_s": sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items()),
            "cpu_match_s": c2 - c1, "baseline_s": b1 - b0,
            "baseline_rows": bare.height, "totals_rows": totals.height,
            "rss_before_mb": rss0, "load1": load1, "peak_rss_mb": rss_mb(),
            "found": {k["result"]: k["len"] for k in kinds}, "expected": data.expected(n)}


def table(results: list[dict[str, Any]]) -> None:
    head = (f"{'channel':9} {'code':5} {'rows':>9} {'parse s':>8} {'PG read s':>9} {'both s':>7} "
            f"{'match s':>8} {'total s':>8} {'cpu s':>6} {'PG cpu':>6} {'rows/s':>10} "
            f"{'join s':>7} {'ratio':>6} {'peak RSS':>9} {'load':>5}  found")
    print(head)
    for r in results:
        ok = "ok" if r["found"] == r["expected"] else f"MISMATCH {r['found']} != {r['expected']}"
        print(f"{r['channel']:9} {r.get('code', 'tree'):5} {r['rows']:>9,} {r['parse_s']:>8.3f} "
              f"{r['read_s']:>9.3f} {r['load_s']:>7.3f} {r['match_s']:>8.3f} "
              f"{r['total_s']:>8.3f} {r['cpu_s']:>6.2f} {r['pg_cpu_s']:>6.2f} "
              f"{r['rows'] / r['total_s']:>10,.0f} {r['baseline_s']:>7.3f} "
              f"{r['total_s'] / r['baseline_s']:>6.1f} {r['peak_rss_mb']:>6.0f} MB "
              f"{r['load1']:>5.1f}  {ok}")


def run_case(db: str, channel: str, n: int, src: Path | None) -> dict[str, Any]:
    """One case in a fresh process, on this tree's code or (`src`) another commit's."""
    env = dict(os.environ)
    if src is not None:  # that commit's fulema, this tree's bench
        env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    out = subprocess.run([sys.executable, "-m", "bench.recon", "--db", db, "--one", channel,
                          str(n)], capture_output=True, text=True, check=False, env=env,
                         cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["code"] = "tree" if src is None else "base"
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recon", description=__doc__.split("\n")[0])
    p.add_argument("--db", default=default_db(), help="PostgreSQL URL (postgresql+asyncpg://...)")
    p.add_argument("--channels", nargs="+", choices=CHANNELS, default=CHANNELS)
    p.add_argument("--sizes", nargs="+", type=int, default=SIZES)
    p.add_argument("--base", metavar="REF",
                   help="A/B: also run every case on REF's src/ (git archive), alternately")
    p.add_argument("--rounds", type=int, default=1, help="runs of every case (and variant)")
    p.add_argument("--one", nargs=2, metavar=("CHANNEL", "N"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(asyncio.run(one(a.db, a.one[0], int(a.one[1])))))
        return 0
    print(f"load average before: {os.getloadavg()}  cores: {os.cpu_count()}  "
          f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    asyncio.run(prepare(a.db, a.channels, a.sizes))
    variants: list[Path | None] = [None] if not a.base else [extract(a.base), None]
    results = []
    try:
        for channel in a.channels:
            for n in a.sizes:
                for r in range(a.rounds):  # A B, then B A: a drift in load hits both
                    for src in variants if r % 2 == 0 else variants[::-1]:
                        results.append(run_case(a.db, channel, n, src))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    table(results)
    print(f"load average after: {os.getloadavg()}")
    print("parse and PG read (COPY through payments.export_channel_day) run at the same "
          "time; both = their wall clock together; total = both + match + classify, wall "
          "clock; cpu = this process's CPU seconds over all its threads; PG cpu = the "
          "PostgreSQL backends' CPU seconds serving the case (parallel query workers not "
          "counted); join = bare polars inner join of the two loaded tables; ratio = "
          "total/join; code = this tree, or base (--base REF's src)")
    return 0 if all(r["found"] == r["expected"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
