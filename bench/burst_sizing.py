"""The limits `bench.burst` measures under, and the rule that sizes them (docs/operations.md,
"Sizing the limits from CPU").

Why a second rule: the closed-loop S (8 connections pressing one process) is the most the
process completes, not what it can carry with room to spare, and its CPU per create is the
cheapest there is (the background's rounds are shared by many events). Sized from it, the
accepted load (one merchant at its limit and the others at their usual rate) kept the API
process 0.8-0.9 cores busy, and every accepted answer queued behind the others: 14-23x the
unloaded p99. The CPU rule starts from what a create costs at the usual (open-loop) rate, in
the API process and in the worker apart, and from the cores each may use:

    C_api    = utilisation x api_cores    x processes / API CPU per create
    C_worker = utilisation x worker_cores             / worker CPU per create
    C        = min(C_api, C_worker)      the creates per second accepted with headroom
    global   = max(1.25 C, per IP + 1.4 x the others' usual rate): a ceiling above what
                                         the per-app limits let through
    app      = C - the other merchants' usual peak (and above the app's own usual peak)
    per IP   = ip_factor x app

At a utilisation of one half a single-server queue waits on average as long as it serves,
so an answer takes about twice its unloaded time: the goal of issue 13.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fulema.core.channel_settings import RateLimitSection


@dataclass(frozen=True)
class Limits:
    app_rate: float
    app_burst: int
    app_concurrency: int
    ip_rate: float
    global_rate: float
    global_burst: int = 0  # 0: a second of the global rate (the bench's old rule)

    def _global_burst(self) -> int:
        return self.global_burst or max(1, round(self.global_rate))

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
                "FULEMA_RATELIMIT_GLOBAL_BURST": str(self._global_burst())}

    def section(self) -> RateLimitSection:
        """The same limits as settings, for the front's configuration (the rates rounded to
        the tenth the environment carries)."""
        return RateLimitSection(
            enabled=True, trusted_proxies=["127.0.0.1"],
            app_create_rate=round(self.app_rate, 1), app_create_burst=self.app_burst,
            app_concurrency=self.app_concurrency, ip_api_rate=round(self.ip_rate, 1),
            ip_api_burst=max(1, round(self.ip_rate)), global_rate=round(self.global_rate, 1),
            global_burst=self._global_burst())


UNLIMITED = Limits(app_rate=1e6, app_burst=1_000_000, app_concurrency=100_000, ip_rate=1e6,
                   global_rate=1e6)


@dataclass(frozen=True)
class Costs:
    """What one create costs at the usual rate (open loop), beyond each process's idle use."""

    rate: float  # creates per second offered while measuring
    creates: int  # answered 200
    api_ms: float  # API processes' CPU per create
    worker_ms: float | None  # the worker's (None: the background runs in the API process)
    p99_ms: float  # the answers' p99 at that rate


@dataclass(frozen=True)
class Budget:
    """The cores the platform's processes may use, and how busy they may be kept."""

    api_cores: float = 1.0  # per API process: one event loop uses at most one core
    worker_cores: float = 0.5
    utilisation: float = 0.5
    burst_seconds: float = 0.5  # an app's bucket holds this much of its rate


def capacity(costs: Costs, budget: Budget, processes: int = 1) -> tuple[float, list[str]]:
    """C, the creates per second accepted with headroom, and how it was worked out."""
    u = budget.utilisation
    c_api = u * budget.api_cores * processes / (costs.api_ms / 1000)
    lines = [f"CPU per create at {costs.rate:.1f}/s open loop ({costs.creates} creates): API "
             f"{costs.api_ms:.2f} ms"
             + (f", worker {costs.worker_ms:.2f} ms" if costs.worker_ms is not None else
                " (background in process)") + f"; p99 {costs.p99_ms:.1f} ms",
             f"C_api = {u} x {budget.api_cores} cores x {processes} process(es) / "
             f"{costs.api_ms:.2f} ms = {c_api:.1f}/s"]
    c = c_api
    if costs.worker_ms:
        c_worker = u * budget.worker_cores / (costs.worker_ms / 1000)
        lines.append(f"C_worker = {u} x {budget.worker_cores} cores / {costs.worker_ms:.2f} ms"
                     f" = {c_worker:.1f}/s")
        c = min(c, c_worker)
    lines.append(f"C = {c:.1f} creates/s accepted with headroom")
    return c, lines


def cpu_limits(costs: Costs, budget: Budget, *, usual: float, others: int = 1,
               ip_factor: float = 1.25, processes: int = 1) -> tuple[Limits, list[str]]:
    """The limits from C: the global bucket is C; an app may take what the `others` merchants
    at their `usual` rate leave of it, but never less than 1.4 x its own usual rate (below
    that a merchant at its usual peak is refused by its own bucket)."""
    c, lines = capacity(costs, budget, processes)
    left = c - others * usual
    app_rate = max(1.0, left, 1.4 * usual)
    lines.append(f"app create = max(C - {others} x usual {usual:.1f}/s = {left:.1f}, 1.4 x usual"
                 f" = {1.4 * usual:.1f}) = {app_rate:.1f}/s")
    if left < 1.4 * usual:
        lines.append(f"  (C cannot carry {others + 1} merchants at their usual rate with "
                     "headroom: more processes or cores, or lower usual rates)")
    app_burst = max(1, round(app_rate * budget.burst_seconds))
    conc = max(8, math.ceil(app_rate * costs.p99_ms / 1000 * 2))
    # The global bucket refuses every merchant alike, so it sits above what the per-app limits
    # let through (a merchant at its per-IP limit, whose excess the app's bucket refuses after
    # the signature, plus the others at their peak), and a quarter above C.
    global_rate = max(1.25 * c, ip_factor * app_rate + 1.4 * others * usual)
    lines.append(f"burst {app_burst} ({budget.burst_seconds} s of it); concurrency {conc} "
                 f"(rate x 2 x p99); per IP {ip_factor} x app = {ip_factor * app_rate:.1f}/s; "
                 f"global {global_rate:.1f}/s burst {max(1, round(global_rate * budget.burst_seconds))}")
    return Limits(app_rate=app_rate, app_burst=app_burst, app_concurrency=conc,
                  ip_rate=ip_factor * app_rate, global_rate=global_rate,
                  global_burst=max(1, round(global_rate * budget.burst_seconds))), lines


def share_limits(sustainable: float, p99_s: float, *, app_share: float, ip_factor: float
                 ) -> Limits:
    """The earlier rule, from the closed-loop S alone: per-app create rate = `app_share` x S
    (a merchant at its limit leaves the rest of the process to the others); the burst half a
    second of that rate; the app's concurrency share carries its rate at twice the
    calibration's p99, at least 8; per IP `ip_factor` x the app rate; the global bucket out of
    the way (it is shared: a burst that drained it would refuse B too)."""
    app_rate = max(1.0, sustainable * app_share)
    return Limits(app_rate=app_rate, app_burst=max(2, round(app_rate / 2)),
                  app_concurrency=max(8, math.ceil(app_rate * p99_s * 2)),
                  ip_rate=ip_factor * app_rate,
                  global_rate=max(1000.0, 40 * sustainable))

