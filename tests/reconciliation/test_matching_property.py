"""Whatever differences are injected into a statement, matching finds each of them with its
kind, and flags nothing else (hypothesis chooses the records and the differences)."""

from __future__ import annotations

from datetime import UTC, date

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from fulema.reconciliation import matching
from fulema.reconciliation.domain import CROSS_DAY_WINDOW_MS, Result
from fulema.reconciliation.runs import day_bounds
from fulema.reconciliation.statement import LINE_SCHEMA

DAY = date(2026, 11, 24)
START, END = (int(x.astimezone(UTC).timestamp() * 1000) for x in day_bounds(DAY))
DIFFS = ["none", "drop", "amount", "status", "extra", "cross_day", "refund_state", "reversed",
         "line_late", "twice"]


def ours_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=matching.OURS_SCHEMA)


def lines_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=LINE_SCHEMA)


def run(lines: pl.DataFrame, ours: pl.DataFrame, everything: pl.DataFrame) -> pl.DataFrame:
    """The engine's two passes, `everything` standing in for payments' lookup."""
    first = matching.match_day(lines, ours, day_start_ms=START, day_end_ms=END)
    order_ids, refund_ids = matching.lookup_ids(first.leftover)
    found = everything.filter(
        ((pl.col("kind") == "PAY") & pl.col("ref").is_in(order_ids))
        | ((pl.col("kind") == "REFUND") & pl.col("ref").is_in(refund_ids)))
    return matching.combine(first, matching.classify_rest(first.leftover, found))


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[str], list[int]]:
    n = draw(st.integers(min_value=1, max_value=40))
    diffs = draw(st.lists(st.sampled_from(DIFFS), min_size=n, max_size=n))
    amounts = draw(st.lists(st.integers(min_value=1, max_value=10**9), min_size=n, max_size=n))
    return diffs, amounts


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_every_injected_difference_is_found_and_nothing_else(
        case: tuple[list[str], list[int]]) -> None:
    diffs, amounts = case
    ours, everything, lines = [], [], []
    expected: dict[tuple[str, str], Result] = {}
    noon = START + 12 * 3600 * 1000
    for i, (diff, fen) in enumerate(zip(diffs, amounts, strict=True)):
        oid, rid = f"ord_{i:04d}", f"ref_{i:04d}"
        at = END - 60_000 if diff == "cross_day" else noon + i
        pay = {"kind": "PAY", "ref": oid, "order_id": oid, "merchant_id": f"m{i % 3}",
               "way_code": "QR_DYNAMIC", "channel_txn_id": f"T{i}", "amount_fen": fen,
               "status": "SUCCESS", "at_ms": at}
        line = {"line": i + 2, "kind": "PAY", "ref": oid, "order_ref": oid, "txn_id": f"T{i}",
                "amount_fen": fen, "status": "SUCCESS", "at": "2026-11-24 12:00:00"}
        if diff == "refund_state":  # a refund the channel lists as not done
            refund = {**pay, "kind": "REFUND", "ref": rid, "channel_txn_id": f"R{i}"}
            ours += [pay, refund]
            everything += [pay, refund]
            lines += [line, {**line, "kind": "REFUND", "ref": rid, "txn_id": f"R{i}",
                             "status": "PROCESSING"}]
            expected[("REFUND", rid)] = Result.STATUS_MISMATCH
            continue
        if diff == "status":  # the channel says paid, we hold it PAYING
            everything.append({**pay, "status": "PAYING", "at_ms": None,
                               "channel_txn_id": None})
            lines.append(line)
            expected[("PAY", oid)] = Result.STATUS_MISMATCH
            continue
        if diff == "reversed":  # paid and reversed at the channel, CLOSED with us: nets to 0
            everything.append({**pay, "status": "CLOSED", "at_ms": None})
            lines += [line, {**line, "kind": "REVERSAL"}]
            continue
        if diff == "line_late":  # we confirmed it yesterday just before midnight
            everything.append({**pay, "at_ms": START - 30_000})
            lines.append(line)
            expected[("PAY", oid)] = Result.CROSS_DAY
            continue
        if diff == "extra":
            lines.append({**line, "ref": f"ghost{i}", "order_ref": f"ghost{i}"})
            expected[("PAY", f"ghost{i}")] = Result.ONLY_AT_CHANNEL
        ours.append(pay)
        everything.append(pay)
        if diff == "drop":
            expected[("PAY", oid)] = Result.ONLY_WITH_US
        elif diff == "cross_day":
            expected[("PAY", oid)] = Result.CROSS_DAY
        elif diff == "twice":  # the channel lists it twice: the second line is 长款
            lines += [line, {**line, "line": 10_000 + i}]
            expected[("PAY", oid)] = Result.ONLY_AT_CHANNEL
        elif diff == "amount":
            lines.append({**line, "amount_fen": fen + 1})
            expected[("PAY", oid)] = Result.AMOUNT_MISMATCH
        else:
            lines.append(line)
    out = run(lines_frame(lines), ours_frame(ours), ours_frame(everything))
    flagged = {(r["kind"], r["ref"]): Result(r["result"])
               for r in matching.discrepancies(out).to_dicts()}
    assert flagged == expected
    # every statement line and every record of ours is accounted for exactly once
    assert sorted(out["line"].drop_nulls().to_list()) == sorted(int(x["line"]) for x in lines)
    assert out.filter(pl.col("our_amount").is_not_null() & (pl.col("kind") != "REVERSAL")
                      ).height >= len(ours)


def test_a_record_far_from_midnight_missing_at_the_channel_is_short_not_cross_day() -> None:
    pay = {"kind": "PAY", "ref": "o1", "order_id": "o1", "merchant_id": "m", "way_code": "JSAPI",
           "channel_txn_id": "T", "amount_fen": 100, "status": "SUCCESS",
           "at_ms": END - CROSS_DAY_WINDOW_MS - 1}
    out = run(lines_frame([]), ours_frame([pay]), ours_frame([pay]))
    assert out["result"].to_list() == [Result.ONLY_WITH_US.value]
    near = {**pay, "at_ms": END - CROSS_DAY_WINDOW_MS}
    out = run(lines_frame([]), ours_frame([near]), ours_frame([near]))
    assert out["result"].to_list() == [Result.CROSS_DAY.value]
