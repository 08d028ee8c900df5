"""The one-screen summary printed at the end of `python -m bench` (rich), and `--compare RUN`:
each headline figure beside the same figure of an earlier result JSON, so a regression shows
in one command.

A figure is read from a result by a path of keys; lower is better for costs and latencies,
higher for rates. The comparison is made per configuration label ("uvicorn x1").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

Getter = Callable[[dict[str, Any], dict[str, Any]], float | None]


def _phase(name: str, *keys: str) -> Getter:
    def get(cfg: dict[str, Any], _results: dict[str, Any]) -> float | None:
        value: Any = cfg.get("phases", {}).get(name, {})
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        return float(value) if isinstance(value, int | float) else None
    return get


def _sweep_ratio(cfg: dict[str, Any], _results: dict[str, Any]) -> float | None:
    """CPU per create at the highest swept concurrency over the lowest (goal: flat, <= 1.1)."""
    sweep = sorted((int(n[len("create_c"):]), ph.get("api_cpu_ms_per_op"))
                   for n, ph in cfg.get("phases", {}).items() if n.startswith("create_c"))
    if len(sweep) < 2 or not sweep[0][1] or not sweep[-1][1]:
        return None
    return round(float(sweep[-1][1]) / float(sweep[0][1]), 3)


def _counted(op: str) -> Getter:
    def get(_cfg: dict[str, Any], results: dict[str, Any]) -> float | None:
        value = results.get("statements_per_op_counted", {}).get(op)
        return float(value) if isinstance(value, int | float) else None
    return get


def _create_per_ping(cfg: dict[str, Any], results: dict[str, Any]) -> float | None:
    create, ping = _phase("create", "throughput")(cfg, results), \
        _phase("ping", "throughput")(cfg, results)
    return round(create / ping, 4) if create and ping else None


# (label, getter, lower is better, goal from issue 15 or None)
FIGURES: list[tuple[str, Getter, bool, float | None]] = [
    ("API CPU ms per order create", _phase("create", "api_cpu_ms_per_op"), True, 1.2),
    ("API CPU ms per full payment cycle", _phase("cycle", "api_cpu_ms_per_op"), True, 4.0),
    ("API CPU ms per payer-code payment", _phase("barcode", "api_cpu_ms_per_op"), True, None),
    ("API CPU ms per query", _phase("query", "api_cpu_ms_per_op"), True, 0.4),
    ("CPU per create, highest / lowest concurrency", _sweep_ratio, True, 1.1),
    ("order create ops/s", _phase("create", "throughput"), False, None),
    ("full payment cycle ops/s", _phase("cycle", "throughput"), False, None),
    ("query ops/s", _phase("query", "throughput"), False, None),
    ("create p99 ms at half its rate", _phase("create_fixed_rate", "latency_ms", "p99"), True,
     10.0),
    ("create / bare /ping", _create_per_ping, False, 0.07),
    ("SQL statements per create (counted)", _counted("create"), True, 4.0),
    ("SQL statements per cycle (counted)", _counted("cycle"), True, 10.0),
]


def path_of(ref: str, results_dir: Path) -> Path:
    """RUN as a path to a JSON file, or a stamp (`20261126T050000Z`) in the results folder."""
    path = Path(ref)
    if not path.exists():
        path = results_dir / (ref if ref.endswith(".json") else f"{ref}.json")
    return path


def exists(ref: str, results_dir: Path) -> bool:
    return path_of(ref, results_dir).is_file()


def load(ref: str, results_dir: Path) -> dict[str, Any]:
    """RUN as a path to a JSON file, or a stamp (`20261126T050000Z`) in the results folder."""
    path = path_of(ref, results_dir)
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"


def rows(results: dict[str, Any], before: dict[str, Any] | None = None
         ) -> list[dict[str, Any]]:
    out = []
    earlier = {c["label"]: c for c in (before or {}).get("configs", [])}
    for cfg in results.get("configs", []):
        old = earlier.get(cfg["label"])
        for label, get, lower, goal in FIGURES:
            now = get(cfg, results)
            was = get(old, before) if old is not None and before is not None else None
            change = round((now / was - 1) * 100, 1) if now is not None and was else None
            met = None if now is None or goal is None else (now <= goal if lower
                                                            else now >= goal)
            better = None if change is None or change == 0 else (change < 0) == lower
            out.append({"config": cfg["label"], "figure": label, "value": now, "before": was,
                        "change_pct": change, "better": better, "goal": goal, "met": met})
    return out


def render(results: dict[str, Any], before: dict[str, Any] | None = None,
           console: Console | None = None) -> list[dict[str, Any]]:
    data = rows(results, before)
    load = results.get("machine", {})
    title = (f"run {results.get('stamp')}"
             + (f" against {before.get('stamp')}" if before else "")
             + f" · load average {load.get('loadavg_before', ['?'])[0]} → "
               f"{(load.get('loadavg_after') or ['?'])[0]}")
    table = Table(title=title, title_justify="left")
    for col, justify in (("config", "left"), ("figure", "left"), ("now", "right"),
                         *((("before", "right"), ("change", "right")) if before else ()),
                         ("goal", "right"), ("met", "center")):
        table.add_column(col, justify=justify)
    for r in data:
        change = "–" if r["change_pct"] is None else (
            f"[{'green' if r['better'] else 'red' if r['better'] is False else 'white'}]"
            f"{r['change_pct']:+.1f}%[/]")
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[r["met"]]
        cells = [r["config"], r["figure"], _fmt(r["value"])]
        if before:
            cells += [_fmt(r["before"]), change]
        table.add_row(*cells, _fmt(r["goal"]), met)
    # a log or a pipe gets the whole table rather than rich's 80-column default
    (console or Console(width=None if sys.stdout.isatty() else 140)).print(table)
    return data
