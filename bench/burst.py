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

`--front nginx` runs steps 2-5 through nginx started on a free port with the configuration
`fulema gateway nginx-config` writes from the same limits (bench/front.py), the in-process
limits staying on behind it as the second line; `--front none,nginx` runs both shapes one
after the other against the same S, and prints their goals side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from bench import burst_trace, cpu, dbstats, front, server
from bench.burst_report import analyse, cpu_figures, render
from bench.burst_sizing import UNLIMITED, Budget, Costs, Limits, cpu_limits, share_limits
from bench.harness import RESULTS_DIR, run_loadgen
from bench.scenarios import DEMO_APP_ID, PER_WORKER_CONCURRENCY
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
    # normal rate is 0.6 S (docs/operations.md, "The share rule"; at 0.5 + 0.25 the
    # accepted answers queued to 5-78x their unloaded p99 on a loaded machine).
    app_share: float = 0.35
    # The per-IP limit as a multiple of the per-app one: close to it, so a burst is refused
    # before the signature, at about a third of the server CPU of a refusal after it.
    ip_factor: float = 1.25
    warmup: float = 2.0
    idle: float = 4.0  # the server's CPU with no request (its background loops)
    workers: int = 1  # uvicorn worker processes (their limits shared through `redis_url`)
    redis_url: str = ""  # FULEMA_RATELIMIT_REDIS_URL of the servers ("": in process)
    # the shapes measured, in order: "none" (the API process alone), "nginx" (the front),
    # either with changes after "+": "nginx+burst=0.05+conn=1" (`parse_shape`)
    fronts: tuple[str, ...] = ("none",)
    rounds: int = 1  # the shapes measured this many times, alternated (none, nginx, none, ...)
    # "process": the background in the API process (the embedded default); "worker": API
    # processes with FULEMA_RUN_BACKGROUND=false beside one `fulema worker` (production)
    background: str = "process"
    # "cpu": the limits from the CPU per create at the usual rate and the cores below
    # (bench.burst_sizing); "share": from the closed-loop S alone (`app_share`)
    sizing: str = "cpu"
    api_cores: float = 1.0
    worker_cores: float = 0.5
    utilisation: float = 0.5
    burst_seconds: float = 0.5  # an app's bucket: this much of its rate at once

    def budget(self) -> Budget:
        return Budget(api_cores=self.api_cores, worker_cores=self.worker_cores,
                      utilisation=self.utilisation, burst_seconds=self.burst_seconds)


SHAPE_LETTERS = "DFGHJKMNPQ"  # the shapes' letters in the order prefixes, by position
SHAPE_CHANGES = {"burst": float, "fburst": float, "conn": float, "keepalive": int,
                 "share": float}


def parse_shape(shape: str) -> tuple[str, dict[str, float]]:
    """"nginx+burst=0.05+conn=1" -> ("nginx", {"burst": 0.05, "conn": 1.0}): `burst` the
    app's bucket in seconds of its rate (both lines), `fburst` the same at the front only (the
    in-process bucket keeps its burst: `FrontOptions.app_burst_seconds`), `conn` the front's
    concurrency ceiling as a multiple of APP_CONCURRENCY, `keepalive` the front's idle
    connections to the API process, `share` the limits by the share rule at this share of S
    instead (the A/B of the sizing rules)."""
    base, *changes = shape.split("+")
    out: dict[str, float] = {}
    for change in changes:
        key, _, value = change.partition("=")
        if key not in SHAPE_CHANGES or not value:
            raise ValueError(f"{shape!r}: a change is one of {sorted(SHAPE_CHANGES)}=value")
        out[key] = SHAPE_CHANGES[key](value)
    if base not in ("none", "nginx") or (base == "none" and set(out) - {"burst", "share"}):
        raise ValueError(f"{shape!r}: none or nginx (conn, fburst, keepalive only with nginx)")
    return base, out
QUICK = BurstPlan(calibrate=1.0, unloaded=1.0, burst=1.0, recovery=1.5, warmup=0.5, idle=0.5)


def choose_limits(sustainable: float, p99_s: float, plan: BurstPlan) -> Limits:
    """The share rule (`--sizing share`): bench.burst_sizing.share_limits with the plan's
    app share and IP factor."""
    return share_limits(sustainable, p99_s, app_share=plan.app_share,
                        ip_factor=plan.ip_factor)


@dataclass
class Run:
    run_dir: Path
    database_url: str
    sandbox: Proc
    b_app: tuple[str, str]
    n: int = 0
    workers: int = 1
    shared: dict[str, str] = field(default_factory=dict)  # the shared limits' settings
    background: str = "process"
    pg_database: str = ""  # this run's PostgreSQL database ("" on SQLite)
    calibration_p99_s: float = 0.1  # the closed loop's p99 (the share rule's concurrency)

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


async def calibrate(run: Run, plan: BurstPlan, tag: str
                    ) -> tuple[dict[str, Any], Costs, dict[str, Any]]:
    """S, merchant A's closed-loop create throughput on a server whose limits are on but out
    of reach (so the limiter's own cost is in S); then, once the background has caught up,
    the CPU per create of the API process and of the worker apart, open loop at the usual
    rate (S x `normal_share`), beyond each one's idle use, in the shape measured after."""
    fulema = await _start(run, UNLIMITED, "calibrate")
    try:
        await run.gen(_spec(run, fulema, "A", f"W{tag}c", mode="closed", concurrency=8,
                            duration=plan.warmup))
        closed = await run.gen(_spec(run, fulema, "A", f"C{tag}", mode="closed",
                                     concurrency=PER_WORKER_CONCURRENCY,
                                     duration=plan.calibrate))
        usual = max(1.0, float(closed["throughput"]) * plan.normal_share)
        pids = {"api": fulema.popen.pid,
                **({"worker": fulema.worker.popen.pid} if fulema.worker else {})}
        settled = await _settle(pids, limit=4 * plan.idle + 10)
        idle = await _cores(pids, plan.idle)
        before, t0 = {k: cpu.tree_cpu(p) for k, p in pids.items()}, time.monotonic()
        opened = await run.gen(_spec(run, fulema, "A", f"O{tag}", mode="open", rate=usual,
                                     duration=plan.calibrate))
        await asyncio.sleep(min(2.0, plan.idle))  # the worker's part comes a little later
        wall = time.monotonic() - t0
        used = {k: cpu.tree_cpu(p) - before[k] - idle[k] * wall for k, p in pids.items()}
    finally:
        server.stop(fulema)
    n = max(1, int(opened["ok"]))
    costs = Costs(rate=usual, creates=int(opened["ok"]),
                  api_ms=max(0.01, used["api"] / n * 1000),
                  worker_ms=max(0.01, used["worker"] / n * 1000) if "worker" in used else None,
                  p99_ms=float(opened["latency_ms"]["p99"] or 100.0))
    return closed, costs, {"settled_after_s": settled, "idle_cores": idle,
                           "open_loop": _brief(opened)}


async def _cores(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process tree's cores busy over `seconds`."""
    before, t0 = {k: cpu.tree_cpu(p) for k, p in pids.items()}, time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    return {k: round((cpu.tree_cpu(p) - before[k]) / wall, 3) for k, p in pids.items()}


async def _settle(pids: dict[str, int], *, limit: float) -> float:
    """Wait until the processes are nearly idle (the worker has consumed the closed loop's
    events), at most `limit` seconds; returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if sum((await _cores(pids, 1.0)).values()) < 0.15:
            break
    return round(time.monotonic() - t0, 1)


async def _start(run: Run, limits: Limits, name: str, *, tries: int = 3) -> Proc:
    """The server; started again on another port if a neighbour took the free one first
    (other sessions share this machine)."""
    for attempt in range(tries):
        try:
            return await asyncio.to_thread(
                server.start_fulema, "uvicorn", run.workers, database_url=run.database_url,
                sandbox_url=run.sandbox.url, data_dir=run.run_dir / "data",
                log=run.run_dir / f"fulema-{name}.log", extra_env={**limits.env(), **run.shared},
                background=run.background)
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


async def measured(run: Run, plan: BurstPlan, limits: Limits, sustainable: float, tag: str,
                   *, shape: str = "none") -> dict[str, Any]:
    """Steps 2-5 for one shape: the API process alone, or behind the nginx front (the
    generators then send to nginx, and nginx's own CPU is measured beside the server's);
    the shape's changes (`parse_shape`) applied to the limits and the front."""
    base, changes = parse_shape(shape)
    if "share" in changes:
        limits = share_limits(sustainable, run.calibration_p99_s, app_share=changes["share"],
                              ip_factor=plan.ip_factor)
    if "burst" in changes:
        limits = replace(limits, app_burst=max(1, round(limits.app_rate * changes["burst"])))
    normal = max(1.0, sustainable * plan.normal_share)
    fulema = await _start(run, limits, f"limited-{tag}")
    phases: dict[str, Any] = {}
    cpu_use: dict[str, Any] = {}
    worker_use: dict[str, Any] = {}
    nginx: Proc | None = None
    front_cpu: dict[str, Any] = {}
    folder = run.run_dir / f"front-{tag}"
    try:
        if base == "nginx":
            nginx = await asyncio.to_thread(
                front.start, folder, limits.section(), [f"127.0.0.1:{fulema.port}"],
                conn_factor=changes.get("conn", 4.0), keepalive=int(changes.get("keepalive", 64)),
                app_burst_seconds=changes.get("fburst", 0.0))
        entry = nginx or fulema  # where the merchants send
        await run.gen(_spec(run, entry, "A", f"W{tag}m", mode="closed", concurrency=4,
                            duration=plan.warmup))
        await asyncio.sleep(1.0)  # the warm-up's bucket debt refills
        with server_cpu(fulema, cpu_use, "idle"), worker_cpu(fulema, worker_use, "idle"):
            await asyncio.sleep(plan.idle)  # their own job loops, no request
        for who in ("A", "B"):
            with server_cpu(fulema, cpu_use, f"{who}_alone"), \
                    worker_cpu(fulema, worker_use, f"{who}_alone"):
                phases[f"{who}_alone"] = await run.gen(_spec(
                    run, entry, who, f"{who}{tag}u", mode="open", rate=normal,
                    duration=plan.unloaded))
        await asyncio.sleep(1.0)
        start = time.time() + 3.0  # all three generators are up and waiting by then
        # the warm-up's refusals are not the burst's
        refused_before = front.refusals(folder)
        b_before = front.refusals(folder, app_id=run.b_app[0])
        cpu_use["burst"] = asyncio.create_task(_cpu_over(fulema, start, plan.burst))
        if fulema.worker is not None:
            worker_use["burst"] = asyncio.create_task(_cpu_over(fulema.worker, start,
                                                                plan.burst))
        if nginx is not None:
            front_cpu["burst"] = asyncio.create_task(_cpu_over(nginx, start, plan.burst))
        trace = asyncio.create_task(_trace_over(run, fulema, nginx, start, plan.burst))
        a_burst, b_during, a_after = await asyncio.gather(
            run.gen(_spec(run, entry, "A", f"A{tag}x", mode="open",
                          rate=sustainable * plan.factor, duration=plan.burst, start_at=start,
                          timeline=True)),
            run.gen(_spec(run, entry, "B", f"B{tag}x", mode="open", rate=normal,
                          duration=plan.burst + plan.recovery, start_at=start, timeline=True)),
            run.gen(_spec(run, entry, "A", f"A{tag}r", mode="open", rate=normal,
                          duration=plan.recovery, start_at=start + plan.burst, timeline=True)))
        phases.update(A_burst=a_burst, B_during=b_during, A_recovery=a_after)
        for used in (cpu_use, worker_use, front_cpu):
            if "burst" in used:
                used["burst"] = await used["burst"]
        traced = await trace
    finally:
        if nginx is not None:
            server.stop(nginx)
        server.stop(fulema)
    if nginx is not None:  # its logs are flushed once it has stopped
        traced["front"] = burst_trace.front_times(
            burst_trace.timing_lines(folder / front.TIMING_LOG, start, start + plan.burst),
            {"A": DEMO_APP_ID, "B": run.b_app[0]})
    traced["generators_cpu_s"] = {k: phases[k].get("generator_cpu_s")
                                  for k in ("A_burst", "B_during", "A_recovery")}
    lost = {}
    for name, prefix in (("A_burst", f"A{tag}x"), ("B_during", f"B{tag}x"),
                         ("A_recovery", f"A{tag}r")):
        found = await dbstats.orders_by_prefix(run.database_url, prefix)
        check = dbstats.lost_check(phases[name], found, prefix)
        check["refused_in_db"] = sum(1 for i in phases[name].get("refused_ids", [])
                                     if f"{prefix}{i:08d}" in found)
        lost[name] = check
    return {"normal_rate": normal, "phases": phases, "lost_check": lost,
            "limits": asdict(limits), "changes": changes,
            "server_cpu_s": cpu_use, "worker_cpu_s": worker_use, "front_cpu_s": front_cpu,
            "trace": traced,
            "front_refusals": ({**{k: v - refused_before[k]
                                   for k, v in front.refusals(folder).items()},
                                **{f"B_{k}": v - b_before[k] for k, v in
                                   front.refusals(folder, app_id=run.b_app[0]).items()}}
                               if nginx is not None else None)}


async def _trace_over(run: Run, fulema: Proc, nginx: Proc | None, start: float,
                      seconds: float) -> dict[str, Any]:
    """Over the burst's window: every process's cores (bench.burst_trace) and the app's own
    create handling from its request histogram."""
    await asyncio.sleep(max(0.0, start - time.time()))
    me = os.getpid()
    servers = {"API": fulema.popen.pid,
               "worker": fulema.worker.popen.pid if fulema.worker else None,
               "nginx": nginx.popen.pid if nginx else None, "sandbox": run.sandbox.popen.pid}

    def groups() -> dict[str, list[int]]:
        out = {name: burst_trace.tree(pid) for name, pid in servers.items()}
        mine, own = (burst_trace.postgres_pids(run.pg_database) if run.pg_database
                     else ([], []))
        out["postgres (this run's backends)"] = mine
        out["postgres (its own processes)"] = own
        ours = {p for pids in out.values() for p in pids}
        out["load generators"] = [p for p in burst_trace.tree(me) if p not in ours and p != me]
        out["bench process"] = [me]
        return out

    hist0 = await asyncio.to_thread(burst_trace.create_histogram, fulema.url)
    window = burst_trace.CpuWindow(groups)
    window.begin()
    await asyncio.sleep(seconds)
    used = window.end()
    hist1 = await asyncio.to_thread(burst_trace.create_histogram, fulema.url)
    return {"cpu": used, "app_create_handling": burst_trace.histogram_quantiles(hist0, hist1)}


@contextlib.contextmanager
def worker_cpu(fulema: Proc, into: dict[str, Any], name: str) -> Iterator[None]:
    """`server_cpu` for the server's `fulema worker`, if it has one."""
    if fulema.worker is None:
        yield
        return
    with server_cpu(fulema.worker, into, name):
        yield


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


def size_limits(plan: BurstPlan, sustainable: float, costs: Costs, p99_s: float
                ) -> tuple[Limits, list[str]]:
    """The limits by the plan's rule, and how they were worked out (printed)."""
    usual = max(1.0, sustainable * plan.normal_share)
    if plan.sizing == "cpu":
        return cpu_limits(costs, plan.budget(), usual=usual, others=1,
                          ip_factor=plan.ip_factor, processes=plan.workers)
    limits = choose_limits(sustainable, p99_s, plan)
    return limits, [f"app create = {plan.app_share} x S {sustainable:.1f}/s = "
                    f"{limits.app_rate:.1f}/s (the share rule; CPU per create at the usual "
                    f"rate: API {costs.api_ms:.2f} ms, worker {costs.worker_ms} ms)"]


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
                        shared=shared, background=plan.background,
                        pg_database=dbstats.BENCH_DB if db == "postgres" else "")
            cal, costs, open_loop = await calibrate(state, plan, tag)
            sustainable = max(1.0, float(cal["throughput"]))
            state.calibration_p99_s = (cal["latency_ms"]["p99"] or 100) / 1000
            limits, derivation = size_limits(plan, sustainable, costs,
                                             (cal["latency_ms"]["p99"] or 100) / 1000)
            results.update(sustainable_rate=sustainable, calibration=_brief(cal),
                           calibration_open_loop=open_loop, costs=asdict(costs),
                           derivation=derivation, limits=asdict(limits),
                           limits_env=limits.env())
            if log:
                print(f"sustainable create rate S = {sustainable:.1f}/s (closed loop); "
                      f"limits {limits}\n  " + "\n  ".join(derivation), flush=True)
            shapes = {}
            for n in range(1, plan.rounds + 1):  # alternated: the machine's moods fall on both
                for i, shape in enumerate(plan.fronts):  # a prefix per shape: its orders apart
                    key = shape if n == 1 else f"{shape}#{n}"
                    shapes[key] = await measured(state, plan, limits, sustainable,
                                                 f"{tag}{SHAPE_LETTERS[i]}{n}", shape=shape)
        finally:
            server.stop(sandbox)
    results["shapes"] = {}
    for shape, m in shapes.items():
        results["shapes"][shape] = {
            "normal_rate": m["normal_rate"], "lost_check": m["lost_check"],
            "limits": m["limits"], "changes": m["changes"], "trace": m["trace"],
            "server_cpu": cpu_figures(m["server_cpu_s"], m["phases"]),
            "worker_cpu": (cpu_figures(m["worker_cpu_s"], m["phases"])
                           if m["worker_cpu_s"] else None),
            "front_cpu": front_cpu_figures(m["front_cpu_s"], m["phases"]),
            "front_refusals": m["front_refusals"],
            "phases": {k: _brief(v) for k, v in m["phases"].items()},
            "analysis": analyse(m["phases"], m["lost_check"], plan=plan)}
    # the first shape's figures where a single-shape run has always put them
    results.update({k: results["shapes"][plan.fronts[0]][k]
                    for k in ("normal_rate", "lost_check", "server_cpu", "phases", "analysis")})
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


def front_cpu_figures(used: dict[str, dict[str, float]], phases: dict[str, Any]
                      ) -> dict[str, Any] | None:
    """nginx's cores busy over the burst and its CPU per answer it gave or passed on."""
    u = used.get("burst")
    if not u or not u["wall_s"]:
        return None
    answers = phases["A_burst"]["sent"] + sum(
        1 for start, _, _ in phases["B_during"].get("timeline", []) if start < u["wall_s"])
    return {"cores_busy": round(u["cpu_s"] / u["wall_s"], 3),
            "cpu_us_per_answer": round(u["cpu_s"] / answers * 1e6, 1) if answers else None}


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
    p.add_argument("--rounds", type=int, default=1,
                   help="measure the shapes this many times, alternated")
    p.add_argument("--front", default="none",
                   help="the shapes measured against the same S, in order: none, nginx, each "
                        "with changes after '+' (nginx+burst=0.05+conn=1+keepalive=8: the "
                        "app's bucket in seconds of its rate, the front's concurrency ceiling "
                        "as a multiple of APP_CONCURRENCY, its kept connections); nginx needs "
                        "the nginx binary")
    p.add_argument("--background", choices=server.BACKGROUNDS, default="process",
                   help="process: the background in the API process; worker: API processes "
                        "with FULEMA_RUN_BACKGROUND=false beside one `fulema worker` "
                        "(production), calibration included")
    p.add_argument("--sizing", choices=["cpu", "share"], default="cpu",
                   help="cpu: the limits from the CPU per create at the usual rate and the "
                        "cores below (docs/operations.md); share: --app-share x S")
    p.add_argument("--api-cores", type=float, default=BurstPlan.api_cores,
                   help="cores one API process may use (at most 1: one event loop)")
    p.add_argument("--worker-cores", type=float, default=BurstPlan.worker_cores,
                   help="cores the worker may use")
    p.add_argument("--utilisation", type=float, default=BurstPlan.utilisation,
                   help="how busy those cores may be kept by accepted creates")
    p.add_argument("--burst-seconds", type=float, default=BurstPlan.burst_seconds,
                   help="an app's bucket, in seconds of its rate (cpu sizing)")
    p.add_argument("--normal-share", type=float, default=BurstPlan.normal_share,
                   help="each merchant's usual rate as a share of the closed-loop S: low "
                        "enough that two merchants' usual rates and one merchant's limit fit "
                        "what the printed derivation's C carries with headroom")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    fronts = tuple(f.strip() for f in a.front.split(",") if f.strip())
    try:
        bases = {parse_shape(f)[0] for f in fronts}
    except ValueError as exc:
        p.error(f"--front: {exc}")
    if not fronts or len(set(fronts)) != len(fronts) or len(fronts) > len(SHAPE_LETTERS):
        p.error("--front: none, nginx or none,nginx (each shape once)")
    if "nginx" in bases and front.nginx_binary() is None:
        p.error(front.NGINX_MISSING)
    plan = replace(QUICK if a.quick else BurstPlan(), app_share=a.app_share,
                   ip_factor=a.ip_factor, workers=a.workers, redis_url=a.redis_url,
                   fronts=fronts, rounds=max(1, a.rounds), background=a.background,
                   sizing=a.sizing, api_cores=a.api_cores, worker_cores=a.worker_cores,
                   utilisation=a.utilisation, burst_seconds=a.burst_seconds,
                   normal_share=a.normal_share)
    if not 0 < plan.normal_share <= 0.5:
        p.error("--normal-share: above 0 and at most 0.5")
    asyncio.run(run(plan=plan, db=a.db, out_dir=a.out, keep=a.keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
