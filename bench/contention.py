"""`python -m bench.contention`: N API processes, one merchant, one campaign budget (issue 15).

Scale-out holds only if nothing the processes share serialises them. The create path shares
two things across processes when every order is for one merchant and takes a discount from
one campaign: the merchant's rows (read, not locked) and the campaign's budget (locked by the
reservation until the order's transaction commits; docs/marketing.md, "Sharded budgets"). So,
for each process count (1 and 4 by default), a fresh server of N uvicorn workers on one
database, and two phases with the same total number of requests in flight:

- `create`: plain orders (the control: what N processes cost without the shared budget);
- `best`: orders with `"discount": "best"` that all take their discount from ONE campaign (a
  立减 of `--off` fen, a budget that cannot run out, spread over `--shards` counters).

The total in flight is the same at every process count (`--concurrency`, split over the
processes by the kernel's accept balancing), so if the processes shared nothing the
latency would not grow with N beyond what the extra processes cost the CPU: at a fixed
number in flight, latency = in flight / throughput. The goal (issue 15): `best` p99 and errors
at 4 processes within 2x of 1 process.

Then the budget that runs out: a new campaign whose budget covers about a quarter of the
orders the largest process count made in the `best` phase, driven the same way for half as
long again. Afterwards the
database is read, not the answers: the campaign's redemptions against its budget, its
counters (none may be negative), the discounted orders against the redemptions. The run
prints `overspent: 0` when the redemptions that hold budget sum to at most the budget.

The background (event dispatcher, scheduled jobs, speaker hub) runs in one `fulema worker`
beside API processes started with FULEMA_RUN_BACKGROUND=false, as production runs it
(`--background process` puts it back in every API process, the embedded default). Every
phase reports API CPU per operation (all the API processes over all operations), the worker's
CPU per operation apart (over the phase and the second after it, when the worker finishes
the phase's events), and on PostgreSQL the new database connections per operation. Nothing
here asserts a time.

    FULEMA_BENCH_DB=bench_me python -m bench.contention                  # PostgreSQL
    python -m bench.contention --db sqlite --processes 1 2 --seconds 1   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import BigInteger, case, func, or_, select, type_coerce

from bench import cpu, dbstats, server
from bench.harness import RESULTS_DIR, run_loadgen
from bench.server import Proc


@dataclass(frozen=True)
class ContentionPlan:
    processes: tuple[int, ...] = (1, 4)
    concurrency: int = 8  # in flight in total (8: below one process's pool of 10)
    seconds: float = 8.0
    warmup: float = 1.5
    shards: int = 8
    off: int = 10  # fen per order (the orders are 1.00: payable 0.90)
    exhaust: bool = True
    # the budget that runs out, in orders; None: a quarter of what the `best` phase made
    exhaust_orders: int | None = None
    background: str = "worker"  # or "process" (bench.server.start_fulema)


QUICK = ContentionPlan(processes=(1, 2), concurrency=2, seconds=1.0, warmup=0.3,
                       exhaust_orders=8)
PHASES = ("create", "best")
NO_LIMIT = 10**12  # fen: a budget the run cannot spend
WORKER_SETTLE = 1.0  # seconds after a phase in which the worker's CPU still counts for it


async def seed_campaign(database_url: str, *, name: str, budget: int, shards: int, off: int
                        ) -> str:
    """A platform-funded 立减 (INSTANT_OFF) on every merchant and the bankpay channel, through
    the marketing service as an operator's console call would make it. Every other bench
    campaign is ended first, so the best discount is this one."""
    from fulema.core.clock import clock
    from fulema.core.db import Database
    from fulema.marketing import service as marketing
    from fulema.marketing.schemas import CampaignIn

    db = Database(database_url)
    try:
        for c in await marketing.list_campaigns(db):
            if c.name.startswith("bench contention") and c.status == "ACTIVE":
                await marketing.move_campaign(db, actor="bench", campaign_id=c.campaign_id,
                                              action="end")
        now = clock.now()
        camp = await marketing.create_campaign(db, actor="bench", body=CampaignIn(
            name=f"bench contention {name}", funder="platform", discount_type="INSTANT_OFF",
            off=off, starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(days=1),
            channels=["bankpay"], budget_total=budget, budget_shards=shards))
        return camp.campaign_id
    finally:
        await db.dispose()


def _fen(value: Any) -> int:
    return int(value or 0)


async def budget_check(database_url: str, campaign_id: str, prefixes: list[str]
                       ) -> dict[str, Any]:
    """What the database says the campaign gave: its redemptions that hold budget (RESERVED or
    CONSUMED) against its budget, its counters, and the discounted orders of the orders this
    campaign was the only one offered to (their `out_trade_no` starts with one of `prefixes`)."""
    from fulema.core.db import Database
    from fulema.marketing.models import BudgetShard, Campaign, Redemption
    from fulema.payments.models import Order

    fen = BigInteger()
    db = Database(database_url)
    try:
        async with db.transaction() as s:
            c = await s.get(Campaign, campaign_id)
            assert c is not None, campaign_id
            shards = [_fen(r) for r in (await s.scalars(
                select(type_coerce(BudgetShard.remaining, fen))
                .where(BudgetShard.campaign_id == campaign_id))).all()]
            held, redeemed = (await s.execute(
                select(func.count(), func.sum(type_coerce(Redemption.amount, fen)))
                .where(Redemption.kind == "campaign", Redemption.ref == campaign_id,
                       Redemption.state != "RELEASED"))).one()
            orders, discounted = (await s.execute(
                select(func.count(), func.sum(case(
                    (type_coerce(Order.discount_amount, fen) > 0, 1), else_=0)))
                .where(or_(*(Order.out_trade_no.like(f"{p}%") for p in prefixes))))).one()
    finally:
        await db.dispose()
    total, row = c.budget_total.fen, c.budget_remaining.fen
    redeemed = _fen(redeemed)
    remaining = row + sum(shards)
    return {"campaign_id": campaign_id, "budget_fen": total, "redemptions": int(held),
            "redeemed_fen": redeemed, "remaining_fen": remaining,
            "overspent_fen": max(0, redeemed - total),
            "negative_counters": sum(1 for v in [row, *shards] if v < 0),
            # the books balance: every fen is either still in a counter or in a redemption
            "balanced": remaining + redeemed == total,
            "orders": int(orders), "discounted_orders": _fen(discounted),
            "full_price_orders": int(orders) - _fen(discounted),
            "discounted_orders_match_redemptions": _fen(discounted) == int(held)}


@dataclass
class Run:
    run_dir: Path
    database_url: str
    pg_db: str | None
    sandbox: Proc
    receiver: Proc
    counter: int = 0


async def phase(run: Run, fulema: Proc, op: str, *, concurrency: int, seconds: float,
                prefix: str) -> dict[str, Any]:
    """One closed-loop phase; the server's CPU (every worker) and, on PostgreSQL, the new
    database connections around it."""
    run.counter += 1
    worker = fulema.worker
    db0 = await dbstats.snapshot(run.pg_db) if run.pg_db else {}
    w0 = cpu.tree_cpu(worker.popen.pid) if worker else 0.0
    cpu0, t0 = cpu.tree_cpu(fulema.popen.pid), time.monotonic()
    r = await run_loadgen(run.run_dir, f"{run.counter:03d}", {
        "op": op, "mode": "closed", "concurrency": concurrency, "duration": seconds,
        "max_ops": 200_000, "server": fulema.url, "sandbox": run.sandbox.url,
        "receiver": run.receiver.url, "prefix": prefix})
    used, wall = cpu.tree_cpu(fulema.popen.pid) - cpu0, time.monotonic() - t0
    db1 = await dbstats.snapshot(run.pg_db) if run.pg_db else {}
    ok = r["ok"] or 1
    out: dict[str, Any] = {
        "ops_s": r["throughput"], "ok": r["ok"], "errors": r["errors"],
        "error_kinds": r["error_kinds"], "latency_ms": r["latency_ms"],
        "api_cpu_ms_per_op": round(used * 1000 / ok, 3), "api_cores_busy": round(used / wall, 2),
           "discounted": sum(1 for rec in r.get("records", []) if rec.get("discount", 0) > 0),
        "loadavg": round(os.getloadavg()[0], 2)}
    if db0 and db1:
        out["db_sessions_per_op"] = round((db1["sessions"] - db0["sessions"]) / ok, 3)
    if worker is not None:
        await asyncio.sleep(WORKER_SETTLE)  # the phase's last events are handled after it
        out["worker_cpu_ms_per_op"] = round((cpu.tree_cpu(worker.popen.pid) - w0) * 1000 / ok, 3)
    return out


async def one_process_count(run: Run, plan: ContentionPlan, n: int, tag: str) -> dict[str, Any]:
    camp = await seed_campaign(run.database_url, name=f"x{n}", budget=NO_LIMIT,
                               shards=plan.shards, off=plan.off)
    fulema = await asyncio.to_thread(
        server.start_fulema, "uvicorn", n, database_url=run.database_url,
        sandbox_url=run.sandbox.url, data_dir=run.run_dir / "data",
        log=run.run_dir / f"fulema-x{n}.log", background=plan.background)
    out: dict[str, Any] = {"processes": n, "background": plan.background,
                           "campaign_id": camp, "pids": fulema.serving_pids(),
                           "loadavg_at_start": round(os.getloadavg()[0], 2), "phases": {}}
    try:
        await phase(run, fulema, "best", concurrency=plan.concurrency, seconds=plan.warmup,
                    prefix=f"W{tag}{n}")
        for op in PHASES:
            out["phases"][op] = await phase(run, fulema, op, concurrency=plan.concurrency,
                                            seconds=plan.seconds, prefix=f"C{tag}{n}{op[0]}")
    finally:
        server.stop(fulema)
    out["budget_check"] = await budget_check(run.database_url, camp,
                                             [f"W{tag}{n}", f"C{tag}{n}b"])
    return out


async def exhaustion(run: Run, plan: ContentionPlan, n: int, best_orders: int, tag: str
                     ) -> dict[str, Any]:
    """A budget for about a quarter of the orders the same drive made before, driven half as
    long again, so it runs out early in the run; a multiple of shards x off, so every shard
    can be spent to the last fen."""
    unit = plan.shards * plan.off
    wanted = plan.exhaust_orders if plan.exhaust_orders is not None else best_orders // 4
    budget = max(unit, wanted // plan.shards * unit)
    camp = await seed_campaign(run.database_url, name=f"exhausted x{n}", budget=budget,
                               shards=plan.shards, off=plan.off)
    fulema = await asyncio.to_thread(
        server.start_fulema, "uvicorn", n, database_url=run.database_url,
        sandbox_url=run.sandbox.url, data_dir=run.run_dir / "data",
        log=run.run_dir / f"fulema-exhaust-x{n}.log", background=plan.background)
    try:
        prefix = f"E{tag}{n}"
        # longer than the phase it was sized from: a shared machine's rate moves
        drive = await phase(run, fulema, "best", concurrency=plan.concurrency,
                            seconds=plan.seconds * 1.5, prefix=prefix)
    finally:
        server.stop(fulema)
    check = await budget_check(run.database_url, camp, [prefix])
    return {"processes": n, "phase": drive, **check,
            "acknowledged_discounted": drive["discounted"],
            "ran_out": check["full_price_orders"] > 0}


def compare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each phase at the largest process count against 1 process: p99 ratio and errors."""
    first, last = runs[0], runs[-1]
    out: dict[str, Any] = {"from": first["processes"], "to": last["processes"]}
    for op in PHASES:
        a, b = first["phases"][op], last["phases"][op]
        pa, pb = a["latency_ms"].get("p99"), b["latency_ms"].get("p99")
        out[op] = {"p99_ratio": round(pb / pa, 2) if pa and pb else None,
                   "errors": [a["errors"], b["errors"]],
                   "cpu_ratio": round(b["api_cpu_ms_per_op"] / a["api_cpu_ms_per_op"], 2)
                   if a["api_cpu_ms_per_op"] else None}
        if a.get("worker_cpu_ms_per_op") and "worker_cpu_ms_per_op" in b:
            out[op]["worker_cpu_ratio"] = round(b["worker_cpu_ms_per_op"]
                                                / a["worker_cpu_ms_per_op"], 2)
    best = out["best"]
    out["goal_met"] = (best["p99_ratio"] is not None and best["p99_ratio"] <= 2.0
                       and best["errors"][1] <= 2 * best["errors"][0])
    # the shared budget's own share: how much more `best` grew than plain `create`
    if best["p99_ratio"] and out["create"]["p99_ratio"]:
        out["best_growth_over_create_growth"] = round(best["p99_ratio"]
                                                      / out["create"]["p99_ratio"], 2)
    return out


async def run(*, plan: ContentionPlan | None = None, db: str = "postgres",
              out_dir: Path = RESULTS_DIR, log: bool = True) -> dict[str, Any]:
    plan = plan or ContentionPlan()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    tag = stamp[-6:]
    results: dict[str, Any] = {"stamp": stamp, "db": db, "plan": asdict(plan),
                               "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="fulema-contention-") as tmp:
        run_dir = Path(tmp)
        (run_dir / "data").mkdir()
        pg_db: str | None = None
        if db == "postgres":
            why = dbstats.postgres_available()
            if why:
                raise RuntimeError(f"PostgreSQL is needed for --db postgres: {why}")
            pg_db = dbstats.BENCH_DB
            dbstats.recreate_database(pg_db)
            database_url = dbstats.pg_url(pg_db)
        else:
            database_url = dbstats.sqlite_url(run_dir / "bench.db")
        results["schema"] = await dbstats.migrate(database_url)
        sandbox = server.start_sandbox(data_dir=run_dir / "data", log=run_dir / "sandbox.log")
        receiver = server.start_receiver(log=run_dir / "receiver.log")
        try:
            state = Run(run_dir, database_url, pg_db, sandbox, receiver)
            runs = []
            for n in plan.processes:
                runs.append(await one_process_count(state, plan, n, tag))
                if log:
                    print(render_run(runs[-1]), flush=True)
            results["runs"] = runs
            results["comparison"] = compare(runs)
            if plan.exhaust:
                largest = runs[-1]
                results["exhaustion"] = await exhaustion(
                    state, plan, largest["processes"], largest["phases"]["best"]["ok"], tag)
        finally:
            server.stop(receiver)
            server.stop(sandbox)
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    path = _write(results, out_dir / f"contention-{stamp}.json")
    results["json_path"] = str(path)
    if log:
        print(render(results) + f"\nresults: {path}", flush=True)
    return results


def _write(results: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return path


def render_run(r: dict[str, Any]) -> str:
    lines = [f"{r['processes']} API process(es), background in {r.get('background', '?')}, "
             f"campaign {r['campaign_id']} "
             f"(load average {r['loadavg_at_start']} at start):"]
    for op, ph in r["phases"].items():
        lat = ph["latency_ms"]
        lines.append(
            f"  {op:<7} {ph['ops_s']:>8.1f}/s  p50 {lat.get('p50')!s:>8} ms  p99 "
            f"{lat.get('p99')!s:>8} ms  errors {ph['errors']:>4}  API CPU "
            f"{ph['api_cpu_ms_per_op']:.2f} ms/op ({ph['api_cores_busy']} cores)"
            + (f"  worker CPU {ph['worker_cpu_ms_per_op']:.2f} ms/op"
               if "worker_cpu_ms_per_op" in ph else "")
            + f"  new DB "
            f"sessions/op {ph.get('db_sessions_per_op', '-')}  discounted {ph['discounted']}"
            + (f"  {ph['error_kinds']}" if ph["errors"] else ""))
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    c = results["comparison"]
    lines = [f"\ncontention run {results['stamp']} on {results['db']}, load average "
             f"{results['loadavg_before'][0]} -> {results['loadavg_after'][0]}; "
             f"{results['plan']['concurrency']} in flight in total, "
             f"{results['plan']['seconds']:g} s per phase, background in "
             f"{results['plan'].get('background', 'process')}"]
    for op in PHASES:
        x = c[op]
        lines.append(f"  {op:<7} {c['to']} / {c['from']} processes: p99 x{x['p99_ratio']}, "
                     f"errors {x['errors'][0]} -> {x['errors'][1]}, API CPU per op "
                     f"x{x['cpu_ratio']}"
                     + (f", worker CPU per op x{x['worker_cpu_ratio']}"
                        if "worker_cpu_ratio" in x else ""))
    lines.append(f"  goal (best p99 and errors within 2x of 1 process): "
                 f"{'met' if c['goal_met'] else 'NOT met'}"
                 + (f"; best grew x{c['best_growth_over_create_growth']} as much as plain create"
                    if "best_growth_over_create_growth" in c else ""))
    for r in results["runs"]:
        b = r["budget_check"]
        lines.append(f"  budget at {r['processes']}: {b['redemptions']} redemptions, "
                     f"{b['redeemed_fen']} fen; balanced {b['balanced']}; overspent: "
                     f"{b['overspent_fen']}")
    e = results.get("exhaustion")
    if e:
        lines.append(
            f"  budget that runs out ({e['processes']} processes): budget {e['budget_fen']} fen, "
            f"{e['orders']} orders: {e['discounted_orders']} discounted "
            f"({e['redeemed_fen']} fen in {e['redemptions']} redemptions), "
            f"{e['full_price_orders']} at full price "
            f"({'ran out' if e['ran_out'] else 'did NOT run out: rerun'}); "
            f"remaining {e['remaining_fen']} fen, "
            f"negative counters {e['negative_counters']}, balanced {e['balanced']}, "
            f"p99 {e['phase']['latency_ms'].get('p99')} ms, errors {e['phase']['errors']}")
        lines.append(f"  overspent: {e['overspent_fen']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.contention",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--concurrency", type=int, default=ContentionPlan.concurrency,
                   help="requests in flight in total, the same at every process count")
    p.add_argument("--seconds", type=float, default=ContentionPlan.seconds)
    p.add_argument("--shards", type=int, default=ContentionPlan.shards)
    p.add_argument("--off", type=int, default=ContentionPlan.off, help="fen off per order")
    p.add_argument("--no-exhaust", action="store_true", help="skip the budget that runs out")
    p.add_argument("--background", choices=server.BACKGROUNDS, default=ContentionPlan.background,
                   help="worker: one `fulema worker` runs the background (production); "
                        "process: every API process runs it")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    plan = ContentionPlan(processes=tuple(a.processes), concurrency=a.concurrency,
                          seconds=a.seconds, shards=a.shards, off=a.off, exhaust=not a.no_exhaust,
                          background=a.background)
    results = asyncio.run(run(plan=plan, db=a.db, out_dir=a.out))
    return 0 if results.get("exhaustion", {}).get("overspent_fen", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
