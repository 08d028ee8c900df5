"""docs/scaling.md's model (`python -m bench.scaling_model`) is arithmetic on measured inputs:
the bank's design rate, the per-payment sums, the serial lines' load, and which one saturates
first must come out as the document says, and a changed input must change them."""

from __future__ import annotations

import pytest
from bench.scaling_model import (
    Inputs,
    design_rate,
    first_saturated,
    model,
    parse_set,
    per_payment,
    render,
)


def test_todays_bank_is_217_payments_a_second_at_the_design_rate() -> None:
    # 130,000 merchants x 20 a day, 15 % in the peak hour, twice its mean in the busiest minutes
    assert design_rate(Inputs()) == pytest.approx(216.67, abs=0.01)
    assert design_rate(Inputs(), 100) == pytest.approx(21_666.7, abs=0.1)


def test_a_payment_is_its_cycle_and_its_queries() -> None:
    i = Inputs(api_cpu_ms_cycle=10, api_cpu_ms_query=1, statements_cycle=20, statements_query=2,
               commits_cycle=5, commits_query=2, queries_per_payment=2)
    assert per_payment(i) == {"api_cpu_ms": 12, "worker_cpu_ms": 0, "statements": 24,
                              "commits": 9, "round_trips": 42}
    # the background in a worker: its CPU is its own figure, sized apart from the API's
    split = Inputs(api_cpu_ms_cycle=6, api_cpu_ms_query=1, worker_cpu_ms_cycle=3)
    assert per_payment(split)["worker_cpu_ms"] == 3
    assert model(split, 1)["worker_cores"] == pytest.approx(216.67 * 3 / 1000 / 0.6, abs=0.01)
    assert "worker cores at 60% (3.0 ms per payment)" in render(split)


def test_the_first_serial_line_past_one_is_named_and_none_below() -> None:
    i = Inputs(serial_round_trips={"a.consumer": 10.0, "(sequencer)": 1.0}, rtt_ms_postgres=0.4,
               rtt_ms_distributed=1.0, events_per_payment=2.0, pgbench_one_primary=1e9)
    today, tenfold = model(i, 1), model(i, 10)
    # 216.7/s x 10 round trips x 0.4 ms = 0.87 of one line: fits; x10: 8.7 does not
    assert first_saturated(today, "postgres").startswith("none (highest: a.consumer 0.87")
    assert first_saturated(tenfold, "postgres") == "a.consumer (8.67)"
    # the same round trips at the distributed latency: 216.7/s x 1 x 1.0 ms
    assert today["serial_load_distributed"]["(sequencer)"] == pytest.approx(0.22, abs=0.01)


def test_an_input_can_be_changed_by_name_and_an_unknown_one_is_refused() -> None:
    i = parse_set(Inputs(), ["statements_cycle=20", "serial.marketing.settle=1.5"])
    assert i.statements_cycle == 20.0
    assert i.serial_round_trips["marketing.settle"] == 1.5
    assert "| design rate, payments/s | 217 | 2,167 | 21,667 |" in render(i)
    with pytest.raises(SystemExit, match="no input named 'statments_cycle'"):
        parse_set(Inputs(), ["statments_cycle=20"])
