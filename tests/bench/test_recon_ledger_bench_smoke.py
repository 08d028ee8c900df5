"""The reconciliation and ledger-cost benchmarks run end to end on small inputs and report
what they claim: every injected difference found and nothing else, the ledger's books
balanced and its postings visible in the statement count. No timing is asserted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench.ledger_cost import measure
from bench.recon.__main__ import main as recon_main

PG = os.environ.get("FULEMA_TEST_POSTGRES_URL", "")


async def test_ledger_cost_runs_both_phases_and_the_books_balance(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    out = await measure(url, tmp_path, n=4, concurrency=2, rounds=1)
    assert out["payments_per_phase"] == 4
    assert out["trial_balance_total"] == 0
    assert out["last_order_entries"] == 1  # the last payment was posted, once
    # the ledger's consumer writes: the phase with it sends more statements
    assert out["sql_statements_per_payment_with"] > out["sql_statements_per_payment_without"]
    assert out["cpu_ms_per_payment_with"] > 0


@pytest.mark.skipif(not PG, reason="needs FULEMA_TEST_POSTGRES_URL")
def test_recon_bench_finds_exactly_the_injected_differences(
        capsys: pytest.CaptureFixture[str]) -> None:
    # exit code 0 only when every case found exactly the injected differences
    assert recon_main(["--db", PG + "_bench", "--channels", "ecny", "--sizes", "10000"]) == 0
    printed = capsys.readouterr().out
    assert "ecny" in printed
    assert " ok" in printed
    assert "PG cpu" in printed
