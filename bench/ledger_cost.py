"""What the ledger costs a payment: full-cycle payments/s with and without the `ledger.postings`
consumer, in one run, on the same database.

The cycle is calibrate.py's (`bench.calibrate.in_process`, `InProcess.pay`), in process through
`httpx.ASGITransport` with the bank channel's sandbox mounted: signed create, the payer scans,
the channel's callback, the dispatcher drains the outbox (every declared consumer), the
merchant is notified. Phase "without" runs with the
ledger's consumer removed from the dispatcher; phase "with" puts it back, drains its backfill of
what it missed untimed, and runs the same number of cycles. Rounds alternate the order
(without-with, then with-without), so neither phase always runs first. Payments
run `--concurrency` at a time; the dispatcher drains after each wave, so its work is inside the
measured time. Besides wall-clock payments/s it prints this process's CPU milliseconds per
payment (the app, the dispatcher and the sandbox share it; the database server's, on
PostgreSQL, is not in it) and SQL statements per payment, which the machine's load moves less,
and the 1-minute load average at the start and after each round. Figures only, no assertion:
`python -m bench.ledger_cost --n 300`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.calibrate import in_process
from fulema.core.db import Database, StatementCounter


async def measure(database_url: str, data_dir: Path, *, n: int, concurrency: int,
                  rounds: int) -> dict[str, Any]:
    from fulema.ledger import service as ledger
    from fulema.ledger.jobs import CONSUMER
    from fulema.migrate import upgrade

    await asyncio.to_thread(upgrade, database_url)
    tag = f"L{int(time.time() * 1000):x}"
    async with in_process(database_url, data_dir) as run:
        dispatcher = run.app.state.dispatcher
        ledger_consumer = dispatcher.consumers.pop(CONSUMER)

        async def cycles(letter: str) -> tuple[float, float]:
            """Wall and CPU seconds (this process: app, dispatcher, sandbox; not the
            database server's) of `n` full cycles, `concurrency` at a time."""
            started, cpu0 = time.perf_counter(), time.process_time()
            for wave in range(0, n, concurrency):
                await run.pay([f"{tag}{letter}{i:05d}"
                               for i in range(wave, min(n, wave + concurrency))], together=True)
            return time.perf_counter() - started, time.process_time() - cpu0

        await cycles("w")  # warm-up (first-use caches), not counted
        without = with_ledger = (0.0, 0.0)
        backfill = 0.0
        sql_without = sql_with = 0
        loads = [os.getloadavg()[0]]
        for r in range(rounds):  # A B, then B A: a drift in load or a phase's order hits both
            for ledger_on in (False, True) if r % 2 == 0 else (True, False):
                if ledger_on:
                    dispatcher.consumers[CONSUMER] = ledger_consumer
                    await dispatcher.register()  # first time: from the beginning of history
                    backfill_started = time.perf_counter()
                    await dispatcher.drain()  # it catches up with what it missed, untimed
                    backfill += time.perf_counter() - backfill_started
                else:
                    dispatcher.consumers.pop(CONSUMER, None)
                before = StatementCounter.total
                spent = await cycles(f"{'b' if ledger_on else 'a'}{r}")
                if ledger_on:
                    with_ledger = (with_ledger[0] + spent[0], with_ledger[1] + spent[1])
                    sql_with += StatementCounter.total - before
                else:
                    without = (without[0] + spent[0], without[1] + spent[1])
                    sql_without += StatementCounter.total - before
            loads.append(os.getloadavg()[0])
        dispatcher.consumers[CONSUMER] = ledger_consumer  # the books complete, untimed
        await dispatcher.drain()
        n_total = n * rounds
        tb = await ledger.trial_balance(run.db)
        entries = len(await ledger.entries_for(run.db, business_ref=await _last_order(run.db)))
        return {"database": run.db.dialect, "payments_per_phase": n_total,
                "concurrency": concurrency, "rounds": rounds,
                "load_average_1m": " ".join(f"{x:.1f}" for x in loads),
                "without_ledger_per_s": round(n_total / without[0], 1),
                "with_ledger_per_s": round(n_total / with_ledger[0], 1),
                "ledger_cost_pct": round(100 * (with_ledger[0] - without[0]) / without[0], 1),
                "cpu_ms_per_payment_without": round(1000 * without[1] / n_total, 2),
                "cpu_ms_per_payment_with": round(1000 * with_ledger[1] / n_total, 2),
                "ledger_cpu_cost_pct": round(100 * (with_ledger[1] - without[1]) / without[1],
                                             1),
                "backfill_payments_per_s": round(n_total / backfill, 1),
                "sql_statements_per_payment_without": round(sql_without / n_total, 1),
                "sql_statements_per_payment_with": round(sql_with / n_total, 1),
                "trial_balance_total": tb.total, "last_order_entries": entries}


async def _last_order(db: Database) -> str:
    from sqlalchemy import func, select

    from fulema.payments.models import Order

    async with db.transaction() as s:
        return str(await s.scalar(select(func.max(Order.id))))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ledger_cost", description=__doc__)
    p.add_argument("--n", type=int, default=100, help="payments per phase and round")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2, help="alternations of the two phases")
    p.add_argument("--database-url", default="",
                   help="an empty database to use (default: a fresh SQLite file)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = a.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'ledger_bench.db'}"
        result = asyncio.run(measure(url, Path(tmp), n=a.n, concurrency=a.concurrency,
                                     rounds=a.rounds))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
