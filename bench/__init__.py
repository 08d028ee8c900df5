"""Fulema benchmark harness: the payment hot path measured against this machine's own limits.

Every figure is printed next to baselines taken in the same run (the bare `/ping` endpoint and
pgbench TPC-B on the same PostgreSQL), so a ratio stays meaningful on a noisy shared machine.
Run `python -m bench --help`; docs/performance.md explains the method and holds the figures.
"""
