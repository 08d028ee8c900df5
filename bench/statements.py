"""SQL statements per operation on one database, counted in process: the figure that does not
move with the machine's load (docs/performance.md).

    python -m bench.statements postgresql+asyncpg://postgres@127.0.0.1:5432/bench_me [--n 20]
    python -m bench.statements mysql+aiomysql://root@127.0.0.1:3306/test_me
    python -m bench.statements sqlite+aiosqlite:////tmp/count.db

The schema is made afresh from the models (every table dropped first: give it a database of
its own). Counted by `bench.calibrate.statements_per_op`: warmed up, background jobs off, the
request only (the outbox's consumers are counted in the cycle). To compare with a commit, run
the same command with that commit's `src/` first on PYTHONPATH (`bench.ab.extract(REF)`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import orjson

from bench.calibrate import statements_per_op
from fulema.core.db import Database


async def main_async(url: str, n: int) -> dict[str, float]:
    import fulema.app  # noqa: F401 - registers every context's tables on Base.metadata

    db = Database(url)
    try:
        await db.drop_all()
        await db.create_all()
    finally:
        await db.dispose()
    with tempfile.TemporaryDirectory(prefix="fulema-statements-") as tmp:
        return await statements_per_op(url, Path(tmp), n=n)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.statements",
                                description=__doc__.split("\n")[0])
    p.add_argument("url")
    p.add_argument("--n", type=int, default=20)
    a = p.parse_args(argv)
    print(orjson.dumps(asyncio.run(main_async(a.url, a.n))).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
