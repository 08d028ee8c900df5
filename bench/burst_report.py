"""What `bench.burst` prints: its goals, measured, from the generators' raw answers.

The timelines are (start offset s, latency s, status) per request, offsets from the moment
the generator's phase began (the shared wall-clock start), so the burst's window and the
recovery's seconds are cut from them here rather than by separate runs.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from bench.loadgen import percentile

if TYPE_CHECKING:
    from bench.burst import BurstPlan

RATIO_GOAL = 2.0  # accepted p99 and B's p99 within 2x their unloaded p99
REFUSAL_GOAL_MS = 5.0
RECOVERY_GOAL_S = 5.0  # "recovers by itself": within a few seconds of the burst's end


def _p(values: list[float], q: float) -> float | None:
    v = percentile(sorted(values), q)
    return None if v is None else round(v * 1000, 2)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def per_second(timeline: list[list[float]]) -> list[dict[str, Any]]:
    """Each second of a phase: accepted count and p99, refused and other answers."""
    ok: dict[int, list[float]] = defaultdict(list)
    refused: dict[int, int] = defaultdict(int)
    other: dict[int, int] = defaultdict(int)
    for start, latency, status in timeline:
        s = int(start)
        if status == 200:
            ok[s].append(latency)
        elif status in (429, 503):
            refused[s] += 1
        else:
            other[s] += 1
    last = max([*ok, *refused, *other], default=-1)
    return [{"second": s, "ok": len(ok[s]), "p99_ms": _p(ok[s], 99), "refused": refused[s],
             "other": other[s]} for s in range(last + 1)]


def recovered_after(seconds: list[dict[str, Any]], limit_ms: float | None) -> float | None:
    """Seconds after the burst until every later second is within the limit and unrefused;
    None if the phase never got there."""
    if limit_ms is None:
        return None
    good = [s["other"] == 0 and s["refused"] == 0 and s["ok"] > 0
            and (s["p99_ms"] or 0) <= limit_ms for s in seconds]
    for k in range(len(good)):
        if all(good[k:]):
            return float(k)
    return None


def _limit(unloaded_p99: float | None) -> float | None:
    return None if unloaded_p99 is None else RATIO_GOAL * unloaded_p99


def analyse(phases: dict[str, Any], lost: dict[str, Any], *, plan: BurstPlan
            ) -> dict[str, Any]:
    a0 = phases["A_alone"]["latency_ms"]["p99"]
    b0 = phases["B_alone"]["latency_ms"]["p99"]
    burst = phases["A_burst"]
    refused = burst.get("refused_latency_ms", {})
    b_lat = [lat for start, lat, status in phases["B_during"].get("timeline", [])
             if start < plan.burst and status == 200]
    b_bad = sum(1 for start, _, status in phases["B_during"].get("timeline", [])
                if start < plan.burst and status != 200)
    accepted_p99 = burst["latency_ms"]["p99"]
    b_p99 = _p(b_lat, 99)
    seconds = per_second(phases["A_recovery"].get("timeline", []))
    after = recovered_after(seconds, _limit(a0))
    n_lost = sum(c["lost"] + c["duplicates"] + c["refused_in_db"] for c in lost.values())
    return {
        "unloaded_p99_ms": {"A": a0, "B": b0},
        "burst": {"offered_rate": burst.get("target_rate"), "sent": burst["sent"],
                  "accepted": burst["ok"], "refused": len(burst.get("refused_ids", [])),
                  "other_errors": burst["errors"] - len(burst.get("refused_ids", [])),
                  "error_kinds": burst["error_kinds"], "accepted_p99_ms": accepted_p99,
                  "accepted_p99_ratio": _ratio(accepted_p99, a0),
                  "refusal_p50_ms": refused.get("p50"), "refusal_p99_ms": refused.get("p99"),
                  "generator_cpu_util": burst["generator_cpu_util"]},
        "B_during_burst": {"ok": len(b_lat), "not_ok": b_bad, "p99_ms": b_p99,
                           "p99_ratio": _ratio(b_p99, b0)},
        "recovery": {"seconds": seconds, "recovered_after_s": after,
                     # the first good second: a later spike (the machine's) does not hide it
                     "first_good_second": next(
                         (float(k) for k in range(len(seconds))
                          if recovered_after(seconds[k:k + 1], _limit(a0)) == 0.0), None),
                     "p99_ms": phases["A_recovery"]["latency_ms"]["p99"]},
        "lost": n_lost,
        "goals": [
            _goal("accepted p99 / unloaded p99 (A)", _ratio(accepted_p99, a0), RATIO_GOAL),
            _goal("429/503 answer p99 ms", refused.get("p99"), REFUSAL_GOAL_MS),
            _goal("accepted but lost (+ refused but written)", n_lost, 0),
            _goal("B p99 during burst / B alone", _ratio(b_p99, b0), RATIO_GOAL),
            _goal("B answers not 200 during burst", b_bad, 0),
            _goal("seconds until A's p99 <= 2x unloaded", after, RECOVERY_GOAL_S)],
    }


def cpu_figures(used: dict[str, dict[str, float]], phases: dict[str, Any]
                ) -> dict[str, Any]:
    """The server's cores busy per phase, and its CPU per answer beyond its idle use (its own
    job loops): a server near one core is saturated (its event loop queues); one below that
    while long `waiting_for_cpu` is starved by the other processes on the machine. The burst's
    figure per answer includes the background work that answers cause (an accepted order is
    asked about at the channel until it is paid or expires), so it grows with open orders."""
    idle = used["idle"]["cpu_s"] / used["idle"]["wall_s"] if used.get("idle") else 0.0
    answers = {"A_alone": phases["A_alone"]["sent"], "B_alone": phases["B_alone"]["sent"]}
    if "burst" in used:
        b_in = [s for start, _, s in phases["B_during"].get("timeline", [])
                if start < used["burst"]["wall_s"]]
        answers["burst"] = phases["A_burst"]["sent"] + len(b_in)

    def beyond_idle(u: dict[str, float]) -> float:
        return max(0.0, u["cpu_s"] - idle * u["wall_s"]) * 1000

    out: dict[str, Any] = {
        name: {"cores_busy": round(u["cpu_s"] / u["wall_s"], 2),
               # runnable but not running, per wall second: the machine's share of the delay
               "waiting_for_cpu": round(u.get("runqueue_wait_s", 0) / u["wall_s"], 2),
               "cpu_ms_per_answer": round(beyond_idle(u) / answers[name], 2)
               if answers.get(name) else None}
        for name, u in used.items() if u["wall_s"]}
    return out


def _goal(name: str, value: float | None, bound: float) -> dict[str, Any]:
    return {"goal": name, "value": value, "bound": bound,
            "met": None if value is None else value <= bound}


def render(results: dict[str, Any]) -> str:
    lim = results["limits"]
    shapes: dict[str, Any] = results.get("shapes") or {"none": results}
    lines = [
        f"burst benchmark {results['stamp']} ({results['db']}, uvicorn "
        f"x{results['plan'].get('workers', 1)}, background in "
        f"{results['plan'].get('background', 'process')}, limits ON"
        f"{', shared through Redis' if results['plan'].get('redis_url') else ''}; shapes: "
        f"{', '.join(_name(k) for k in shapes)})",
        f"  load average before {results['loadavg_before']} after {results['loadavg_after']}"
        f" (cpus {os.cpu_count()})",
        f"  sustainable create rate S = {results['sustainable_rate']:.1f}/s; normal rate "
        f"{results['normal_rate']:.1f}/s per merchant",
        f"  limits: app create {lim['app_rate']:.1f}/s burst {lim['app_burst']}, app "
        f"concurrency {lim['app_concurrency']}, per IP {lim['ip_rate']:.1f}/s, global "
        f"{lim['global_rate']:.0f}/s",
        *(f"    {line}" for line in results.get("derivation", []))]
    for name, shape in shapes.items():
        lines += [f" {_name(name)}:", *_shape_lines(shape)]
    lines.append(
        "  in process: the limiter adds {admitted_overhead_us} us to an admitted request and "
        "refuses in {refused_us} us; the whole app refuses in {app_refused_us} us (bare ASGI "
        "call {bare_us} us)".format(**results["limiter_cost"]))
    lines.append("  goals: " + " | ".join(_name(k) for k in shapes))
    first = next(iter(shapes.values()))
    for i, g in enumerate(first["analysis"]["goals"]):
        cells = []
        for shape in shapes.values():
            goal = shape["analysis"]["goals"][i]
            mark = {True: "met", False: "NOT met", None: "n/a"}[goal["met"]]
            cells.append(f"{goal['value']} ({mark})")
        lines.append(f"    {g['goal']} (goal <= {g['bound']}): " + " | ".join(cells))
    return "\n".join(lines)


def _trace_lines(trace: dict[str, Any]) -> list[str]:
    """Where the burst's time and CPU went (bench.burst_trace)."""
    lines = []
    if trace.get("cpu"):
        c = trace["cpu"]
        lines.append(f"  cores during the burst (machine {c['machine_cores_busy']} busy): "
                     + ", ".join(f"{k} {v}" for k, v in c["cores"].items()))
    if trace.get("generators_cpu_s"):
        lines.append("  load generators' CPU s: " + ", ".join(
            f"{k} {v}" for k, v in trace["generators_cpu_s"].items()))
    if trace.get("app_create_handling"):
        h = trace["app_create_handling"]
        lines.append(f"  the app's own create handling in the burst ({h['requests']} requests, "
                     f"A and B): p50 {h['p50']}, p99 {h['p99']}")
    for who, f in (trace.get("front") or {}).items():
        lines.append(
            f"  {who} at the front: {f['accepted']} accepted, nginx request time p50/p99 "
            f"{f['request_time_ms']['p50']}/{f['request_time_ms']['p99']} ms, upstream "
            f"{f['upstream_ms']['p50']}/{f['upstream_ms']['p99']} ms, upstream connect p99 "
            f"{f['upstream_connect_ms']['p99']} ms; {f['refused_at_front']} refused there "
            f"(request time p99 {f['refusal_request_time_ms']['p99']} ms)")
    return lines


SHAPE_NAMES = {"none": "no front (uvicorn alone)", "nginx": "nginx front (bench/front.py)"}


def _name(key: str) -> str:
    shape, _, n = key.partition("#")
    base, plus, changes = shape.partition("+")
    return (SHAPE_NAMES.get(base, base) + (f" with {changes}" if plus else "")
            + (f", round {n}" if n else ""))


def _shape_lines(shape: dict[str, Any]) -> list[str]:
    a = shape["analysis"]
    lines = [
        f"  unloaded p99: A {a['unloaded_p99_ms']['A']} ms, B {a['unloaded_p99_ms']['B']} ms",
        "  burst A: offered {offered_rate:.0f}/s, sent {sent}, accepted {accepted}, refused "
        "{refused}, other {other_errors}; accepted p99 {accepted_p99_ms} ms "
        "({accepted_p99_ratio}x); 429/503 p50 {refusal_p50_ms} ms p99 {refusal_p99_ms} ms; "
        "generator cpu {generator_cpu_util:.0%}".format(**a["burst"]),
        "  B during the burst: {ok} ok, {not_ok} not ok, p99 {p99_ms} ms ({p99_ratio}x "
        "alone)".format(**a["B_during_burst"]),
        f"  recovery: A back at normal rate; first second within 2x unloaded: "
        f"{a['recovery']['first_good_second']}, every second from "
        f"{a['recovery']['recovered_after_s']} s on; per second p99 "
        f"{[s['p99_ms'] for s in a['recovery']['seconds']]}",
        "  server CPU: " + ", ".join(
            f"{k} {v['cores_busy']} cores busy ({v['waiting_for_cpu']} waiting for a CPU), "
            f"{v['cpu_ms_per_answer']} ms per answer"
            for k, v in shape["server_cpu"].items())]
    if shape.get("changes"):
        lim = shape["limits"]
        lines.insert(0, f"  changed: {shape['changes']} (app create burst {lim['app_burst']})")
    if shape.get("worker_cpu"):
        lines.append("  worker CPU: " + ", ".join(
            f"{k} {v['cores_busy']} cores busy, {v['cpu_ms_per_answer']} ms per answer"
            for k, v in shape["worker_cpu"].items()))
    lines += _trace_lines(shape.get("trace") or {})
    if shape.get("front_cpu"):
        f = shape["front_cpu"]
        lines.append(f"  nginx CPU during the burst: {f['cores_busy']} cores busy, "
                     f"{f['cpu_us_per_answer']} us per answer")
    if shape.get("front_refusals") is not None:
        r = shape["front_refusals"]
        lines.append(f"  429s from the burst on: {r['front']} by nginx, {r['in_process']} by "
                     f"the API process behind it (B's: {r.get('B_front')} by nginx, "
                     f"{r.get('B_in_process')} behind it)")
    lines.append(f"  lost or half-written: {a['lost']}  ({shape['lost_check']})")
    return lines
