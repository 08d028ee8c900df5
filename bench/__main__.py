"""`python -m bench`: run the benchmark harness (see docs/performance.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bench.harness import RESULTS_DIR, Options, run


def parse(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench", description=(
        "Measure Fulema's payment hot path against this machine's own limits: the bare "
        "/ping endpoint and pgbench on the same PostgreSQL, in the same run."))
    p.add_argument("--quick", action="store_true", help="a few seconds per phase (CI smoke)")
    p.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                   help="API processes per configuration (default: 1 2)")
    p.add_argument("--servers", nargs="+", choices=["uvicorn", "granian"], default=["uvicorn"],
                   help="the first gets every phase, the others the hot path only")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy pass")
    p.add_argument("--write-docs", action="store_true",
                   help="replace the generated block in docs/performance.md")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    a = p.parse_args(argv)
    return Options(quick=a.quick, db=a.db, workers=a.workers, servers=a.servers,
                   profile=not a.no_profile, write_docs=a.write_docs, out_dir=a.out)


def main(argv: list[str] | None = None) -> int:
    asyncio.run(run(parse(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
