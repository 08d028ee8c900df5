"""The load generator: a separate process that drives one phase and writes its result as JSON.

    python -m bench.loadgen SPEC.json OUT.json

The spec names the operation (see `bench.scenarios`), closed- or open-loop driving, and the
bounds (duration and a maximum count). It talks only to 127.0.0.1. Besides throughput and
latency it reports its own CPU use: a generator near 100 % of one core is the limit, not
Fulema, and the `/ping` phase shows that ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.httpclient import HttpError, Pool
from bench.scenarios import DEMO_APP_ID, DEMO_SECRET, Op, OpResult, Targets, build_op

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: the value some request really saw)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def summarize(latencies: list[float]) -> dict[str, float | None]:
    values = sorted(latencies)
    ms = {f"p{q}": percentile(values, q) for q in (50, 95, 99)}
    out: dict[str, float | None] = {k: None if v is None else round(v * 1000, 2)
                                    for k, v in ms.items()}
    out["max"] = round(values[-1] * 1000, 2) if values else None
    out["mean"] = round(sum(values) / len(values) * 1000, 2) if values else None
    return out


REFUSALS = frozenset({429, 503})  # the limiter's answers: timed on their own (bench.burst)
# ... by their code: a 503 CHANNEL_UNAVAILABLE comes from the handler after the order was
# written (the channel failed), not from the limiter, and is not a refusal
LIMITER_CODES = frozenset({"RATE_LIMITED", "OVERLOADED"})


class Tally:
    def __init__(self, *, timeline: bool = False) -> None:
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.records: list[dict[str, Any]] = []
        self.failed: list[int] = []
        self.ok = 0
        self.refused: list[float] = []  # latencies of 429/503 answers
        self.refused_ids: list[int] = []
        # (start offset in s, latency in s, status): per-second figures, e.g. a recovery curve
        self.timeline: list[tuple[float, float, int]] | None = [] if timeline else None
        self.t0 = time.perf_counter()

    def add(self, i: int, result: OpResult, latency: float, started: float | None = None
            ) -> None:
        if self.timeline is not None and started is not None:
            self.timeline.append((round(started - self.t0, 4), round(latency, 5),
                                  200 if result.ok else result.status or 0))
        if (not result.ok and result.status in REFUSALS
                and (result.error or "").rpartition(" ")[2] in LIMITER_CODES):
            self.refused.append(latency)
            self.refused_ids.append(i)
        if result.ok:
            self.ok += 1
            self.latencies.append(result.latency if result.latency is not None else latency)
            if result.record:
                self.records.append(result.record)
        else:
            self.errors[result.error or "error"] += 1
            self.failed.append(i)


async def _run_one(op: Op, i: int, started: float, tally: Tally) -> None:
    try:
        result = await op(i)
    except HttpError as exc:
        result = OpResult(ok=False, error=f"transport {exc}")
    except (KeyError, ValueError, orjson.JSONDecodeError) as exc:
        result = OpResult(ok=False, error=f"bad answer {type(exc).__name__}")
    tally.add(i, result, time.perf_counter() - started, started)


async def closed_loop(op: Op, *, concurrency: int, duration: float, max_ops: int,
                      start_index: int = 0) -> tuple[Tally, float]:
    tally = Tally()
    counter = iter(range(start_index, start_index + max_ops))
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        for i in counter:
            if time.perf_counter() >= deadline:
                return
            await _run_one(op, i, time.perf_counter(), tally)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return tally, time.perf_counter() - t0


async def open_loop(op: Op, *, rate: float, duration: float, max_ops: int,
                    grace: float = 20.0, timeline: bool = False) -> tuple[Tally, float, int]:
    """Arrivals at a fixed rate whatever the answers; latency from the scheduled start."""
    tally = Tally(timeline=timeline)
    tasks: dict[asyncio.Task[None], int] = {}
    n = min(max_ops, int(rate * duration))
    t0 = time.perf_counter()
    for i in range(n):
        target = t0 + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_run_one(op, i, target, tally))
        tasks[task] = i
        task.add_done_callback(lambda t: tasks.pop(t, None))
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=grace)
        unfinished = [tasks[t] for t in pending if t in tasks]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if pending:
            tally.errors["unfinished after grace"] += len(pending)
            tally.failed += unfinished  # never answered: the merchant sends them again too
    elapsed = time.perf_counter() - t0
    return tally, elapsed, n


def _pool(url: str, size: int, timeout: float) -> Pool:
    parts = urlsplit(url)
    if parts.hostname not in LOCAL_HOSTS:
        raise SystemExit(f"the load generator only talks to 127.0.0.1, not {parts.hostname}")
    return Pool("127.0.0.1", parts.port or 80, size, timeout=timeout)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    conc = int(spec.get("concurrency", 32))
    timeout = float(spec.get("timeout", 10.0))
    pool_size = max(conc, int(spec.get("pool", conc)))
    targets = Targets(server=_pool(spec["server"], pool_size, timeout),
                      sandbox=_pool(spec.get("sandbox") or spec["server"], pool_size, timeout),
                      receiver=_pool(spec.get("receiver") or spec["server"], pool_size, 70.0),
                      receiver_url=spec.get("receiver") or "", prefix=spec.get("prefix", "B"),
                      order_ids=list(spec.get("order_ids", [])),
                      app_id=spec.get("app_id", DEMO_APP_ID), secret=spec.get("secret", DEMO_SECRET),
                      headers=dict(spec.get("headers", {})))
    op = build_op(spec["op"], targets)
    start_at = float(spec.get("start_at", 0))  # wall clock: phases in other processes line up
    if start_at > time.time():
        await asyncio.sleep(start_at - time.time())
    cpu0 = time.process_time()
    result: dict[str, Any] = {"op": spec["op"], "mode": spec.get("mode", "closed"),
                              "concurrency": conc}
    if spec.get("mode") == "open":
        tally, elapsed, sent = await open_loop(op, rate=float(spec["rate"]),
                                               duration=float(spec["duration"]),
                                               max_ops=int(spec.get("max_ops", 200_000)),
                                               grace=float(spec.get("grace", 20.0)),
                                               timeline=bool(spec.get("timeline")))
        result.update(target_rate=float(spec["rate"]), sent=sent)
    else:
        tally, elapsed = await closed_loop(op, concurrency=conc, duration=float(spec["duration"]),
                                           max_ops=int(spec.get("max_ops", 200_000)))
        sent = tally.ok + sum(tally.errors.values())
        result["sent"] = sent
    cpu = time.process_time() - cpu0
    result.update(
        ok=tally.ok, errors=sum(tally.errors.values()), error_kinds=dict(tally.errors),
        elapsed_s=round(elapsed, 3), throughput=round(tally.ok / elapsed, 1) if elapsed else 0.0,
        latency_ms=summarize(tally.latencies),
        generator_cpu_s=round(cpu, 3), generator_cpu_util=round(cpu / elapsed, 3) if elapsed else 0)
    if spec.get("retry_failed") and tally.failed:
        # The merchant's answer to an error is to send the same request again: idempotency
        # must turn that into exactly one order, however the first attempt ended.
        retry = Tally()
        sem = asyncio.Semaphore(conc)

        async def again(i: int) -> None:
            async with sem:
                await _run_one(op, i, time.perf_counter(), retry)

        await asyncio.gather(*[again(i) for i in sorted(tally.failed)])
        result["retry"] = {"retried": len(tally.failed), "ok": retry.ok,
                           "errors": dict(retry.errors)}
        tally.records.extend(retry.records)
        result["unresolved"] = sorted(retry.failed)
    if tally.refused:
        result["refused_latency_ms"] = summarize(tally.refused)
        result["refused_ids"] = tally.refused_ids
    if tally.timeline is not None:
        result["timeline"] = tally.timeline
    result["records"] = tally.records
    for pool in (targets.server, targets.sandbox, targets.receiver):
        await pool.close()
    return result


def main(argv: list[str]) -> int:
    spec = orjson.loads(Path(argv[0]).read_bytes())
    try:
        import uvloop  # the generator's own ceiling matters: use the fastest loop available
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    Path(argv[1]).write_bytes(orjson.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
