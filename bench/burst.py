"""`python -m bench.burst`: one merchant bursts at 10x the sustainable create rate while a
second merchant keeps its normal rate, against the real server with its rate limits ON.

One run, in order (issue 13's burst test):
1. a calibration server (limits on, per-app limits out of reach) measures merchant A's
   sustainable create rate S (closed loop, as `python -m bench` does);
2. the measured server starts with the limits chosen from S (`limits_env`, printed);
3. unloaded: A alone, then B alone, open loop at their normal rate -> each one's p99;
4. burst: A open loop at 10 x S for `burst` seconds while B keeps its normal rate, and A
   goes back to its normal rate right after (a third generator that starts on the same wall
   clock), so the recovery is seen second by second;
5. every order A or B was answered 200 for is looked up in the database (none lost), and no
   refused request left an order behind.

Each merchant sends its own `X-Forwarded-For` through a trusted proxy (127.0.0.1), as two
merchants behind a load balancer would, so the per-IP bucket sees two sources. The figures
and the goals are printed with the load average; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import cpu, dbstats, server
from bench.burst_report import analyse, cpu_figures, render
from bench.harness import RESULTS_DIR, run_loadgen
from bench.scenarios import PER_WORKER_CONCURRENCY
from bench.server import Proc

IP_A, IP_B = "198.51.100.10", "203.0.113.20"  # documentation addresses (RFC 5737)


@dataclass(frozen=True)
class BurstPlan:
    calibrate: float = 8.0  # closed-loop seconds that measure S
    # long enough for a p99 that is not just the maximum: >= 100 answers at the normal rate
    unloaded: float = 15.0  # each merchant alone at its normal rate
    burst: float = 12.0  # A at 10 x S
    recovery: float = 10.0  # A back at its normal rate
    factor: float = 10.0
    normal_share: float = 0.25  # each merchant's normal rate, as a share of S
    # The per-app create limit as a share of S: one merchant at its limit plus the other at its
    # normal rate is 0.6 S (docs/operations.md, "Setting the limits from S"; at 0.5 + 0.25 the
    # accepted answers queued to 5-78x their unloaded p99 on a loaded machine).
    app_share: float = 0.35
    # The per-IP limit as a multiple of the per-app one: close to it, so a burst is refused
    # before the signature, at about a third of the server CPU of a refusal after it.
    ip_factor: float = 1.25
    warmup: float = 2.0
    idle: float = 4.0  # the server's CPU with no request (its background loops)
    workers: int = 1  # uvicorn worker processes (their limits shared through `redis_url`)
    redis_url: str = ""  # FULEMA_RATELIMIT_REDIS_URL of the servers ("": in process)


QUICK = BurstPlan(calibrate=1.0, unloaded=1.0, burst=1.0, recovery=1.5, warmup=0.5, idle=0.5)


@dataclass(frozen=True)
class Limits:
    app_rate: float
    app_burst: int
    app_concurrency: int
    ip_rate: float
    global_rate: float

    def env(self) -> dict[str, str]:
        """FULEMA_RATELIMIT_* for the measured server; the rest keep their defaults."""
        return {"FULEMA_RATELIMIT_ENABLED": "true",
                "FULEMA_RATELIMIT_TRUSTED_PROXIES": '["127.0.0.1"]',
                "FULEMA_RATELIMIT_APP_CREATE_RATE": f"{self.app_rate:.1f}",
                "FULEMA_RATELIMIT_APP_CREATE_BURST": str(self.app_burst),
                "FULEMA_RATELIMIT_APP_CONCURRENCY": str(self.app_concurrency),
                "FULEMA_RATELIMIT_IP_API_RATE": f"{self.ip_rate:.1f}",
                "FULEMA_RATELIMIT_IP_API_BURST": str(max(1, round(self.ip_rate))),
                "FULEMA_RATELIMIT_GLOBAL_RATE": f"{self.global_rate:.1f}",
                "FULEMA_RATELIMIT_GLOBAL_BURST": str(max(1, round(self.global_rate)))}


UNLIMITED = Limits(app_rate=1e6, app_burst=1_000_000, app_concurrency=100_000, ip_rate=1e6,
                   global_rate=1e6)


def choose_limits(sustainable: float, p99_s: float, plan: BurstPlan) -> Limits:
    """Per-app create rate = `app_share` x S: a merchant at its limit leaves the rest of the
    process to the others (A at its limit plus B at its normal rate is `app_share +
    normal_share` of S: the lower, the less the accepted requests queue; it must stay above
    `normal_share`, or B at its normal rate is refused by its own bucket). The burst is half a
    second of that rate: a merchant's short spike passes, a sustained one is refused. The
    app's concurrency share carries its rate at twice the calibration's p99 (in flight = rate
    x latency), at least 8 (it is enforced only while the process is filling up, on the app
    holding the most: `Protection.over_share`). The per-IP bucket (before the signature: the
    cheapest refusal) is `ip_factor` x the app rate (default twice); the global bucket is out
    of the way (it is shared: a burst that drained it would refuse B too)."""
    app_rate = max(1.0, sustainable * plan.app_share)
    return Limits(app_rate=app_rate, app_burst=max(2, round(app_rate / 2)),
                  app_concurrency=max(8, math.ceil(app_rate * p99_s * 2)),
                  ip_rate=plan.ip_factor * app_rate,
                  global_rate=max(1000.0, 40 * sustainable))


@dataclass
class Run:
    run_dir: Path
    database_url: str
    sandbox: Proc
    b_app: tuple[str, str]
    n: int = 0
    workers: int = 1
    shared: dict[str, str] = field(default_factory=dict)  # the shared limits' settings

    async def gen(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        return await run_loadgen(self.run_dir, f"b{self.n:02d}", spec)


def _merchant(run: Run, who: str) -> dict[str, Any]:
    if who == "A":
        return {"headers": {"X-Forwarded-For": IP_A}}
    app_id, secret = run.b_app
    return {"app_id": app_id, "secret": secret, "headers": {"X-Forwarded-For": IP_B}}


def _spec(run: Run, fulema: Proc, who: str, prefix: str, **kw: Any) -> dict[str, Any]:
    return {"op": "create", "server": fulema.url, "sandbox": run.sandbox.url,
            "prefix": prefix, "pool": 256, "timeout": 10.0, "grace": 15.0,
            **_merchant(run, who), **kw}


async def seed_second_app(database_url: str, data_dir: Path) -> tuple[str, str]:
    """Merchant B, onboarded through the real services as an operator would: (app id, secret).
    Its secret and account are sealed with the keyring in `data_dir`, the one the servers
    start with (a keyring of this process alone would leave them unreadable there)."""
    from fulema.core import vault
    from fulema.core.config import Settings
    from fulema.core.db import Database
    from fulema.merchants import service as merchants

    settings = Settings(database_url=database_url, data_dir=data_dir,
                        environment="development")
    vault.install(settings.keyring())
    db = Database(database_url)
    try:
        m = await merchants.apply_merchant(
            db, name="基准测试第二商户", short_name="第二商户", licence_no="91330100MA2BENCHB8",
            legal_person="李四", settlement_account="6230910000000000002",
            settlement_account_name="基准测试第二商户", contact_name="李四",
            contact_phone="13900000000", mcc="5812", operator="bench")
        await merchants.approve(db, merchant_id=m.id, operator="bench")
        await merchants.activate(db, merchant_id=m.id, operator="bench")
        issued = await merchants.create_app_credential(db, merchant_id=m.id, operator="bench")
    finally:
        await db.dispose()
    return issued.app.app_id, issued.secret


async def calibrate(run: Run, plan: BurstPlan, tag: str) -> dict[str, Any]:
    """S: merchant A's closed-loop create throughput on a server whose limits are on but out
    of reach (so the limiter's own cost is in S)."""
    fulema = await _start(run, UNLIMITED, "calibrate")
    try:
        await run.gen(_spec(run, fulema, "A", f"W{tag}c", mode="closed", concurrency=8,
                            duration=plan.warmup))
        return await run.gen(_spec(run, fulema, "A", f"C{tag}", mode="closed",
                                   concurrency=PER_WORKER_CONCURRENCY, duration=plan.calibrate))
    finally:
        server.stop(fulema)


async def _start(run: Run, limits: Limits, name: str, *, tries: int = 3) -> Proc:
    """The server; started again on another port if a neighbour took the free one first
    (other sessions share this machine)."""
    for attempt in range(tries):
        try:
            return await asyncio.to_thread(
                server.start_fulema, "uvicorn", run.workers, database_url=run.database_url,
                sandbox_url=run.sandbox.url, data_dir=run.run_dir / "data",
                log=run.run_dir / f"fulema-{name}.log", extra_env={**limits.env(), **run.shared})
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


async def measured(run: Run, plan: BurstPlan, limits: Limits, sustainable: float, tag: str
                   ) -> dict[str, Any]:
    normal = max(1.0, sustainable * plan.normal_share)
    fulema = await _start(run, limits, "limited")
    phases: dict[str, Any] = {}
    cpu_use: dict[str, Any] = {}
    try:
        await run.gen(_spec(run, fulema, "A", f"W{tag}m", mode="closed", concurrency=4,
                            duration=plan.warmup))
        await asyncio.sleep(1.0)  # the warm-up's bucket debt refills
        with server_cpu(fulema, cpu_use, "idle"):  # its own job loops, no request
            await asyncio.sleep(plan.idle)
        for who in ("A", "B"):
            with server_cpu(fulema, cpu_use, f"{who}_alone"):
                phases[f"{who}_alone"] = await run.gen(_spec(
                    run, fulema, who, f"{who}{tag}u", mode="open", rate=normal,
                    duration=plan.unloaded))
        await asyncio.sleep(1.0)
        start = time.time() + 3.0  # all three generators are up and waiting by then
        cpu_use["burst"] = asyncio.create_task(_cpu_over(fulema, start, plan.burst))
        a_burst, b_during, a_after = await asyncio.gather(
            run.gen(_spec(run, fulema, "A", f"A{tag}x", mode="open",
                          rate=sustainable * plan.factor, duration=plan.burst, start_at=start,
                          timeline=True)),
            run.gen(_spec(run, fulema, "B", f"B{tag}x", mode="open", rate=normal,
                          duration=plan.burst + plan.recovery, start_at=start, timeline=True)),
            run.gen(_spec(run, fulema, "A", f"A{tag}r", mode="open", rate=normal,
                          duration=plan.recovery, start_at=start + plan.burst, timeline=True)))
        phases.update(A_burst=a_burst, B_during=b_during, A_recovery=a_after)
        cpu_use["burst"] = await cpu_use["burst"]
    finally:
        server.stop(fulema)
    lost = {}
    for name, prefix in (("A_burst", f"A{tag}x"), ("B_during", f"B{tag}x"),
                         ("A_recovery", f"A{tag}r")):
        found = await dbstats.orders_by_prefix(run.database_url, prefix)
        check = dbstats.lost_check(phases[name], found, prefix)
        check["refused_in_db"] = sum(1 for i in phases[name].get("refused_ids", [])
                                     if f"{prefix}{i:08d}" in found)
        lost[name] = check
    return {"normal_rate": normal, "phases": phases, "lost_check": lost,
            "server_cpu_s": cpu_use}


@contextlib.contextmanager
def server_cpu(fulema: Proc, into: dict[str, Any], name: str) -> Iterator[None]:
    """The server's CPU seconds and wall seconds over the block: is it busy or starved?"""
    pid = fulema.popen.pid
    cpu0, wait0, t0 = cpu.tree_cpu(pid), cpu.tree_runqueue_wait(pid), time.monotonic()
    yield
    into[name] = {"cpu_s": round(cpu.tree_cpu(pid) - cpu0, 3),
                  "runqueue_wait_s": round(cpu.tree_runqueue_wait(pid) - wait0, 3),
                  "wall_s": round(time.monotonic() - t0, 3)}


async def _cpu_over(fulema: Proc, start: float, seconds: float) -> dict[str, Any]:
    """The server's CPU over the burst's own window, from its first arrival to its last."""
    await asyncio.sleep(max(0.0, start - time.time()))
    into: dict[str, Any] = {}
    with server_cpu(fulema, into, "burst"):
        await asyncio.sleep(seconds)
    return dict(into["burst"])


async def run(*, quick: bool = False, db: str = "postgres", plan: BurstPlan | None = None,
              out_dir: Path = RESULTS_DIR, log: bool = True, keep: bool = False
              ) -> dict[str, Any]:
    plan = plan or (QUICK if quick else BurstPlan())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    tag = stamp[-6:]
    results: dict[str, Any] = {"stamp": stamp, "plan": asdict(plan), "db": db,
                               "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    folder = (contextlib.nullcontext(tempfile.mkdtemp(prefix="fulema-burst-")) if keep
              else tempfile.TemporaryDirectory(prefix="fulema-burst-"))
    with folder as tmp:
        run_dir = Path(tmp)
        results["run_dir"] = tmp  # server logs, specs and raw answers (kept with --keep)
        (run_dir / "data").mkdir()
        if db == "postgres":
            why = dbstats.postgres_available()
            if why:
                raise RuntimeError(f"PostgreSQL is needed for --db postgres: {why}")
            dbstats.recreate_database(dbstats.BENCH_DB)
            database_url = dbstats.pg_url(dbstats.BENCH_DB)
        else:
            database_url = dbstats.sqlite_url(run_dir / "bench.db")
        await dbstats.migrate(database_url)
        b_app = await seed_second_app(database_url, run_dir / "data")
        sandbox = server.start_sandbox(data_dir=run_dir / "data", log=run_dir / "sandbox.log")
        try:
            # every server of this run shares one set of buckets; another run's keys differ
            shared = ({"FULEMA_RATELIMIT_REDIS_URL": plan.redis_url,
                       "FULEMA_RATELIMIT_REDIS_PREFIX": f"fulema:rl:burst{stamp}:"}
                      if plan.redis_url else {})
            state = Run(run_dir, database_url, sandbox, b_app, workers=plan.workers,
                        shared=shared)
            cal = await calibrate(state, plan, tag)
            sustainable = max(1.0, float(cal["throughput"]))
            limits = choose_limits(sustainable, (cal["latency_ms"]["p99"] or 100) / 1000, plan)
            results.update(sustainable_rate=sustainable, calibration=_brief(cal),
                           limits=asdict(limits), limits_env=limits.env())
            if log:
                print(f"sustainable create rate S = {sustainable:.1f}/s; limits {limits}",
                      flush=True)
            m = await measured(state, plan, limits, sustainable, tag)
        finally:
            server.stop(sandbox)
    results["normal_rate"] = m["normal_rate"]
    results["lost_check"] = m["lost_check"]
    results["server_cpu"] = cpu_figures(m["server_cpu_s"], m["phases"])
    results["phases"] = {k: _brief(v) for k, v in m["phases"].items()}
    results["analysis"] = analyse(m["phases"], m["lost_check"], plan=plan)
    results["limiter_cost"] = await _limiter_cost()
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    path = _write(results, out_dir / f"burst-{stamp}.json")
    results["json_path"] = str(path)
    if log:
        print(render(results) + f"\nresults: {path}", flush=True)
    return results


async def _limiter_cost() -> dict[str, Any]:
    """bench.limiter_cost in its own process (it builds an application, which installs a
    keyring: not in this one, which may be a test's)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.limiter_cost", "--json", stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{server.ROOT}{os.pathsep}{server.SRC}"})
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        return {"error": f"bench.limiter_cost exited with {proc.returncode}"}
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return result


def _write(results: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return path


def _brief(phase: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in phase.items()
            if k not in {"records", "unresolved", "refused_ids", "timeline"}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="about a second per phase (smoke)")
    p.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--keep", action="store_true", help="keep the run folder (server logs)")
    p.add_argument("--app-share", type=float, default=BurstPlan.app_share,
                   help="per-app create limit as a share of the sustainable rate")
    p.add_argument("--ip-factor", type=float, default=BurstPlan.ip_factor,
                   help="per-IP limit as a multiple of the per-app one (refusals before the "
                        "signature cost the server about a third of those after it)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--redis-url", default="",
                   help="share the limits between the workers through this Redis")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    plan = replace(QUICK if a.quick else BurstPlan(), app_share=a.app_share,
                   ip_factor=a.ip_factor, workers=a.workers, redis_url=a.redis_url)
    asyncio.run(run(plan=plan, db=a.db, out_dir=a.out, keep=a.keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
