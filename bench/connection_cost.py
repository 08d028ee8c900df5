"""What a new database connection costs the API process, beside a warm pooled one.

    python -m bench.connection_cost [URL]

Why: a pool whose overflow connections are closed and reopened under load pays this on every
reopening (docs/performance.md, round 2: 0.17 new connections per create at 64 in flight).
Each round opens 30 connections without a pool (`#nullpool`) and runs 8 distinct statements on
each, then the same on one warm pooled connection; the difference is the connection's cost
(the handshake, the driver's type set-up, the statements prepared again). CPU time of this
process only; never asserted anywhere.
"""

from __future__ import annotations

import asyncio
import sys
import time

from sqlalchemy import text

from bench import dbstats
from fulema.core.db import Database

URL = sys.argv[1] if len(sys.argv) > 1 else dbstats.pg_url(dbstats.BENCH_DB)
STMTS = [f"select CAST({i} AS INTEGER) + CAST(:a AS INTEGER)" for i in range(8)]
async def run(db: Database, n: int, fresh: bool) -> float:
    t = time.process_time()
    for _ in range(n):
        async with db.engine.connect() as c:
            for s in STMTS:
                await c.execute(text(s), {"a": 1})
    return (time.process_time() - t) * 1000 / n
async def main() -> None:
    fresh, warm = Database(URL + "#nullpool"), Database(URL)
    await run(warm, 5, False)
    await run(fresh, 2, True)
    for r in range(3):
        a = await run(fresh, 30, True)
        b = await run(warm, 30, False)
        print(f"round {r}: new connection + 8 statements {a:.2f} ms CPU; warm pooled "
              f"connection + 8 statements {b:.2f} ms CPU; a new connection costs {a - b:.2f} ms")
    await fresh.dispose()
    await warm.dispose()


if __name__ == "__main__":
    asyncio.run(main())
