"""The limiter's own cost, in process: what `ProtectionMiddleware` adds to a request it lets
through and what a 429 costs, against the same ASGI call without it, in the same run.

Why: a burst's refusals are only cheap if refusing is cheap. Measured over the network, a
429's latency is mostly the machine (HTTP parsing, the event loop's queue, CPU shared with
other processes); this isolates the part the limiter itself spends, so the two can be told
apart. `python -m bench.limiter_cost` prints it; `bench.burst` includes it in its report.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from fulema.core.channel_settings import RateLimitSection
from fulema.gateway.protection import Protection, ProtectionMiddleware


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _scope(source: str) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/api/v1/orders",
            "raw_path": b"/api/v1/orders", "query_string": b"", "headers": [],
            "client": (source, 40000), "server": ("127.0.0.1", 8000), "scheme": "http",
            "http_version": "1.1", "root_path": "", "state": {}}


async def _per_call(app: Any, source: str, n: int) -> tuple[float, set[int]]:
    statuses: set[int] = set()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.add(int(message["status"]))

    start = time.perf_counter()
    for _ in range(n):
        await app(_scope(source), _receive, send)
    return (time.perf_counter() - start) / n, statuses


def _refusing_app(tmp: Path) -> Any:
    """The real application (every middleware, in its order), with a per-IP limit of one: what
    a refusal costs in the app, short of uvicorn's own parsing and writing."""
    from fulema.app import create_app
    from fulema.core.config import Settings

    base = Settings(database_url=f"sqlite+aiosqlite:///{tmp / 'cost.db'}", data_dir=tmp,
                    environment="development", run_background=False, seed_demo=False)
    tight = base.ratelimit.model_copy(update={"ip_api_rate": 0.001, "ip_api_burst": 1})
    return create_app(base.model_copy(update={"ratelimit": tight}))


async def measure(n: int = 20_000) -> dict[str, Any]:
    """Microseconds per call: bare, through the limiter (admitted), refused by the limiter
    alone, and refused by the whole application."""
    roomy = RateLimitSection(ip_api_rate=1e9, ip_api_burst=10**9, global_rate=1e9,
                             global_burst=10**9)
    tight = RateLimitSection(ip_api_rate=0.001, ip_api_burst=1)
    bare, _ = await _per_call(_ok, "10.0.0.1", n)
    admitted, ok = await _per_call(ProtectionMiddleware(_ok, Protection(roomy)), "10.0.0.1", n)
    refused, no = await _per_call(ProtectionMiddleware(_ok, Protection(tight)), "10.0.0.2", n)
    if ok != {200} or no != {200, 429}:  # the refused run's first call takes its one token
        raise RuntimeError(f"unexpected answers: admitted {ok}, refused {no}")
    with tempfile.TemporaryDirectory(prefix="fulema-cost-") as tmp:
        app = _refusing_app(Path(tmp))
        await _per_call(app, "10.0.0.3", 10)  # the first passes (and builds the stack)
        in_app, _ = await _per_call(app, "10.0.0.3", n)
    return {"calls": n, "bare_us": round(bare * 1e6, 2), "app_refused_us": round(in_app * 1e6, 2),
            "admitted_us": round(admitted * 1e6, 2), "refused_us": round(refused * 1e6, 2),
            "admitted_overhead_us": round((admitted - bare) * 1e6, 2),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str]) -> int:
    r = asyncio.run(measure())
    if "--json" in argv:  # for bench.burst, which runs it apart (create_app installs a keyring)
        sys.stdout.write(json.dumps(r) + "\n")
        return 0
    print(f"limiter cost in process ({r['calls']} calls each, load {r['loadavg']}): bare ASGI "
          f"call {r['bare_us']} us, admitted {r['admitted_us']} us (+{r['admitted_overhead_us']}"
          f" us), refused 429 {r['refused_us']} us; refused by the whole app "
          f"{r['app_refused_us']} us")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
