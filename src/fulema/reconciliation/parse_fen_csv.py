"""The e-CNY operator's bill and the bank channel's statement: UTF-8 CSV, amounts in fen.

Both list one row per payment (`record_type` PAY), refund (REFUND) or reversal of a paid
payer-code payment (REVERSE at e-CNY, REVOKE at the bank), by header name; they differ in a
few column names (`FORMATS`).
"""

from __future__ import annotations

import polars as pl

from fulema.reconciliation.statement import FEN, StatementError, any_bad, finish, first_bad
from fulema.reconciliation.table import read_table

KIND = {"PAY": "PAY", "REFUND": "REFUND", "REVERSE": "REVERSAL", "REVOKE": "REVERSAL"}
FORMATS = {"ecny": {"status": "status", "date": "bill_date"},
           "bankpay": {"status": "state", "date": "trade_date"}}


def parse(data: bytes, channel: str) -> pl.DataFrame:
    names = FORMATS[channel]
    columns = ("record_type", "out_trade_no", "trade_no", "out_refund_no", "refund_no",
               "amount_fen", "trade_time", names["status"], names["date"])
    frame = read_table(data.removeprefix(b"\xef\xbb\xbf"), first_line=1, columns=columns)
    frame = frame.with_columns(pl.col("record_type").str.strip_chars()
                               .replace_strict(KIND, default=None).alias("kind"))
    checks = ((pl.col("kind").is_null(), "unknown record_type"),
              (~pl.col("amount_fen").str.contains(FEN), "bad amount"),
              (pl.col("out_trade_no") == "", "no out_trade_no"))
    for bad, why in checks if any_bad(frame, checks) else ():
        row = first_bad(frame, bad)
        if row is not None:
            raise StatementError(int(frame["_line"][row]),
                                 f"{why} ({frame['record_type'][row]!r}, "
                                 f"{frame['amount_fen'][row]!r})")
    is_refund = pl.col("kind") == "REFUND"
    return finish(frame.select(
        line=pl.col("_line"),
        kind=pl.col("kind"),
        ref=pl.when(is_refund).then(pl.col("out_refund_no")).otherwise(pl.col("out_trade_no")),
        order_ref=pl.col("out_trade_no"),
        txn_id=pl.when(is_refund).then(pl.col("refund_no")).otherwise(pl.col("trade_no")),
        amount_fen=pl.col("amount_fen").cast(pl.Int64).abs(),
        status=pl.col(names["status"]),
        at=pl.col(names["date"]) + " " + pl.col("trade_time"),
    ))
