"""Matching a statement against our records, columnar (polars), in two passes.

Pass one (`match_day`) joins the statement's PAY and REFUND lines with our records of the day
(payments' export: what we confirmed in the day) on (kind, our id) in one hash join: matched,
amount or status mismatches, our records the channel lacks, a second line for the same record
(长款: the channel moved it twice), and the lines we have no record of that day for. Pass two
(`classify_rest`) takes those leftover lines with what payments says of their ids on any day
and in any state (`payments.service.lookup_records`): a record in
another state is a status mismatch, one confirmed on another day a cross-day, no record at all
is 长款. A reversal (撤销) nets a payment we hold as unpaid to zero.

Every step is an expression over whole columns; no Python loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from fulema.payments.service import ChannelRecords
from fulema.reconciliation.domain import CROSS_DAY_WINDOW_MS, Result

_COMMON = {"merchant_id": pl.String, "way_code": pl.String, "channel_txn_id": pl.String,
           "amount_fen": pl.Int64, "status": pl.String, "at_ms": pl.Int64}
PAY_SCHEMA = {"ref": pl.String, **_COMMON}
REFUND_SCHEMA = {"ref": pl.String, "order_id": pl.String, **_COMMON}
OURS_SCHEMA = {"kind": pl.String, "ref": pl.String, "order_id": pl.String, **_COMMON}
PAID = ("SUCCESS", "PARTIALLY_REFUNDED", "REFUNDED")
OUT_COLUMNS = ["result", "kind", "ref", "order_id", "merchant_id", "way_code", "txn_id",
               "our_amount", "channel_amount", "our_status", "channel_status", "line", "at",
               "at_ms"]


def read_ours(records: ChannelRecords) -> pl.DataFrame:
    """Payments' two export tables as one typed frame (`OURS_SCHEMA`): a payment's order id
    is its ref."""
    pays = pl.read_csv(records.pays, schema=PAY_SCHEMA, has_header=True)
    refunds = pl.read_csv(records.refunds, schema=REFUND_SCHEMA, has_header=True)
    return pl.concat([
        pays.select(pl.lit("PAY").alias("kind"), "ref", pl.col("ref").alias("order_id"),
                    *_COMMON),
        refunds.select(pl.lit("REFUND").alias("kind"), *REFUND_SCHEMA)])


@dataclass(frozen=True)
class FirstPass:
    classified: pl.DataFrame  # OUT_COLUMNS, every row of both sides settled in pass one
    leftover: pl.DataFrame  # statement lines with no record of ours on the day (line schema)


def match_day(lines: pl.DataFrame, ours: pl.DataFrame, *, day_start_ms: int,
              day_end_ms: int) -> FirstPass:
    main = lines.filter(pl.col("kind") != "REVERSAL")
    # a second line for the same payment or refund is money the channel moved twice: 长款
    # (computed once; the usual file repeats nothing, and then main is not copied)
    first_seen = main.select(pl.struct("kind", "ref").is_first_distinct().alias("f"))["f"]
    repeated = main.filter(~first_seen)
    if repeated.height:
        main = main.filter(first_seen)
    joined = main.join(ours, on=["kind", "ref"], how="full", coalesce=True, suffix="_ours")
    has_line, has_ours = pl.col("line").is_not_null(), pl.col("order_id").is_not_null()
    near_midnight = ((pl.col("at_ms") < day_start_ms + CROSS_DAY_WINDOW_MS)
                     | (pl.col("at_ms") >= day_end_ms - CROSS_DAY_WINDOW_MS))
    result = (pl.when(has_line & has_ours & (pl.col("amount_fen") != pl.col("amount_fen_ours")))
              .then(pl.lit(Result.AMOUNT_MISMATCH.value))
              .when(has_line & has_ours & (pl.col("status") != "SUCCESS"))
              .then(pl.lit(Result.STATUS_MISMATCH.value))
              .when(has_line & has_ours).then(pl.lit(Result.MATCHED.value))
              .when(has_ours & near_midnight).then(pl.lit(Result.CROSS_DAY.value))
              .when(has_ours).then(pl.lit(Result.ONLY_WITH_US.value))
              .otherwise(pl.lit(None)))
    joined = joined.with_columns(result.alias("result"))
    settled = joined.filter(pl.col("result").is_not_null()).select(
        "result", "kind", "ref", "order_id", "merchant_id", "way_code",
        txn_id=pl.coalesce("txn_id", "channel_txn_id"),
        our_amount=pl.col("amount_fen_ours"), channel_amount=pl.col("amount_fen"),
        our_status=pl.col("status_ours"), channel_status=pl.col("status"),
        line="line", at="at", at_ms="at_ms")
    twice = repeated.select(
        result=pl.lit(Result.ONLY_AT_CHANNEL.value), kind="kind", ref="ref",
        order_id=pl.lit(None, pl.String), merchant_id=pl.lit(None, pl.String),
        way_code=pl.lit(None, pl.String), txn_id="txn_id", our_amount=pl.lit(None, pl.Int64),
        channel_amount=pl.col("amount_fen"), our_status=pl.lit(None, pl.String),
        channel_status=pl.col("status"), line="line", at="at", at_ms=pl.lit(None, pl.Int64))
    leftover_main = joined.filter(pl.col("result").is_null()).select(lines.columns)
    leftover = pl.concat([leftover_main, lines.filter(pl.col("kind") == "REVERSAL")])
    return FirstPass(classified=pl.concat([settled, twice], how="vertical_relaxed"),
                     leftover=leftover)


def lookup_ids(leftover: pl.DataFrame) -> tuple[list[str], list[str]]:
    """(order ids, refund ids) payments must be asked about for pass two."""
    orders = leftover.filter(pl.col("kind") != "REFUND")["order_ref"].unique().to_list()
    refunds = leftover.filter(pl.col("kind") == "REFUND")["ref"].unique().to_list()
    return [o for o in orders if o], [r for r in refunds if r]


def classify_rest(leftover: pl.DataFrame, found: pl.DataFrame) -> pl.DataFrame:
    """OUT_COLUMNS for the leftover lines, given payments' records of their ids (`found`)."""
    reversed_orders = leftover.filter(pl.col("kind") == "REVERSAL").select(
        order_ref="order_ref", reversed=pl.lit(True)).unique()
    keyed = leftover.with_columns(
        look_kind=pl.when(pl.col("kind") == "REFUND").then(pl.lit("REFUND"))
        .otherwise(pl.lit("PAY")),
        look_ref=pl.when(pl.col("kind") == "REFUND").then(pl.col("ref"))
        .otherwise(pl.col("order_ref")))
    found = found.rename({"kind": "look_kind", "ref": "look_ref"})
    joined = (keyed.join(found, on=["look_kind", "look_ref"], how="left", suffix="_ours")
              .join(reversed_orders, on="order_ref", how="left"))
    known = pl.col("order_id").is_not_null()
    done_here = (pl.when(pl.col("look_kind") == "PAY").then(pl.col("status_ours").is_in(PAID))
                 .otherwise(pl.col("status_ours") == "SUCCESS"))
    is_rev = pl.col("kind") == "REVERSAL"
    result = (pl.when(~known).then(pl.lit(Result.ONLY_AT_CHANNEL.value))
              .when(is_rev & ~done_here).then(pl.lit(Result.MATCHED.value))
              .when(is_rev).then(pl.lit(Result.STATUS_MISMATCH.value))
              .when((pl.col("kind") == "PAY") & ~done_here & pl.col("reversed").fill_null(False))
              .then(pl.lit(Result.MATCHED.value))
              .when(~done_here).then(pl.lit(Result.STATUS_MISMATCH.value))
              .otherwise(pl.lit(Result.CROSS_DAY.value)))
    return joined.select(
        result=result, kind="kind", ref="ref",
        order_id=pl.coalesce("order_id", pl.when(pl.col("order_ref") != "")
                             .then(pl.col("order_ref"))),
        merchant_id="merchant_id", way_code="way_code", txn_id="txn_id",
        our_amount=pl.col("amount_fen_ours"), channel_amount=pl.col("amount_fen"),
        our_status=pl.col("status_ours"), channel_status=pl.col("status"), line="line",
        at="at", at_ms="at_ms")


def combine(first: FirstPass, rest: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([first.classified.select(OUT_COLUMNS), rest.select(OUT_COLUMNS)],
                     how="vertical_relaxed")


def totals(classified: pl.DataFrame) -> pl.DataFrame:
    """Counts and amounts per merchant, way code (scenario), record kind and result: the rows
    every report is summed from."""
    return (classified.group_by("merchant_id", "way_code", "kind", "result")
            .agg(count=pl.len(), our_amount=pl.col("our_amount").fill_null(0).sum(),
                 channel_amount=pl.col("channel_amount").fill_null(0).sum())
            .sort("merchant_id", "way_code", "kind", "result", nulls_last=True))


def discrepancies(classified: pl.DataFrame) -> pl.DataFrame:
    return classified.filter(pl.col("result") != Result.MATCHED.value)
