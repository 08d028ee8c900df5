"""`python -m bench.refusal_cost`: what one refused request costs the real server, end to end
(uvicorn's parsing and writing, the ASGI call, the limiter), refused before the signature (the
per-IP bucket, in `ProtectionMiddleware`) and after it (the app's bucket, in `admit_app`).

Why: under a 10x burst the refusals are most of the requests, so their CPU is taken from the
accepted ones. `bench.limiter_cost` isolates the limiter in process; this measures the server
process's CPU over an open-loop stream of requests that are all refused, less its idle CPU
over the same seconds, per refusal. It also prints the refusals' p50/p99 and the load average.

`at_the_front`: the same per-IP limit written into nginx's configuration (bench/front.py, the
file `fulema gateway nginx-config` writes) in front of the server: the CPU per refusal is
nginx's, and the server's beyond its idle use shows what reached Python.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import dbstats, front, server
from bench.burst import Limits, Run, _spec, _start, server_cpu

# Before the signature: the per-IP bucket refuses. After it: the app's create bucket does.
MODES = {
    "before_signature": Limits(app_rate=1e6, app_burst=1_000_000, app_concurrency=100_000,
                               ip_rate=0.1, global_rate=1e6),
    "after_signature": Limits(app_rate=0.1, app_burst=1, app_concurrency=100_000,
                              ip_rate=1e6, global_rate=1e6),
}
# The per-IP limit again, refused by nginx in front (the server behind it keeps the limit).
MODES["at_the_front"] = MODES["before_signature"]


async def measure(run: Run, mode: str, *, rate: float, seconds: float) -> dict[str, Any]:
    fulema = await _start(run, MODES[mode], mode)
    used: dict[str, Any] = {}
    nginx_used: dict[str, Any] = {}
    nginx = None
    try:
        if mode == "at_the_front":
            nginx = await asyncio.to_thread(front.start, run.run_dir / "front",
                                            MODES[mode].section(),
                                            [f"127.0.0.1:{fulema.port}"])
        entry = nginx or fulema
        tag = {"before_signature": "b", "after_signature": "a", "at_the_front": "f"}[mode]
        await run.gen(_spec(run, entry, "A", f"W{tag}", mode="closed", concurrency=2,
                            duration=1.0))  # warm: the first answers compile and cache
        with server_cpu(fulema, used, "idle"):
            await asyncio.sleep(3.0)
        with server_cpu(fulema, used, "refusing"):
            if nginx is not None:
                with server_cpu(nginx, nginx_used, "refusing"):
                    result = await run.gen(_spec(run, entry, "A", f"R{tag}", mode="open",
                                                 rate=rate, duration=seconds))
            else:
                result = await run.gen(_spec(run, entry, "A", f"R{tag}", mode="open",
                                             rate=rate, duration=seconds))
    finally:
        if nginx is not None:
            server.stop(nginx)
        server.stop(fulema)
    idle = used["idle"]["cpu_s"] / used["idle"]["wall_s"]
    busy = used["refusing"]
    refused = len(result.get("refused_ids", []))
    beyond = max(0.0, busy["cpu_s"] - idle * busy["wall_s"])
    lat = result.get("refused_latency_ms", {})
    row = {"mode": mode, "sent": result["sent"], "refused": refused, "ok": result["ok"],
           "cpu_us_per_refusal": round(beyond / refused * 1e6, 1) if refused else None,
           "cores_busy": round(busy["cpu_s"] / busy["wall_s"], 2),
           "waiting_for_cpu": round(busy["runqueue_wait_s"] / busy["wall_s"], 2),
           "refusal_p50_ms": lat.get("p50"), "refusal_p99_ms": lat.get("p99"),
           "nginx_cpu_us_per_refusal": None}
    if nginx_used and refused:
        row["nginx_cpu_us_per_refusal"] = round(
            nginx_used["refusing"]["cpu_s"] / refused * 1e6, 1)
    return row


async def run(*, rate: float, seconds: float) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="fulema-refusal-") as tmp:
        run_dir = Path(tmp)
        (run_dir / "data").mkdir()
        database_url = dbstats.sqlite_url(run_dir / "bench.db")  # refusals write nothing
        await dbstats.migrate(database_url)
        sandbox = server.start_sandbox(data_dir=run_dir / "data", log=run_dir / "sandbox.log")
        try:
            state = Run(run_dir, database_url, sandbox, ("", ""))
            modes = [m for m in MODES if m != "at_the_front" or front.nginx_binary()]
            return [await measure(state, mode, rate=rate, seconds=seconds) for mode in modes]
        finally:
            server.stop(sandbox)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.refusal_cost",
                                description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=300.0, help="requests per second, all refused")
    p.add_argument("--seconds", type=float, default=8.0)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    before = [round(x, 2) for x in os.getloadavg()]
    rows = asyncio.run(run(rate=a.rate, seconds=a.seconds))
    print(f"refusal cost, {a.rate:.0f}/s for {a.seconds:.0f} s, uvicorn x1; load average "
          f"before {before} after {[round(x, 2) for x in os.getloadavg()]} "
          f"(cpus {os.cpu_count()})")
    for r in rows:
        print("  {mode}: sent {sent}, refused {refused}, ok {ok}; {cpu_us_per_refusal} us of "
              "server CPU per refusal; {cores_busy} cores busy ({waiting_for_cpu} waiting for "
              "a CPU); p50 {refusal_p50_ms} ms p99 {refusal_p99_ms} ms".format(**r)
              + (f"; nginx {r['nginx_cpu_us_per_refusal']} us of CPU per refusal"
                 if r["nginx_cpu_us_per_refusal"] is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
