"""Orchestration: database, baselines, the shared sandbox and receiver, then for each server
configuration the phases in order, each driven by a separate load-generator process.

Phase order matters: `create` first measures the sustainable rate, which sets the open-loop
rates of `create_fixed_rate` (half of it) and `burst_10x` (ten times it); `barcode` makes the
paid orders that `query` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import baselines, cpu, dbstats, profiling, report, server, summary
from bench.calibrate import statements_per_op
from bench.scenarios import FULL, PER_WORKER_CONCURRENCY, QUICK, SWEEP, Phase, Plan
from bench.server import ROOT, Proc

RESULTS_DIR = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "performance.md"
DB_PHASES = {"create", "create_fixed_rate", "cycle", "barcode", "query", "burst_10x"}


@dataclass
class Options:
    quick: bool = False
    db: str = "postgres"  # postgres | sqlite
    workers: list[int] = field(default_factory=lambda: [1, 2])
    servers: list[str] = field(default_factory=lambda: ["uvicorn"])
    profile: bool = True
    write_docs: bool = False
    out_dir: Path = RESULTS_DIR
    log: bool = True
    plan: Plan | None = None  # None: QUICK or FULL by `quick`
    compare: str | None = None  # an earlier result to show each figure beside (bench.summary)
    summary_only: str | None = None


def say(opts: Options, *parts: object) -> None:
    if opts.log:
        print(*parts, flush=True)


@dataclass
class Ctx:
    opts: Options
    plan: Plan
    run_dir: Path
    database_url: str
    pg_db: str | None
    sandbox: Proc
    receiver: Proc
    stamp: str
    pg_statements: bool = False
    specs: int = 0


async def loadgen(ctx: Ctx, spec: dict[str, Any]) -> dict[str, Any]:
    """One phase in its own process: python -m bench.loadgen SPEC OUT."""
    ctx.specs += 1
    return await run_loadgen(ctx.run_dir, f"{ctx.specs:02d}", spec)


async def run_loadgen(run_dir: Path, tag: str, spec: dict[str, Any]) -> dict[str, Any]:
    """python -m bench.loadgen SPEC OUT in its own process; its files are named by `tag`.
    Several may run at once (bench.burst drives two merchants side by side)."""
    spec_path = run_dir / f"spec{tag}.json"
    out_path = run_dir / f"out{tag}.json"
    spec_path.write_bytes(orjson.dumps(spec))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.loadgen",
                                                str(spec_path), str(out_path), cwd=ROOT, env=env)
    wait = max(0.0, float(spec.get("start_at", 0)) - time.time())
    limit = float(spec["duration"]) + float(spec.get("grace", 20)) + 300 + wait
    try:
        code = await asyncio.wait_for(proc.wait(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if code != 0:
        raise RuntimeError(f"load generator failed ({code}) on {spec['op']}")
    result: dict[str, Any] = orjson.loads(out_path.read_bytes())
    return result


async def run_phase(ctx: Ctx, fulema: Proc, phase: Phase, prefix: str, *,
                    idle: dict[str, float], extra: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    with_stats = ctx.pg_db is not None and phase.name in DB_PHASES
    before = await dbstats.snapshot(ctx.pg_db, statements=ctx.pg_statements) if with_stats \
        and ctx.pg_db else {}
    t0 = time.monotonic()
    cpu0 = cpu.tree_cpu(fulema.popen.pid)
    spec = {"op": phase.op, "mode": phase.mode, "concurrency": phase.concurrency,
            "duration": phase.duration, "rate": phase.rate, "max_ops": phase.max_ops,
            "server": fulema.url, "sandbox": ctx.sandbox.url, "receiver": ctx.receiver.url,
            "prefix": prefix, **(extra or {})}
    result = await loadgen(ctx, spec)
    used = cpu.tree_cpu(fulema.popen.pid) - cpu0
    wall = time.monotonic() - t0
    # the API processes' CPU per operation: what docs/scaling.md models from
    result["api_cpu_ms_per_op"] = round(used * 1000 / (result["ok"] or 1), 2)
    result["api_cores_busy"] = round(used / wall, 2)
    if with_stats and ctx.pg_db:
        await asyncio.sleep(ctx.plan.settle)
        after = await dbstats.snapshot(ctx.pg_db, statements=ctx.pg_statements)
        result["db_per_op"] = dbstats.per_op(before, after, result["ok"] or 1, idle_rate=idle,
                                             seconds=time.monotonic() - t0)
        result["db_settled"] = ctx.plan.settle >= 10
    result["duration_s"] = phase.duration
    return result


async def idle_rate(pg_db: str, *, window: float = 5.0, tries: int = 3) -> dict[str, float]:
    """The idle server's own database traffic (its job loops poll). An idle server inserts no
    row, so a window that saw inserts caught a late flush of earlier work: measure again."""
    rates: dict[str, float] = {}
    for _ in range(tries):
        a = await dbstats.snapshot(pg_db)
        await asyncio.sleep(window)
        rates = dbstats.rate(a, await dbstats.snapshot(pg_db), window)
        if rates.get("tup_inserted", 0) == 0:
            return rates
    rates["contaminated"] = 1.0
    return rates


def summarize_phase(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items()
            if k not in {"records", "unresolved", "refused_ids", "timeline"}}


async def run_config(ctx: Ctx, kind: str, workers: int, *, hot_only: bool = False
                     ) -> dict[str, Any]:
    plan, opts = ctx.plan, ctx.opts
    label = f"{kind} x{workers}"
    tag = f"{ctx.stamp[-6:]}{kind[0]}{workers}"
    say(opts, f"== {label}: starting")
    fulema = await asyncio.to_thread(
        server.start_fulema, kind, workers, database_url=ctx.database_url,
        sandbox_url=ctx.sandbox.url, data_dir=ctx.run_dir / "data",
        log=ctx.run_dir / f"fulema-{kind}-{workers}.log")
    phases: dict[str, Any] = {}
    cfg: dict[str, Any] = {"label": label, "server": kind, "workers": workers,
                           "phases": phases, "pids": fulema.serving_pids()}
    try:
        warm = Phase("warmup", "create", concurrency=8, duration=0.5 if opts.quick else 2.0)
        await loadgen(ctx, {**asdict(warm), "server": fulema.url, "sandbox": ctx.sandbox.url,
                            "receiver": ctx.receiver.url, "prefix": f"W{tag}"})
        idle: dict[str, float] = {}
        if ctx.pg_db and plan.settle and not hot_only:
            await asyncio.sleep(plan.settle)
            idle = await idle_rate(ctx.pg_db)
            cfg["idle_db_rate_per_s"] = {k: round(v, 2) for k, v in idle.items()}
        stats_ctx = ctx if not hot_only else Ctx(**{**ctx.__dict__, "pg_db": None})

        async def go(phase: Phase, code: str, **extra: Any) -> dict[str, Any]:
            say(opts, f"   {phase.name} ({phase.mode}, {phase.duration:g} s"
                      + (f", {phase.rate:.0f}/s" if phase.rate else f", {phase.concurrency} conc")
                      + ")")
            r = await run_phase(stats_ctx, fulema, phase, f"B{tag}{code}", idle=idle, extra=extra)
            phases[phase.name] = summarize_phase(r)
            say(opts, f"      {r['throughput']:.1f}/s p99 {r['latency_ms'].get('p99')} ms "
                      f"errors {r['errors']} gen-cpu {r['generator_cpu_util']:.0%}")
            return r

        conc = PER_WORKER_CONCURRENCY * workers
        await go(Phase("ping", "ping", concurrency=64, duration=plan.ping), "p")
        if plan.sweep and not hot_only:
            for n in SWEEP:
                await go(Phase(f"create_c{n * workers}", "create", concurrency=n * workers,
                               duration=plan.sweep), f"s{n}")
            if ctx.pg_db:
                await asyncio.sleep(plan.settle)  # the sweep's counters must not leak into create
        create = await go(Phase("create", "create", concurrency=conc, duration=plan.create), "c")
        sustainable = max(1.0, float(create["throughput"]))
        if not hot_only:
            await go(Phase("create_fixed_rate", "create", mode="open", duration=plan.fixed,
                           rate=sustainable / 2), "f", pool=64)
        await go(Phase("cycle", "cycle", concurrency=plan.cycle_concurrency * workers,
                       duration=plan.cycle), "y")
        if hot_only:
            return cfg
        paid = await go(Phase("barcode", "barcode", concurrency=conc, duration=plan.barcode), "b")
        await go(Phase("query", "query", concurrency=conc, duration=plan.query), "q",
                 order_ids=[r["id"] for r in paid["records"]][:5000])
        prefix = f"B{tag}x"
        burst = await go(Phase("burst_10x", "burst", mode="open", duration=plan.burst,
                               rate=sustainable * 10), "x", pool=256, retry_failed=True,
                         grace=30.0, timeout=10.0)
        found = await dbstats.orders_by_prefix(ctx.database_url, prefix)
        phases["burst_10x"]["lost_check"] = dbstats.lost_check(burst, found, prefix)
        say(opts, f"      lost check: {phases['burst_10x']['lost_check']}")
        return cfg
    finally:
        server.stop(fulema)


async def profile_create(ctx: Ctx) -> dict[str, Any]:
    """py-spy on the single worker while it serves order create."""
    fulema = server.start_fulema("uvicorn", 1, database_url=ctx.database_url,
                                 sandbox_url=ctx.sandbox.url, data_dir=ctx.run_dir / "data",
                                 log=ctx.run_dir / "fulema-profile.log")
    try:
        pid = fulema.serving_pids()[0]
        raw = ctx.run_dir / "profile-create.txt"
        rec = profiling.start_record(pid, ctx.plan.profile, raw)
        if isinstance(rec, str):
            return {"available": False, "reason": rec}
        await asyncio.sleep(0.5)
        phase = Phase("profile", "create", concurrency=PER_WORKER_CONCURRENCY,
                      duration=ctx.plan.profile)
        result = await loadgen(ctx, {**asdict(phase), "server": fulema.url,
                                     "sandbox": ctx.sandbox.url, "receiver": ctx.receiver.url,
                                     "prefix": f"P{ctx.stamp[-6:]}"})
        _, err = await asyncio.to_thread(rec.communicate, None, ctx.plan.profile + 60)
        if rec.returncode != 0 or not raw.exists():
            return {"available": False, "reason": f"py-spy failed: {err.decode()[-500:]}"}
        return {"available": True, "tool": "py-spy record --rate 200 --nonblocking",
                "throughput_while_profiled": result["throughput"],
                **profiling.summarize(raw)}
    finally:
        server.stop(fulema)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "platform": platform.platform()}


async def run(opts: Options) -> dict[str, Any]:
    plan = opts.plan or (QUICK if opts.quick else FULL)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results: dict[str, Any] = {"stamp": stamp, "machine": machine(),
                               "options": {**asdict(opts), "out_dir": str(opts.out_dir),
                                           "plan": None},
                               "plan": asdict(plan), "baselines": {}, "configs": []}
    with tempfile.TemporaryDirectory(prefix="fulema-bench-") as tmp:
        run_dir = Path(tmp)
        (run_dir / "data").mkdir()
        pg_db: str | None = None
        if opts.db == "postgres":
            why = dbstats.postgres_available()
            if why:
                raise RuntimeError(f"PostgreSQL is needed for --db postgres: {why}")
            pg_db = dbstats.BENCH_DB
            dbstats.recreate_database(pg_db)
            database_url = dbstats.pg_url(pg_db)
        else:
            database_url = dbstats.sqlite_url(run_dir / "bench.db")
        say(opts, f"migrating {database_url}")
        results["schema"] = await dbstats.migrate(database_url)
        say(opts, f"schema: {results['schema']}")
        if pg_db:
            say(opts, "pgbench baseline ...")
            results["baselines"]["pgbench_before"] = baselines.run_pgbench(plan.pgbench,
                                                                    scale=plan.pgbench_scale)
        # both start while the statements are counted in process: startup is most of a quick run
        sandbox = server.start_sandbox(data_dir=run_dir / "data", log=run_dir / "sandbox.log",
                                       wait=False)
        receiver: Proc | None = None
        try:
            receiver = server.start_receiver(log=run_dir / "receiver.log", wait=False)
            ctx = Ctx(opts, plan, run_dir, database_url, pg_db, sandbox, receiver, stamp)
            if pg_db:
                ctx.pg_statements = await dbstats.has_pg_stat_statements(pg_db)
            say(opts, "counting SQL statements per operation in process ...")
            results["statements_per_op_counted"] = await statements_per_op(
                database_url, run_dir / "data", n=5 if opts.quick else 20)
            # in a thread: the harness's own event loop must keep running meanwhile
            await asyncio.to_thread(server.wait_ready, sandbox)
            await asyncio.to_thread(server.wait_ready, receiver)
            results["statements_method"] = _method(ctx)
            for kind in _servers(opts, results):
                for workers in opts.workers:
                    if opts.db == "sqlite" and workers > 1:
                        continue  # one SQLite writer: more processes only queue on its lock
                    hot_only = kind != opts.servers[0]
                    results["configs"].append(await run_config(ctx, kind, workers,
                                                               hot_only=hot_only))
            if opts.profile and plan.profile and pg_db:
                say(opts, "profiling order create with py-spy ...")
                results["profile"] = await profile_create(ctx)
            if pg_db and not opts.quick:
                say(opts, "pgbench baseline again ...")
                results["baselines"]["pgbench_after"] = baselines.run_pgbench(plan.pgbench,
                                                                    scale=plan.pgbench_scale)
            results["receiver_stats"] = _receiver_stats(receiver)
        finally:
            if receiver is not None:
                server.stop(receiver)
            server.stop(sandbox)
    _finish(results)
    path = report.write_json(results, opts.out_dir, stamp)
    results["json_path"] = str(path)
    block = report.render(results)
    say(opts, "\n" + block + f"\nresults: {path}")
    if opts.write_docs:
        report.write_docs(DOC, block)
    if opts.log:
        before = summary.load(opts.compare, opts.out_dir) if opts.compare else None
        results["summary"] = summary.render(results, before)
    return results


def _servers(opts: Options, results: dict[str, Any]) -> list[str]:
    kinds = []
    for kind in opts.servers:
        if kind == "granian" and not server.granian_available() \
                and not server.try_install("granian"):
            results["granian"] = "unavailable: `pip install granian` failed"
            continue
        kinds.append(kind)
    if "granian" in kinds and "granian" not in results:
        results["granian"] = ("measured (hot path only: ping, create, cycle)"
                              if kinds[0] != "granian" else "measured")
    return kinds


def _method(ctx: Ctx) -> str:
    counted = ("counted exactly in process (`StatementCounter.total` delta / operations, the "
               "same app on the same database through httpx.ASGITransport: bench/calibrate.py)")
    if ctx.pg_db is None:
        return counted + "; SQLite has no server-side counters"
    live = ("live run: `pg_stat_statements` calls" if ctx.pg_statements else
            "live run: pg_stat_statements is not loaded (not in shared_preload_libraries), so "
            "`pg_stat_database` deltas (xact_commit = transactions, tup_inserted = rows) over "
            "each phase, less the idle server's rate, divided by successful operations")
    return f"{counted}; {live}"


def _receiver_stats(receiver: Proc) -> dict[str, Any]:
    import httpx

    with contextlib.suppress(httpx.HTTPError):
        doc: dict[str, Any] = httpx.get(f"{receiver.url}/stats", timeout=5).json()
        return doc
    return {}


def _finish(results: dict[str, Any]) -> None:
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    b = results["baselines"]
    runs = [r["tps"] for r in (b.get("pgbench_before"), b.get("pgbench_after"))
            if r and r.get("tps")]
    if runs:
        first = b["pgbench_before"]
        b["pgbench"] = {"tps": round(sum(runs) / len(runs), 1), "runs": runs,
                        "command": first.get("command")}
    tps = b.get("pgbench", {}).get("tps")
    for cfg in results["configs"]:
        cfg["goals"] = report.goals(cfg, tps)
