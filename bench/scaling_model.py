"""`python -m bench.scaling_model`: docs/scaling.md's capacity model, from measured inputs.

Everything here is arithmetic on figures measured elsewhere (each input names the run it comes
from), so when a change cuts statements or CPU per payment, the model is recomputed by editing
one input (or passing `--set name=value`) instead of rewriting the document's tables.

Two kinds of limit:
- **parallel** resources grow with processes or nodes: API cores, database commits, round
  trips (as pgbench-equivalent TPS: a TPC-B transaction is 7 round trips);
- **serial** resources do not: a consumer of the event stream is served by one process at a
  time, in order, and the sequencer numbers events under one row lock (docs/events.md). Their
  load is `payments/s x round trips per payment x seconds per round trip`: above 1.0 one line
  of work cannot keep up, whatever the number of processes. The first serial resource past
  1.0, or the first parallel one past what one machine does, is the first that saturates.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

SCALES = (1, 10, 100)


@dataclass(frozen=True)
class Inputs:
    # The bank (assumptions: say so if the bank's own figures differ; everything is linear)
    merchants: int = 130_000
    payments_per_merchant_day: float = 20.0
    peak_hour_share: float = 0.15  # of the day's payments
    burst: float = 2.0  # the busiest minutes against the peak-hour mean: the design rate
    queries_per_payment: float = 2.0  # merchants poll while the payer pays
    utilisation: float = 0.6  # API cores are sized to run at this
    # Measured per operation, API CPU on this machine's cores at load average 8-9 (quiet, the
    # same code measured 3-4x less: 12.3 ms per cycle in run 20261125T142228Z):
    # `python -m bench.ab --rounds 2 --env-b FULEMA_DB_POOL_SIZE=20 FULEMA_DB_MAX_OVERFLOW=0`,
    # variant A (today's pool), 26 November 16:03-16:06 UTC
    api_cpu_ms_cycle: float = 47.0  # create, pay, callback, consumers, notification
    api_cpu_ms_query: float = 12.2
    # the background's CPU per cycle (dispatcher, consumers, notifications) when a `fulema
    # worker` runs it; 0 when api_cpu_ms_cycle was measured with it in the API processes
    worker_cpu_ms_cycle: float = 0.0
    # Counts per cycle: 26 November 15:54 (bench.calibrate, n=20) and 16:03-16:06 UTC (live
    # pg_stat_database): 43.2 statements and 12.7 commits, of which the consumers and the
    # sequencer sent 12.7 and 4.6 in full rounds then; since batched, 1.58 and 0.64
    # (bench.consumer_cost 19:34-19:36 UTC), so 43.2 - 12.7 + 1.6 and 12.7 - 4.6 + 0.6
    statements_cycle: float = 32.1
    statements_query: float = 2.0
    commits_cycle: float = 8.7
    commits_query: float = 2.0  # the request's own two (run 20261125T144746Z)
    events_per_payment: float = 2.0  # outbox rows a payment publishes (bench.consumer_cost)
    # Serial work per payment, round trips (statements + 2 x commits) in full rounds (a
    # consumer that falls behind is handed 100 events a round: 50 payments), counted on
    # PostgreSQL by `python -m bench.consumer_cost --round 1 10 50 --payments 100` (26 November
    # 19:34-19:36 UTC): every consumer has a batch handler now; the busiest, and the sequencer
    serial_round_trips: dict[str, float] = field(default_factory=lambda: {
        "risk.monitor": 0.42, "points.earn": 0.34, "marketing.settle": 0.26,
        "messaging.speaker": 0.26, "messaging.fanout": 0.26, "marketing.grant": 0.24,
        "ledger.postings": 0.24, "billing.orders": 0.20, "billing.donations": 0.20,
        "(sequencer)": 0.30})
    # Seconds per round trip (latency, what a serial line waits, with the Python around it):
    # PostgreSQL on the same host or rack (0.3-0.6 ms measured here on a quiet day,
    # docs/performance.md); a distributed SQL statement inside a transaction (TiDB / TDSQL: a
    # network hop to the SQL layer, another to the storage node, locks in TiKV; an assumption
    # to replace with the bank's own measurement)
    rtt_ms_postgres: float = 0.4
    rtt_ms_distributed: float = 1.5
    # What one PostgreSQL primary sustains, pgbench TPC-B TPS (an assumption for a large
    # server: 32-64 cores with NVMe; this 2-vCPU box measured about 5,000)
    pgbench_one_primary: float = 30_000.0
    source: str = ("defaults: API CPU bench.ab 16:03-16:06 UTC 26 November (load 7.8-9.3, not "
                   "remeasured); serial lines bench.consumer_cost 19:34-19:36 UTC (counts); "
                   "statements and commits per cycle derived from both (see Inputs)")


def design_rate(i: Inputs, scale: float = 1.0) -> float:
    """Payments per second in the busiest minutes."""
    per_day = i.merchants * i.payments_per_merchant_day * scale
    return per_day * i.peak_hour_share / 3600 * i.burst


def per_payment(i: Inputs) -> dict[str, float]:
    q = i.queries_per_payment
    statements = i.statements_cycle + q * i.statements_query
    commits = i.commits_cycle + q * i.commits_query
    return {"api_cpu_ms": i.api_cpu_ms_cycle + q * i.api_cpu_ms_query,
            "worker_cpu_ms": i.worker_cpu_ms_cycle,
            "statements": statements, "commits": commits,
            "round_trips": statements + 2 * commits}


def model(i: Inputs, scale: float) -> dict[str, Any]:
    rate = design_rate(i, scale)
    p = per_payment(i)
    out: dict[str, Any] = {
        "scale": scale, "payments_per_day": i.merchants * i.payments_per_merchant_day * scale,
        "design_rate": rate,
        "api_cores": rate * p["api_cpu_ms"] / 1000 / i.utilisation,
        "worker_cores": rate * p["worker_cpu_ms"] / 1000 / i.utilisation,
        "db_commits_per_s": rate * p["commits"],
        "db_statements_per_s": rate * p["statements"],
        "db_round_trips_per_s": rate * p["round_trips"],
        "pgbench_equivalent_tps": rate * p["round_trips"] / 7,
        "events_per_s": rate * i.events_per_payment}
    out["one_primary_load"] = out["pgbench_equivalent_tps"] / i.pgbench_one_primary
    for where, rtt in (("postgres", i.rtt_ms_postgres), ("distributed", i.rtt_ms_distributed)):
        out[f"serial_load_{where}"] = {name: rate * serial_trips(i, name, where) * rtt / 1000
                                       for name in i.serial_round_trips}
    return out


def serial_trips(i: Inputs, name: str, where: str) -> float:
    """Round trips per payment of one serial line. The same count on both kinds of database:
    the sequencer numbers a round with one pipelined `executemany` on PostgreSQL and one UPDATE
    per 500 events on the MySQL protocol (core/events/dispatcher.py `_number`; before it, one
    UPDATE per event there)."""
    del where
    return i.serial_round_trips[name]




def first_saturated(m: dict[str, Any], where: str) -> str:
    """The first resource whose load passes 1.0 (serial lines, or one PostgreSQL primary)."""
    loads = dict(m[f"serial_load_{where}"])
    if where == "postgres":
        loads["one PostgreSQL primary"] = m["one_primary_load"]
    name, load = max(loads.items(), key=lambda kv: kv[1])
    return f"{name} ({load:.2f})" if load >= 1.0 else f"none (highest: {name} {load:.2f})"


def _n(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 1 else f"{v:.2f}"


def render(i: Inputs) -> str:
    ms = [model(i, s) for s in SCALES]
    p = per_payment(i)
    head = "| | " + " | ".join(f"{'today' if s == 1 else f'{s}x'}" for s in SCALES) + " |"
    rows = [head, "| --- |" + " ---: |" * len(SCALES)]

    def row(label: str, values: list[str]) -> None:
        rows.append(f"| {label} | " + " | ".join(values) + " |")

    row("payments per day", [_n(m["payments_per_day"]) for m in ms])
    row("design rate, payments/s", [_n(m["design_rate"]) for m in ms])
    row(f"API cores at {i.utilisation:.0%} ({_n(p['api_cpu_ms'])} ms per payment)",
        [_n(m["api_cores"]) for m in ms])
    if i.worker_cpu_ms_cycle:
        row(f"worker cores at {i.utilisation:.0%} ({_n(p['worker_cpu_ms'])} ms per payment)",
            [_n(m["worker_cores"]) for m in ms])
    row(f"database commits/s ({_n(p['commits'])} per payment)",
        [_n(m["db_commits_per_s"]) for m in ms])
    row(f"database round trips/s ({_n(p['round_trips'])} per payment)",
        [_n(m["db_round_trips_per_s"]) for m in ms])
    row("pgbench-equivalent TPS", [_n(m["pgbench_equivalent_tps"]) for m in ms])
    row(f"load of one PostgreSQL primary ({_n(i.pgbench_one_primary)} TPS)",
        [_n(m["one_primary_load"]) for m in ms])
    row("events numbered per second", [_n(m["events_per_s"]) for m in ms])
    for where, rtt in (("postgres", i.rtt_ms_postgres), ("distributed", i.rtt_ms_distributed)):
        for name in i.serial_round_trips:
            row(f"serial load: {name}, {_n(serial_trips(i, name, where))} round trips x "
                f"{rtt} ms ({where})", [_n(m[f"serial_load_{where}"][name]) for m in ms])
    for where in ("postgres", "distributed"):
        row(f"first to saturate ({where})", [first_saturated(m, where) for m in ms])
    return "\n".join(rows) + f"\n\nInputs: {i.source}"


def parse_set(i: Inputs, pairs: list[str]) -> Inputs:
    """`name=value` for a number input, `serial.NAME=value` for a serial line."""
    numbers = {f.name for f in fields(Inputs)} - {"serial_round_trips", "source"}
    serial = dict(i.serial_round_trips)
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name.startswith("serial."):
            serial[name.removeprefix("serial.")] = float(value)
        elif name in numbers:
            changes[name] = type(getattr(i, name))(float(value))
        else:
            raise SystemExit(f"no input named {name!r}; inputs: {', '.join(sorted(numbers))}")
    return replace(i, serial_round_trips=serial, **changes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scaling_model",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    p.add_argument("--inputs", action="store_true", help="print the inputs too")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    inputs = parse_set(Inputs(), a.set)
    if a.inputs:
        print("\n".join(f"{k} = {v}" for k, v in asdict(inputs).items()) + "\n")
    print(render(inputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
