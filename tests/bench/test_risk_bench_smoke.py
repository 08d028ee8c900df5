"""The risk benchmark's phases run and lose no order (no timing is asserted)."""

from __future__ import annotations

from bench.risk_bench import bench_creates, bench_decide, bench_rules


def test_rules_phase_decides_every_transaction() -> None:
    # bench_rules itself refuses to report when the compiled and interpreted rules disagree
    per_second, cpu_us, cpu_us_interpreted, not_allowed = bench_rules(300)
    assert per_second > 0
    assert cpu_us > 0
    assert cpu_us_interpreted > 0
    assert 0 <= not_allowed <= 300


async def test_creates_phase_answers_every_order_with_and_without_risk() -> None:
    off, on, cpu_off, cpu_on = await bench_creates(1, 3)  # raises on any answer but 200
    assert min(off, on, cpu_off, cpu_on) > 0


async def test_decide_phase_times_every_decision_after_its_warm_up_deny() -> None:
    # bench_decide refuses to report when its warm-up DENY (above the PBOC level B cap) passes
    per_second, median_us, mean_us = await bench_decide(40)
    assert per_second > 0
    assert median_us > 0
    assert mean_us > 0
