"""`python -m bench.ab` phases: `op:conc` is that many requests in flight whatever the number
of API processes, `op:concn` that many per process, so a sweep over 1, 2 and 4 processes keeps
each process as busy as the one before (CPU per operation per process must stay flat)."""

from __future__ import annotations

from bench.ab import parse_phases


def test_a_phase_in_flight_per_process_scales_with_the_processes() -> None:
    assert parse_phases(["create:8n", "query:8"], 1) == [("create", 8), ("query", 8)]
    assert parse_phases(["create:8n", "query:8"], 4) == [("create", 32), ("query", 8)]
