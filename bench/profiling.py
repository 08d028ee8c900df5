"""Where a server worker spends its time during order create: py-spy, sampled from outside.

py-spy attaches to the running worker (no code change, low overhead) and writes collapsed
stacks; this module turns them into the top frames by own time and the share per library, which
docs/performance.md quotes. If py-spy is missing and cannot be installed, the report says so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.server import BIN, try_install

AREAS = (("sqlalchemy", "SQLAlchemy"), ("asyncpg", "asyncpg driver"),
         ("aiosqlite", "aiosqlite driver"), ("sqlite3", "aiosqlite driver"),
         ("fulema/", "fulema code"), ("pydantic", "pydantic"), ("starlette", "starlette/FastAPI"),
         ("fastapi", "starlette/FastAPI"), ("uvicorn", "uvicorn"), ("granian", "granian"),
         ("httpx", "httpx (channel calls)"), ("httpcore", "httpx (channel calls)"),
         ("h11", "httpx (channel calls)"), ("structlog", "logging"), ("logging", "logging"),
         ("asyncio", "asyncio/event loop"), ("uvloop", "asyncio/event loop"))


def py_spy() -> str | None:
    exe = shutil.which("py-spy") or (str(BIN / "py-spy") if (BIN / "py-spy").exists() else None)
    if exe is None and try_install("py-spy"):
        exe = str(BIN / "py-spy")
    return exe


def start_record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | str:
    exe = py_spy()
    if exe is None:
        return "py-spy is not installed and `pip install py-spy` failed"
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "200", "--format", "raw", "--output", str(out),
                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def area_of(frame: str) -> str:
    for needle, area in AREAS:
        if needle in frame:
            return area
    return "other" if "site-packages" in frame else "python stdlib/other"


def summarize(raw: Path, *, top: int = 15) -> dict[str, Any]:
    """Own-time (leaf) and inclusive top frames and the share of samples per library."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        areas[area_of(frames[-1])] += count
        for frame in set(frames):
            if "fulema/" in frame and "site-packages" not in frame:
                inclusive[frame] += count

    def pct(c: int) -> float:
        return round(100.0 * c / total, 1) if total else 0.0

    return {"samples": total,
            "own_top": [{"frame": f, "pct": pct(c)} for f, c in own.most_common(top)],
            "fulema_inclusive_top": [{"frame": f, "pct": pct(c)}
                                     for f, c in inclusive.most_common(top)],
            "by_area": {a: pct(c) for a, c in areas.most_common()}}


if __name__ == "__main__":  # summarise a raw file by hand: python -m bench.profiling FILE
    print(summarize(Path(sys.argv[1])))
