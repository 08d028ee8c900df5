"""The columnar part of a reconciliation, shared by `runs.classify` and `bench.recon`.

Parsing the statement and reading our side of the day are independent, and each is mostly
waiting on something else: polars parses in a worker thread (it releases the GIL), while the
PostgreSQL server scans the orders and writes the COPY stream on its own core. So `load` runs
them at the same time: the day costs the slower of the two, not their sum. A refused file is
still refused with its line and reason, after the read in flight has been let finish (a COPY
cancelled half-way would leave its connection in an unknown state), and nothing is written.

`classify` then runs the two matching passes (`matching`); only the few lines left over by
pass one go back to payments, by id.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from fulema.core.db import Database
from fulema.payments import service as payments
from fulema.reconciliation import matching
from fulema.reconciliation.parsers import parse_statement
from fulema.reconciliation.statement import Statement


@dataclass(frozen=True)
class Loaded:
    """Both sides of the day, and the wall-clock seconds each took (they overlap)."""

    statement: Statement
    ours: pl.DataFrame
    parse_s: float
    read_s: float


def _timed_parse(channel: str, data: bytes) -> tuple[Statement, float]:
    t0 = time.perf_counter()
    statement = parse_statement(channel, data)
    return statement, time.perf_counter() - t0


async def _timed_read(db: Database, channel: str, start: datetime,
                      end: datetime) -> tuple[pl.DataFrame, float]:
    t0 = time.perf_counter()
    ours = matching.read_ours(await payments.export_channel_day(
        db, channel=channel, start=start, end=end))
    return ours, time.perf_counter() - t0


async def load(db: Database, *, channel: str, data: bytes, start: datetime,
               end: datetime) -> Loaded:
    """The parsed statement and our records of [start, end), read concurrently.
    StatementError (from the parser) when the file is refused."""
    read = asyncio.ensure_future(_timed_read(db, channel, start, end))
    try:
        statement, parse_s = await asyncio.to_thread(_timed_parse, channel, data)
    except BaseException:
        await asyncio.gather(read, return_exceptions=True)
        raise
    ours, read_s = await read
    return Loaded(statement=statement, ours=ours, parse_s=parse_s, read_s=read_s)


async def classify(db: Database, loaded: Loaded, *, channel: str, start: datetime,
                   end: datetime) -> pl.DataFrame:
    """Every line and record of the day with its result (`matching.OUT_COLUMNS`)."""
    first = await asyncio.to_thread(
        matching.match_day, loaded.statement.lines, loaded.ours,
        day_start_ms=int(start.timestamp() * 1000), day_end_ms=int(end.timestamp() * 1000))
    order_ids, refund_ids = matching.lookup_ids(first.leftover)
    found = matching.read_ours(await payments.lookup_records(
        db, channel=channel, order_ids=order_ids, refund_ids=refund_ids))
    return matching.combine(first, matching.classify_rest(first.leftover, found))
