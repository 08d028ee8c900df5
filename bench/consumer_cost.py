"""`python -m bench.consumer_cost`: SQL statements and commits per payment of each consumer of
the event stream, and of the sequencer, counted in process.

Why per consumer: a consumer is served by one process at a time, its events in order
(docs/events.md), so what it sends per payment, times what one statement costs on the
database, bounds the payments per second the whole deployment can carry, however many
processes run (docs/scaling.md). The sequencer is the same: one process at a time numbers the
events under the `event_streams` row lock.

The real app runs in process (`bench.calibrate.in_process`, background jobs off) on the
database named; payments are made `--round` at a time (created and paid together, then one
drain), so each consumer sees rounds of about that many payments' events, as it would at a
rate where that many arrive between two of its rounds. Counts do not move with the machine's
load; they do move with the round size (batch handlers amortise), which is why it is a
parameter.

    python -m bench.consumer_cost --db postgresql+asyncpg://postgres@127.0.0.1:5432/x --round 1 20

`--db` names a migrated database without the demo merchant (a new one: the merchant's sealed
columns are sealed with this run's own keyring, under its temporary data directory).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event, func, select

from bench.calibrate import in_process
from fulema.core.db import StatementCounter
from fulema.core.events.outbox import OutboxEvent


async def measure(database_url: str, data_dir: Path, *, rounds: list[int], payments: int
                  ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with in_process(database_url, data_dir) as run:
        dispatcher = run.app.state.dispatcher
        commits = [0]

        @event.listens_for(run.db.engine.sync_engine, "commit")
        def _commit(_conn: Any) -> None:
            commits[0] += 1

        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        serve, sequence = dispatcher._serve_moved, dispatcher.sequence

        async def counted_serve(consumer: Any, head: int, archived: int) -> tuple[int, bool]:
            s0, c0 = StatementCounter.total, commits[0]
            try:
                return await serve(consumer, head, archived)  # type: ignore[no-any-return]
            finally:
                counts[consumer.name][0] += StatementCounter.total - s0
                counts[consumer.name][1] += commits[0] - c0

        async def counted_sequence(*, look_first: bool = True) -> int:
            s0, c0 = StatementCounter.total, commits[0]
            try:
                return await sequence(look_first=look_first)  # type: ignore[no-any-return]
            finally:
                counts["(sequencer)"][0] += StatementCounter.total - s0
                counts["(sequencer)"][1] += commits[0] - c0

        tag = f"K{int(time.time() * 1000):x}"
        await run.pay([f"{tag}w{i}" for i in range(3)], together=True)  # warm: first uses
        dispatcher._serve_moved, dispatcher.sequence = counted_serve, counted_sequence
        async def events() -> int:
            async with run.db.transaction() as s:
                return int(await s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)

        for size in rounds:
            counts.clear()
            made, events0 = 0, await events()
            while made < payments:
                n = min(size, payments - made)
                await run.pay([f"{tag}r{size}x{made + i:05d}" for i in range(n)], together=True)
                made += n
            out[f"round_{size}"] = {
                name: {"statements": round(s / made, 2), "commits": round(c / made, 2)}
                for name, (s, c) in sorted(counts.items(), key=lambda kv: -kv[1][0])}
            out[f"round_{size}"]["(all consumers and sequencer)"] = {
                "statements": round(sum(s for s, _ in counts.values()) / made, 2),
                "commits": round(sum(c for _, c in counts.values()) / made, 2)}
            out[f"events_per_payment_{size}"] = round((await events() - events0) / made, 2)
    return out


def render(result: dict[str, Any]) -> str:
    lines = []
    for key, rows in result.items():
        if not isinstance(rows, dict):
            lines.append(f"{key.replace('_', ' ')}: {rows}")
            continue
        lines.append(f"per payment, rounds of {key.removeprefix('round_')} payments "
                     "(statements, commits):")
        lines += [f"  {name:<32} {v['statements']:>6}  {v['commits']:>5}"
                  for name, v in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.consumer_cost",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--db", default="", help="a database URL this may fill (default: a new "
                                            "SQLite file)")
    p.add_argument("--round", type=int, nargs="+", default=[1, 20])
    p.add_argument("--payments", type=int, default=40, help="per round size")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="fulema-consumers-") as tmp:
        url = a.db or f"sqlite+aiosqlite:///{tmp}/bench.db"
        if not a.db:
            from bench import dbstats
            asyncio.run(dbstats.migrate(url))
        result = asyncio.run(measure(url, Path(tmp), rounds=a.round, payments=a.payments))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if a.json
          else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
