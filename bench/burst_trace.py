"""Where an accepted request's time and the machine's CPU go during `bench.burst`'s burst.

Three views of one request, outermost first: the load generator's latency (from the moment
the request was due), nginx's `$request_time` (from the request's first byte to the answer's
last) and `$upstream_response_time` (the API process, from nginx's connect or reuse of a
connection to the answer), and the app's own handling (its request histogram, read from
`/metrics` before and after the burst: bucket bounds, not exact figures). The gaps between
them say where the time went: the generator or the machine before nginx, nginx, or the API
process's event loop.

And the CPU of each process over the burst's window, from /proc: the API process, the worker,
nginx, the sandbox, this run's PostgreSQL backends, PostgreSQL's own processes, the load
generators, and the rest of the machine (other sessions): a 2-core machine shares them all.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import cpu
from bench.loadgen import percentile

GroupPids = dict[str, list[int]]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def postgres_pids(database: str) -> tuple[list[int], list[int]]:
    """(backends of `database`, the server's own processes: writer, checkpointer, ...)."""
    mine, server = [], []
    tag = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        line = _cmdline(int(entry.name))
        if not line.startswith(b"postgres"):
            continue
        if tag in line:
            mine.append(int(entry.name))
        elif b" idle" not in line and b"(" not in line:  # not another database's backend
            server.append(int(entry.name))
    return mine, server


def machine_busy() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, all CPU seconds) from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / cpu.TICK, total / cpu.TICK


@dataclass
class CpuWindow:
    """Per group of processes, the CPU seconds they used over a window (a process that appears
    during it counts whole: it started in it; one that ends in it is missed)."""

    groups: Any  # () -> GroupPids, asked at the start and at the end
    start: dict[str, dict[int, float]] = field(default_factory=dict)
    t0: float = 0.0
    busy0: float = 0.0

    def begin(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = machine_busy()[0]
        self.start = {name: {p: cpu.pid_cpu(p) for p in pids}
                      for name, pids in self.groups().items()}

    def end(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        busy = machine_busy()[0] - self.busy0
        cores: dict[str, float] = {}
        for name, pids in self.groups().items():
            before = self.start.get(name, {})
            # a process that ended between the listing and the reading reads 0: left out
            now = {p: cpu.pid_cpu(p) for p in set(pids)}
            cores[name] = round(sum(max(0.0, v - before.get(p, 0.0))
                                    for p, v in now.items() if v) / wall, 3)
        cores["rest of the machine"] = round(max(0.0, busy / wall - sum(cores.values())), 3)
        return {"wall_s": round(wall, 2), "machine_cores_busy": round(busy / wall, 3),
                "cores": cores}


def tree(pid: int | None) -> list[int]:
    return cpu.process_tree(pid) if pid else []


_BUCKET = re.compile(
    r'^fulema_http_request_duration_seconds_bucket\{endpoint="create",le="([^"]+)"\} (\S+)$')


def create_histogram(url: str) -> dict[float, float]:
    """The API process's cumulative create-latency buckets ({} if /metrics is closed)."""
    with contextlib.suppress(httpx.HTTPError):
        text = httpx.get(f"{url}/metrics", timeout=5.0).text
        out = {}
        for line in text.splitlines():
            m = _BUCKET.match(line)
            if m:
                out[float(m.group(1))] = float(m.group(2))
        return out
    return {}


def histogram_quantiles(before: dict[float, float], after: dict[float, float]
                        ) -> dict[str, Any] | None:
    """p50/p99 of the app's own create handling over the window, as bucket upper bounds."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not delta or not delta[-1][1]:
        return None
    n = delta[-1][1]

    def q(share: float) -> str:
        for le, count in delta:
            if count >= share * n:
                return "<= %g ms" % (le * 1000) if le != float("inf") else "> 10 s"
        return "?"

    return {"requests": int(n), "p50": q(0.5), "p99": q(0.99)}


def timing_lines(path: Path, t_from: float, t_to: float) -> list[dict[str, Any]]:
    """The front's timing log between two wall-clock times (its lines end with the answer)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = orjson.loads(line)
            if t_from <= float(entry["msec"]) <= t_to:
                out.append(entry)
    return out


def _ms(values: list[float], q: float) -> float | None:
    v = percentile(sorted(values), q)
    return None if v is None else round(v * 1000, 2)


def _seconds(text: str) -> float | None:
    """nginx writes '-' for no upstream, and 'a, b' when it tried two."""
    with contextlib.suppress(ValueError):
        return sum(float(x) for x in text.replace(":", ",").split(",") if x.strip() != "-")
    return None


def front_times(entries: list[dict[str, Any]], app_ids: dict[str, str]) -> dict[str, Any]:
    """Per merchant, the accepted creates' nginx request time and upstream time (p50/p99),
    the time to connect to the API process (0 on a kept connection), and the front's refusals' time."""
    out: dict[str, Any] = {}
    for who, app_id in app_ids.items():
        ok = [e for e in entries if e.get("app_id") == app_id and e.get("class") == "create"
              and e.get("status") == 200]
        refused = [e for e in entries if e.get("app_id") == app_id and e.get("status") == 429
                   and e.get("upstream_response_time") in ("", "-")]
        up = [x for x in (_seconds(e["upstream_response_time"]) for e in ok) if x is not None]
        connect = [x for x in (_seconds(e["upstream_connect_time"]) for e in ok)
                   if x is not None]
        out[who] = {"accepted": len(ok),
                    "request_time_ms": {"p50": _ms([float(e["request_time"]) for e in ok], 50),
                                        "p99": _ms([float(e["request_time"]) for e in ok], 99)},
                    "upstream_ms": {"p50": _ms(up, 50), "p99": _ms(up, 99)},
                    "upstream_connect_ms": {"p99": _ms(connect, 99)},
                    "refused_at_front": len(refused),
                    "refusal_request_time_ms": {
                        "p99": _ms([float(e["request_time"]) for e in refused], 99)}}
    return out
