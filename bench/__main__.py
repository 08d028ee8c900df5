"""`python -m bench`: run the benchmark harness (see docs/performance.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bench import summary
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
    p.add_argument("--compare", metavar="RUN", help=(
        "an earlier result (JSON path or stamp in the results folder): the summary shows "
        "each figure beside it"))
    p.add_argument("--summary-only", metavar="RUN", help=(
        "print the summary of an existing result (with --compare: against another) and exit"))
    a = p.parse_args(argv)
    return Options(quick=a.quick, db=a.db, workers=a.workers, servers=a.servers,
                   profile=not a.no_profile, write_docs=a.write_docs, out_dir=a.out,
                   compare=a.compare, summary_only=a.summary_only)


def main(argv: list[str] | None = None) -> int:
    opts = parse(sys.argv[1:] if argv is None else argv)
    for ref in (opts.compare, opts.summary_only):
        # before minutes of measuring, not after: a mistyped RUN must not cost the run's table
        if ref and not summary.exists(ref, opts.out_dir):
            print(f"no benchmark result {ref!r} (a JSON path, or a stamp in {opts.out_dir})",
                  file=sys.stderr)
            return 2
    if opts.summary_only:
        before = summary.load(opts.compare, opts.out_dir) if opts.compare else None
        summary.render(summary.load(opts.summary_only, opts.out_dir), before)
        return 0
    asyncio.run(run(opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
