"""`python -m bench.sm2`: SM2 sign and verify per operation, on the C library (gmssl-pyx, the
path `fulema.core.gm` takes where its wheel is installed) and on the pure-Python fallback
(`gmssl`), in the same run on the same key and message, with the ratio between them.

Each figure is the median of a few timed batches (so one scheduler hiccup on a shared machine
does not move it); the run takes a few seconds. No assertion: figures are for reading.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from fulema.core import gm


def _per_op(fn: Callable[[], object], *, ops: int, batches: int) -> float:
    """Median seconds per call over `batches` batches of `ops` calls."""
    fn()  # warm up (imports, caches)
    samples = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(ops):
            fn()
        samples.append((time.perf_counter() - start) / ops)
    return statistics.median(samples)


def measure(*, ops: int = 50, batches: int = 5) -> dict[str, dict[str, float]]:
    """{"c": {"sign": s, "verify": s}, "python": {...}}: seconds per operation."""
    private, public = gm.generate_sm2_keypair()
    message = b"txnAmt=1250&merId=777290058110048&orderId=20261126000001"
    signature = gm.sm2_sign(private, public, message)
    results: dict[str, dict[str, float]] = {}
    for name, backend in (("c", gm.C_BACKEND), ("python", gm.PYTHON_BACKEND)):
        if backend is None:
            continue
        results[name] = {
            "sign": _per_op(lambda b=backend: b.sign(private, public, message,
                                                     gm.DEFAULT_USER_ID), ops=ops,
                            batches=batches),
            "verify": _per_op(lambda b=backend: b.verify(public, message, signature,
                                                         gm.DEFAULT_USER_ID), ops=ops,
                              batches=batches),
        }
    # What `sm2_sign` cost before the move: it also derived the public key from the private
    # one on every call (a second scalar multiplication), in Python.
    d = int(private, 16)
    results["python_before"] = {
        "sign": _per_op(lambda: (gm._multiply_g(d), gm.PYTHON_BACKEND.sign(
            private, public, message, gm.DEFAULT_USER_ID)), ops=ops, batches=batches),
        "verify": results["python"]["verify"],
    }
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sm2", description=__doc__)
    p.add_argument("--ops", type=int, default=50, help="calls per timed batch")
    p.add_argument("--batches", type=int, default=5, help="timed batches (median taken)")
    a = p.parse_args(argv)
    results = measure(ops=a.ops, batches=a.batches)
    print(f"SM2 per operation (median of {a.batches} batches x {a.ops} calls)")
    print(f"{'backend':<28}{'sign':>14}{'verify':>14}")
    labels = {"c": "C (gmssl-pyx / GmSSL)", "python": "pure Python (gmssl)",
              "python_before": "sm2_sign before this move"}
    for name, figures in results.items():
        print(f"{labels[name]:<28}{figures['sign'] * 1e6:>11.1f} us"
              f"{figures['verify'] * 1e6:>11.1f} us")
    if "c" in results and "python" in results:
        print(f"{'speed-up (python / C)':<28}"
              f"{results['python']['sign'] / results['c']['sign']:>13.1f}x"
              f"{results['python']['verify'] / results['c']['verify']:>13.1f}x")
        print(f"{'speed-up (before / C)':<28}"
              f"{results['python_before']['sign'] / results['c']['sign']:>13.1f}x"
              f"{results['python_before']['verify'] / results['c']['verify']:>13.1f}x")
    else:
        print("gmssl-pyx is not installed here: only the pure-Python fallback was measured")
    print(f"fulema.core.gm uses: {gm.active_backend()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
