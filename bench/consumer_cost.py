"""`python -m bench.consumer_cost`: SQL statements and commits per event consumer, counted.

Runs `bench.calibrate.statements_per_op` (creates, full payment cycles, payer-code payments and
queries, `--n` of each, the dispatcher drained after each wave of `--n`, so a consumer's round
holds about `--n` events) with `Dispatcher._serve_moved` wrapped: every statement and commit
sent while a consumer is served (its claim, its handler or batch handler, its position update)
is put down to that consumer. `drain` serves the consumers one after the other, so the
attribution is exact. Prints the per-consumer table (statements and commits over the run, and
per payment), then calibrate's statements per operation.

Counts do not move with the machine's load (docs/performance.md, "Round 2"). On PostgreSQL the
database named by `--database-url` is emptied first (its `public` schema dropped): the name
must start with `bench_`. Figures only, no assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import event

from fulema.core.db import Database, StatementCounter
from fulema.core.events import Dispatcher


async def _empty(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if not name.startswith("bench_"):
        raise SystemExit(f"refusing to empty database {name!r}: its name must start bench_")
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            if db.dialect == "postgresql":
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
            else:
                rows = (await conn.execute(text("SHOW TABLES"))).all()
                await conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
                for (table,) in rows:
                    await conn.execute(text(f"DROP TABLE `{table}`"))
                await conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
    finally:
        await db.dispose()


async def measure(url: str, data_dir: Path, *, n: int) -> dict[str, Any]:
    from bench.calibrate import statements_per_op
    from fulema.migrate import upgrade

    if not url.startswith("sqlite"):
        await _empty(url)
    await asyncio.to_thread(upgrade, url)
    stmts: collections.Counter[str] = collections.Counter()
    commits: collections.Counter[str] = collections.Counter()
    rounds: collections.Counter[str] = collections.Counter()
    total_commits = [0]
    hooked: set[int] = set()
    original = Dispatcher._serve_moved

    async def counted(self: Dispatcher, consumer: Any, head: int, archived: int
                      ) -> tuple[int, bool]:
        engine = self.db.engine.sync_engine
        if id(engine) not in hooked:
            hooked.add(id(engine))
            event.listen(engine, "commit", lambda _c: total_commits.__setitem__(
                0, total_commits[0] + 1))
        s0, c0 = StatementCounter.total, total_commits[0]
        try:
            return await original(self, consumer, head, archived)
        finally:
            stmts[consumer.name] += StatementCounter.total - s0
            commits[consumer.name] += total_commits[0] - c0
            rounds[consumer.name] += 1

    Dispatcher._serve_moved = counted  # type: ignore[method-assign]
    try:
        per_op = await statements_per_op(url, data_dir, n=n)
    finally:
        Dispatcher._serve_moved = original  # type: ignore[method-assign]
    payments = 3 * n  # cycles, payer-code payments, cycles with two more consumers
    table = {name: {"statements": stmts[name], "commits": commits[name],
                    "served": rounds[name],
                    "statements_per_payment": round(stmts[name] / payments, 2),
                    "commits_per_payment": round(commits[name] / payments, 2)}
             for name in sorted(stmts, key=lambda k: -stmts[k])}
    return {"per_consumer": table, "per_op": per_op,
            "all_consumers_statements_per_payment": round(sum(stmts.values()) / payments, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.consumer_cost", description=__doc__)
    p.add_argument("--n", type=int, default=20, help="operations of each kind (a round's size)")
    p.add_argument("--database-url", default="",
                   help="a database named bench_* (emptied first); default a fresh SQLite file")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = a.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'consumer_cost.db'}"
        result = asyncio.run(measure(url, Path(tmp), n=a.n))
    print(f"{'consumer':<22} {'stmts':>6} {'commits':>7} {'served':>6} "
          f"{'stmts/pay':>9} {'commits/pay':>11}")
    for name, row in result["per_consumer"].items():
        print(f"{name:<22} {row['statements']:>6} {row['commits']:>7} {row['served']:>6} "
              f"{row['statements_per_payment']:>9} {row['commits_per_payment']:>11}")
    print("all consumers, statements per payment:", result["all_consumers_statements_per_payment"])
    print("statements per operation (calibrate):", result["per_op"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
