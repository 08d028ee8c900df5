"""`python -m bench.sm2` runs and prints both backends' figures and their ratio (no timing is
asserted: figures are for reading)."""

from __future__ import annotations

import pytest

from bench import sm2
from fulema.core import gm


def test_the_sm2_benchmark_prints_both_backends_and_the_ratio(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert sm2.main(["--ops", "1", "--batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "pure Python (gmssl)" in out
    if gm.C_BACKEND is not None:
        assert "C (gmssl-pyx / GmSSL)" in out
        assert "speed-up (python / C)" in out
    assert f"fulema.core.gm uses: {gm.active_backend()}" in out
