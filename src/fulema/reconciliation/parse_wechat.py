"""WeChat Pay's trade bill (交易账单, ALL): UTF-8 CSV, backtick-prefixed cells, a summary part.

Read by header name (WeChat warns the column order may change), as bytes (no decoding pass:
polars checks the UTF-8). 交易状态 SUCCESS is a payment (amount 订单金额), REFUND a refund
(申请退款金额; our refund id is 商户退款单号), REVOKED the reversal of a payer-code payment.
The summary's 总交易单数 must equal the detail rows.
"""

from __future__ import annotations

import gzip
import zlib

import polars as pl

from fulema.reconciliation.statement import YUAN, StatementError, any_bad, finish, first_bad, yuan_to_fen
from fulema.reconciliation.table import read_table

REQUIRED = ("交易时间", "微信订单号", "商户订单号", "交易状态", "微信退款单号", "商户退款单号",
            "退款状态", "订单金额", "申请退款金额")
SUMMARY_HEAD = "总交易单数".encode()
KIND = {"SUCCESS": "PAY", "REFUND": "REFUND", "REVOKED": "REVERSAL"}


def _gunzip(data: bytes) -> bytes:
    """One inflate pass that also checks the gzip trailer's CRC (gzip.decompress runs a second
    pass over the output for the CRC); a file of several gzip members goes the long way."""
    inflate = zlib.decompressobj(wbits=31)
    out = inflate.decompress(data)
    if not inflate.eof:
        raise zlib.error("the gzip stream is cut short")
    if inflate.unused_data:
        return gzip.decompress(data)
    return out


def _plain(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            data = _gunzip(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise StatementError(0, f"not a gzip file: {exc}", encoding=True) from exc
    return data.removeprefix(b"\xef\xbb\xbf")


def parse(data: bytes) -> pl.DataFrame:
    data = _plain(data)
    cut = data.rfind(b"\n" + SUMMARY_HEAD)
    if cut < 0:
        raise StatementError(data.count(b"\n") + 1, "no summary part (a 总交易单数 row)")
    summary = data[cut + 1:]
    frame = read_table(data, first_line=1, columns=REQUIRED, end=cut + 1)
    frame = frame.with_columns(pl.col(REQUIRED).str.strip_chars().str.strip_prefix("`"))
    rows = summary.split(b"\n")
    count = rows[1].split(b",")[0].strip().lstrip(b"`") if len(rows) > 1 else b""
    if not count.isdigit() or int(count) != frame.height:
        # the summary's line number is counted only here: a pass over the whole file
        raise StatementError(data.count(b"\n", 0, cut + 1) + 2,
                             f"summary counts {count.decode(errors='replace')!r} rows, the "
                             f"bill has {frame.height}")
    kind = pl.col("交易状态").replace_strict(KIND, default=None)
    is_pay = pl.col("交易状态") == "SUCCESS"
    amount_col = pl.when(is_pay).then(pl.col("订单金额")).otherwise(pl.col("申请退款金额"))
    frame = frame.with_columns(kind.alias("kind"), amount_col.alias("_amount"))
    checks = ((pl.col("kind").is_null(), "unknown 交易状态"),
              (~pl.col("_amount").str.contains(YUAN), "bad amount"),
              (pl.col("商户订单号") == "", "no 商户订单号"))
    for bad, why in checks if any_bad(frame, checks) else ():
        row = first_bad(frame, bad)
        if row is not None:
            raise StatementError(int(frame["_line"][row]),
                                 f"{why} ({frame['交易状态'][row]!r}, {frame['_amount'][row]!r})")
    is_refund = pl.col("kind") == "REFUND"
    return finish(frame.select(
        line=pl.col("_line"),
        kind=pl.col("kind"),
        ref=pl.when(is_refund).then(pl.col("商户退款单号")).otherwise(pl.col("商户订单号")),
        order_ref=pl.col("商户订单号"),
        txn_id=pl.when(is_refund).then(pl.col("微信退款单号")).otherwise(pl.col("微信订单号")),
        amount_fen=yuan_to_fen("_amount").abs(),
        status=pl.when(is_pay).then(pl.lit("SUCCESS")).otherwise(pl.col("退款状态")),
        at=pl.col("交易时间"),
    ))
