"""A/B runs: two versions of the server measured alternately in the same minutes.

    python -m bench.ab --base HEAD~1                      # the commit before against the tree
    python -m bench.ab --env-b FULEMA_X=1                 # one setting, same code
    python -m bench.ab --phases create:4 create:64 cycle:16 query:8 --rounds 3 --seconds 5

On a machine shared with other work, wall-clock throughput moves by tens of percent from one
minute to the next; CPU per operation of the API process moves much less, and running A and B
alternately (A B B A A B ...) in the same minutes spreads what noise remains over both. Each
variant runs in a fresh server process (uvicorn, N workers) against one PostgreSQL database,
one bankpay sandbox and one notify receiver, driven by `bench.loadgen` as the full harness does.

`--base REF` extracts REF's `src/` with `git archive` under bench/results/ (git-ignored) and
runs the server from it (`bench.server.start_fulema(src=...)`); `--ref-b REF` does the same for
B, so the tree may change while a run goes on. The schema is the tree's, so a REF with other
migrations is not comparable this way. `query` reads orders paid by payer code before the
phases (as the full harness's does), not the PAYING orders of a create phase.

`--background-b worker` runs B's background (dispatcher, jobs, speaker hub) in one `fulema
worker` beside API processes started with FULEMA_RUN_BACKGROUND=false (the production shape);
the API processes' CPU per operation (`cpu_ms_op`) and the worker's (`worker_cpu_ms_op`,
measured over the phase and the second after it, when the worker finishes the phase's events)
are reported apart. `--workers 1 2 4` measures each process count in every round (the
figures that must stay flat per operation as processes are added); a phase written
`create:8n` has 8 requests in flight per API process.

    python -m bench.ab --background-a process --background-b worker --workers 1 2 4 \
        --phases create:8n --rounds 2
    python -m bench.ab --background-a worker --background-b worker \
        --phases create:4 create:16 create:64 --rounds 3      # CPU per create at 64 / at 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import cpu, dbstats, profiling, server
from bench.server import ROOT, Proc

RESULTS = ROOT / "bench" / "results"
WORKER_SETTLE = 1.0  # seconds after a phase in which the worker's CPU still counts for it


@dataclass
class Variant:
    name: str
    src: Path | None
    env: dict[str, str] = field(default_factory=dict)
    background: str = "process"  # or "worker" (bench.server.start_fulema)


def parse_phases(specs: list[str], workers: int) -> list[tuple[str, int]]:
    """`op:conc`, or `op:connN` for conc per API process (`create:8n` at 4 processes: 32)."""
    out = []
    for spec in specs:
        op, conc = spec.split(":")
        out.append((op, int(conc[:-1]) * workers if conc.endswith("n") else int(conc)))
    return out


def extract(ref: str) -> Path:
    """REF's src/ under bench/results/ab-src/<sha>/src (reused if already there)."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    dest = RESULTS / "ab-src" / sha[:12]
    if not (dest / "src").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "src"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


async def loadgen(run_dir: Path, n: int, spec: dict[str, Any]) -> dict[str, Any]:
    spec_path, out_path = run_dir / f"spec{n:03d}.json", run_dir / f"out{n:03d}.json"
    spec_path.write_bytes(orjson.dumps(spec))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.loadgen",
                                                str(spec_path), str(out_path), cwd=ROOT, env=env)
    if await asyncio.wait_for(proc.wait(), float(spec["duration"]) + 120) != 0:
        raise RuntimeError(f"load generator failed on {spec['op']}")
    result: dict[str, Any] = orjson.loads(out_path.read_bytes())
    return result


async def measure(variant: Variant, phases: list[tuple[str, int]], *, seconds: float,
                  workers: int, database_url: str, sandbox: Proc, receiver: Proc,
                  run_dir: Path, tag: str, counter: list[int], idle_seconds: float = 3.0
                  ) -> dict[str, Any]:
    fulema = await asyncio.to_thread(
        server.start_fulema, "uvicorn", workers, database_url=database_url,
        sandbox_url=sandbox.url, data_dir=run_dir / "data", log=run_dir / f"{variant.name}.log",
        src=variant.src, extra_env=variant.env, background=variant.background)
    worker = fulema.worker

    def worker_cpu() -> float:
        return cpu.tree_cpu(worker.popen.pid) if worker is not None else 0.0

    out: dict[str, Any] = {"loadavg": round(os.getloadavg()[0], 2), "workers": workers}
    ids: list[str] = []
    try:
        base = {"server": fulema.url, "sandbox": sandbox.url, "receiver": receiver.url,
                "mode": "closed", "max_ops": 200_000}
        counter[0] += 1
        await loadgen(run_dir, counter[0], {**base, "op": "create", "concurrency": 8,
                                            "duration": 1.5, "prefix": f"W{tag}"})
        # `query` reads paid orders, as the full harness's does (an order still PAYING is
        # refreshed from the channel first: another operation); made here, before measuring
        paid = await paid_orders(run_dir, counter, base, f"Q{tag}") if any(
            op == "query" for op, _ in phases) else []
        # The server's own CPU with no request (its background loops poll and sweep): paid
        # per second, not per order, so its share of an order grows as the rate falls.
        await asyncio.sleep(1.0)  # the warm-up's events and notifications drain first
        cpu0, w0, t0 = cpu.tree_cpu(fulema.popen.pid), worker_cpu(), time.monotonic()
        await asyncio.sleep(idle_seconds)
        idle_wall = time.monotonic() - t0
        idle = (cpu.tree_cpu(fulema.popen.pid) - cpu0) / idle_wall
        worker_idle = (worker_cpu() - w0) / idle_wall
        out["idle_cpu_ms_per_s"] = round(idle * 1000, 2)
        if worker is not None:
            out["worker_idle_cpu_ms_per_s"] = round(worker_idle * 1000, 2)
        for op, conc in phases:
            counter[0] += 1
            spec = {**base, "op": op, "concurrency": conc, "duration": seconds,
                    "prefix": f"{tag}{op[:2]}{conc}",
                    "order_ids": paid if op == "query" else ids[:3000]}
            db0 = await dbstats.snapshot(dbstats.BENCH_DB)
            cpu0, w0, t0 = cpu.tree_cpu(fulema.popen.pid), worker_cpu(), time.monotonic()
            r = await loadgen(run_dir, counter[0], spec)
            used, wall = cpu.tree_cpu(fulema.popen.pid) - cpu0, time.monotonic() - t0
            db1 = await dbstats.snapshot(dbstats.BENCH_DB)
            ok = r["ok"] or 1
            if worker is not None:
                # the worker handles a phase's last events after it (the linger, a round)
                await asyncio.sleep(WORKER_SETTLE)
                w_used = worker_cpu() - w0
            ids += [rec["id"] for rec in r.get("records", [])]
            out[f"{op}:{conc}"] = {
                "ops_s": r["throughput"], "p99_ms": (r["latency_ms"] or {}).get("p99"),
                "errors": r["errors"], "cpu_ms_op": round(used * 1000 / ok, 3),
                # less what the idle server would have spent in the same seconds
                "cpu_ms_op_less_idle": round(max(0.0, used - idle * wall) * 1000 / ok, 3),
                "cores": round(used / wall, 2),
                **({"worker_cpu_ms_op": round(w_used * 1000 / ok, 3),
                    "worker_cpu_ms_op_less_idle": round(
                        max(0.0, w_used - worker_idle * (wall + WORKER_SETTLE)) * 1000 / ok, 3)}
                   if worker is not None else {}),
                # pg_stat_database, no settle wait: a connection opened is counted at once
                # (sessions), transactions may be published up to 1 s late (an estimate)
                "db_sessions_per_op": round((db1["sessions"] - db0["sessions"])
                                            / (r["ok"] or 1), 3),
                "xact_per_op": round((db1["xact_commit"] - db0["xact_commit"])
                                     / (r["ok"] or 1), 2)}
    finally:
        server.stop(fulema)
    return out


async def paid_orders(run_dir: Path, counter: list[int], base: dict[str, Any], prefix: str,
                      seconds: float = 1.5) -> list[str]:
    """Ids of orders paid by payer code (`barcode`), for a `query` phase to read."""
    counter[0] += 1
    r = await loadgen(run_dir, counter[0], {**base, "op": "barcode", "concurrency": 8,
                                            "duration": seconds, "prefix": prefix})
    return [rec["id"] for rec in r.get("records", [])][:3000]


async def profile(variant: Variant, phase: str, *, seconds: float, database_url: str,
                  sandbox: Proc, receiver: Proc, run_dir: Path, counter: list[int]
                  ) -> dict[str, Any]:
    """py-spy on the single worker while it serves `op:concurrency`; prints the shares."""
    op, conc = phase.split(":")
    RESULTS.mkdir(parents=True, exist_ok=True)  # the server's log goes there too
    fulema = await asyncio.to_thread(
        server.start_fulema, "uvicorn", 1, database_url=database_url, sandbox_url=sandbox.url,
        data_dir=run_dir / "data", log=RESULTS / "profile.log", src=variant.src,
        extra_env=variant.env, background=variant.background)
    try:
        raw = RESULTS / f"profile-{int(time.time())}.txt"
        base = {"server": fulema.url, "sandbox": sandbox.url, "receiver": receiver.url,
                "mode": "closed", "max_ops": 200_000}
        paid = (await paid_orders(run_dir, counter, base, f"Q{int(time.time()) % 100000:05d}")
                if op == "query" else [])
        counter[0] += 1
        r = await loadgen(run_dir, counter[0], {
            **base, "op": op, "concurrency": int(conc), "order_ids": paid,
            "duration": 2.0, "prefix": f"V{int(time.time()) % 100000:05d}"})  # warm-up
        rec = profiling.start_record(fulema.serving_pids()[0], seconds, raw)
        if isinstance(rec, str):
            return {"available": False, "reason": rec}
        await asyncio.sleep(0.5)
        counter[0] += 1
        r = await loadgen(run_dir, counter[0], {
            **base, "op": op, "concurrency": int(conc), "order_ids": paid,
            "duration": seconds, "prefix": f"P{int(time.time()) % 100000:05d}"})
        await asyncio.to_thread(rec.wait, seconds + 60)
        doc = {"phase": phase, "throughput": r["throughput"], "errors": r["error_kinds"],
               **profiling.summarize(raw, top=25)}
    finally:
        server.stop(fulema)
    print(f"\nprofile of {variant.name} on {phase} ({doc['samples']} samples, "
          f"{doc['throughput']}/s, errors {doc['errors']}):")
    for area, pct in doc["by_area"].items():
        print(f"  {pct:5.1f}%  {area}")
    print("  own time:")
    for f in doc["own_top"]:
        print(f"  {f['pct']:5.1f}%  {f['frame'][:150]}")
    print("  fulema inclusive:")
    for f in doc["fulema_inclusive_top"]:
        print(f"  {f['pct']:5.1f}%  {f['frame'][:150]}")
    return doc


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


METRICS = ("cpu_ms_op", "cpu_ms_op_less_idle", "worker_cpu_ms_op", "worker_cpu_ms_op_less_idle",
           "ops_s", "p99_ms", "db_sessions_per_op", "xact_per_op")


def summary(variants: list[Variant], runs: list[dict[str, Any]],
            phases: list[tuple[str, int]], workers: int | None = None) -> list[dict[str, Any]]:
    """Medians per variant for each phase (of the runs at `workers` API processes, if given)."""
    rows = []
    for op, conc in phases:
        key = f"{op}:{conc}"
        row: dict[str, Any] = {"phase": key if workers is None else f"x{workers} {key}",
                               "workers": workers}
        for v in variants:
            mine = [r[key] for r in runs if r["variant"] == v.name and key in r
                    and (workers is None or r.get("workers") == workers)]
            row[v.name] = {m: median([x[m] for x in mine if x.get(m) is not None])
                           for m in METRICS}
            row[v.name]["errors"] = sum(x["errors"] for x in mine)
            row[v.name]["cpu_each"] = [x["cpu_ms_op"] for x in mine]
        rows.append(row)
    return rows


def show(variants: list[Variant], rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    a, b = variants[0].name, variants[-1].name
    loads = [r["loadavg"] for r in runs]
    idle = {v.name: [r.get("idle_cpu_ms_per_s") for r in runs if r["variant"] == v.name]
            for v in variants}
    print(f"\nA = {a} (background: {variants[0].background}), B = {b} (background: "
          f"{variants[-1].background}); load average (1 min) at each server start: {loads}")
    print(f"idle API CPU (background loops), ms per second: {idle}")
    worker_idle = {v.name: [r["worker_idle_cpu_ms_per_s"] for r in runs
                            if r["variant"] == v.name and "worker_idle_cpu_ms_per_s" in r]
                   for v in variants}
    if any(worker_idle.values()):
        print(f"idle worker CPU, ms per second: {worker_idle}")
    print(f"{'phase':<16} {'A cpu ms/op':>12} {'B cpu ms/op':>12} {'change':>8} "
          f"{'A ops/s':>9} {'B ops/s':>9} {'A p99':>8} {'B p99':>8} {'errors A/B':>11}")
    for row in rows:
        ca, cb = row[a]["cpu_ms_op"], row[b]["cpu_ms_op"]
        change = f"{(cb / ca - 1) * 100:+.0f}%" if ca and cb else "-"
        print(f"{row['phase']:<16} {ca!s:>12} {cb!s:>12} {change:>8} {row[a]['ops_s']!s:>9} "
              f"{row[b]['ops_s']!s:>9} {row[a]['p99_ms']!s:>8} {row[b]['p99_ms']!s:>8} "
              f"{row[a]['errors']:>5}/{row[b]['errors']:<5}")
        print(f"{'':<16} each A {row[a]['cpu_each']}  B {row[b]['cpu_each']}; new DB "
              f"sessions/op A {row[a]['db_sessions_per_op']} B {row[b]['db_sessions_per_op']}; "
              f"xact/op A {row[a]['xact_per_op']} B {row[b]['xact_per_op']}; cpu ms/op "
              f"less idle A {row[a]['cpu_ms_op_less_idle']} B {row[b]['cpu_ms_op_less_idle']}")
        if row[a]["worker_cpu_ms_op"] is not None or row[b]["worker_cpu_ms_op"] is not None:
            print(f"{'':<16} worker cpu ms/op A {row[a]['worker_cpu_ms_op']} B "
                  f"{row[b]['worker_cpu_ms_op']} (less its idle A "
                  f"{row[a]['worker_cpu_ms_op_less_idle']} B "
                  f"{row[b]['worker_cpu_ms_op_less_idle']})")


def parse_env(pairs: list[str]) -> dict[str, str]:
    return dict(p.split("=", 1) for p in pairs)


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    variants = [Variant("A:" + (a.base or "tree"), extract(a.base) if a.base else None,
                        parse_env(a.env_a), a.background_a),
                Variant("B:" + (a.ref_b or "tree"), extract(a.ref_b) if a.ref_b else None,
                        parse_env(a.env_b), a.background_b)]
    if (variants[0].src is None and variants[0].env == variants[1].env
            and variants[0].background == variants[1].background):
        variants[0].name = "A:tree(same)"
    counts: list[int] = list(a.workers)
    why = dbstats.postgres_available()
    if why:
        raise SystemExit(why)
    dbstats.recreate_database(dbstats.BENCH_DB)
    database_url = dbstats.pg_url(dbstats.BENCH_DB)
    print(f"migrating {database_url}: {await dbstats.migrate(database_url)}", flush=True)
    runs: list[dict[str, Any]] = []
    prof: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="fulema-ab-") as tmp:
        run_dir = Path(tmp)
        (run_dir / "data").mkdir()
        sandbox = server.start_sandbox(data_dir=run_dir / "data", log=run_dir / "sandbox.log")
        receiver = server.start_receiver(log=run_dir / "receiver.log")
        counter = [0]
        try:
            for rnd in range(a.rounds):
                order = variants if rnd % 2 == 0 else variants[::-1]
                for n in counts if rnd % 2 == 0 else counts[::-1]:
                    for v in order:
                        tag = f"{int(time.time()) % 100000:05d}{v.name[0]}{rnd}{n}"
                        r = await measure(v, parse_phases(a.phases, n), seconds=a.seconds,
                                          workers=n, database_url=database_url,
                                          sandbox=sandbox, receiver=receiver, run_dir=run_dir,
                                          tag=tag, counter=counter)
                        r["variant"], r["round"] = v.name, rnd
                        runs.append(r)
                        print(f"round {rnd} x{n} {v.name}: " + ", ".join(
                            f"{k} {x['cpu_ms_op']} ms/op"
                            + (f" (+worker {x['worker_cpu_ms_op']})"
                               if "worker_cpu_ms_op" in x else "")
                            + f" {x['ops_s']}/s {x['db_sessions_per_op']} sessions/op"
                            for k, x in r.items() if isinstance(x, dict))
                            + f" (load {r['loadavg']})", flush=True)
            if a.profile:
                prof = await profile(variants[-1], a.profile_op, seconds=a.profile,
                                     database_url=database_url, sandbox=sandbox,
                                     receiver=receiver, run_dir=run_dir, counter=counter)
        finally:
            server.stop(receiver)
            server.stop(sandbox)
    rows = ([row for n in counts for row in summary(variants, runs, parse_phases(a.phases, n),
                                                     n if len(counts) > 1 else None)]
            if runs else [])
    if runs:
        show(variants, rows, runs)
    doc = {"stamp": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), "base": a.base,
           "background": [a.background_a, a.background_b],
           "env_a": a.env_a, "env_b": a.env_b, "workers": a.workers, "seconds": a.seconds,
           "runs": runs, "summary": rows, "profile": prof}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"ab-{doc['stamp']}.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    print(f"results: {path}")
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    p.add_argument("--base", help="git ref whose src/ is variant A (default: the tree)")
    p.add_argument("--ref-b", help="git ref whose src/ is variant B (default: the tree, "
                   "read at each server start; a ref lets the tree change during a run)")
    p.add_argument("--env-a", nargs="*", default=[], metavar="K=V")
    p.add_argument("--env-b", nargs="*", default=[], metavar="K=V")
    p.add_argument("--phases", nargs="+", default=["create:4", "create:64", "cycle:16",
                                                    "query:8"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--workers", type=int, nargs="+", default=[1],
                   help="API processes; several: each count in every round")
    p.add_argument("--background-a", choices=server.BACKGROUNDS, default="process",
                   help="where A's background runs: in each API process, or a fulema worker")
    p.add_argument("--background-b", choices=server.BACKGROUNDS, default="process")
    p.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                   help="then py-spy on variant B's single worker for this long")
    p.add_argument("--profile-op", default="create:8", metavar="OP:CONCURRENCY")
    asyncio.run(main_async(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
