"""CPU seconds used by processes, read from /proc, so each phase can report what one operation
costs the API processes and PostgreSQL: the per-request costs docs/scaling.md models from.

PostgreSQL's figure sums every `postgres` process on the machine (backends, WAL writer,
checkpointer), so it is an upper bound when other databases on the same server are busy.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    return 0.0


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree_cpu(pid: int) -> float:
    return sum(_cpu(p) for p in process_tree(pid))


def postgres_cpu() -> float:
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip() == "postgres":
                    total += _cpu(int(proc.name))
    return total
