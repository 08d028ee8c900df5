"""CPU seconds used by the API processes (the server and its workers), read from /proc, so each
phase can report what one operation costs them: the per-request cost docs/scaling.md models
from. PostgreSQL's side is not measured this way: its backends come and go (pool overflow,
other databases' clients), so a sum over the processes alive at two instants is no delta."""

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


def pid_cpu(pid: int) -> float:
    """One process's CPU seconds so far (0 when it is gone)."""
    return _cpu(pid)


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


def tree_runqueue_wait(pid: int) -> float:
    """Seconds the tree's threads spent runnable but waiting for a CPU (/proc/.../schedstat,
    second field, ns). Its growth per wall second says how starved the server is by other
    processes: CPU use below one core with a long wait is a machine too busy, not a server."""
    total = 0
    for p in process_tree(pid):
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9
