"""UnionPay's ZM 流水 file: fixed-width GBK lines of 607 bytes, fields split by one space.

Checked and cut as bytes, column by column, never line by line: every line must end exactly
at a multiple of the line length (strided slices of the file check all line ends and all
field separators at C speed), then the fields we need (all ASCII, before the first field that
may hold Chinese text) are sliced by polars. A file that is not pure ASCII is decoded as GBK
once to be sure it is GBK. Our ids come back with the adapter's `Z` for `_` (a void's
`V`), see `channels.unionpay.sign.from_order_id`; S22 is a payment, S31 a refund, S30 the
void of a payer-code payment.
"""

from __future__ import annotations

import io

import polars as pl

from fulema.channels.unionpay.bill import CONSUME, FIELDS, LINE_LENGTH, REFUND, VOID, zm_from_archive
from fulema.reconciliation.statement import StatementError, any_bad, empty, finish, first_bad

KIND = {CONSUME: "PAY", REFUND: "REFUND", VOID: "REVERSAL"}
OFFSETS: dict[str, tuple[int, int]] = {}
_pos = 0
for _name, _width in FIELDS:
    OFFSETS[_name] = (_pos, _width)
    _pos += _width + 1
NEEDED = ("tradeNo", "txnTime", "txnAmt", "queryId", "orderId", "origQryId")


def _zm_bytes(data: bytes) -> bytes:
    if data[:2] == b"PK":
        try:
            data = zm_from_archive(data)
        except ValueError as exc:
            raise StatementError(0, "not a UnionPay statement zip", encoding=True) from exc
    return data


def _slow_line_check(data: bytes) -> StatementError:
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if line and len(line) != LINE_LENGTH:
            return StatementError(lineno, f"wrong line length: {len(line)} bytes, a ZM line "
                                          f"has {LINE_LENGTH}")
        for name, (pos, _) in OFFSETS.items():
            if pos and line and line[pos - 1:pos] != b" ":
                return StatementError(lineno, f"wrong column layout: no separator before {name}")
    return StatementError(0, "unreadable ZM file")


def _check_layout(data: bytes) -> tuple[int, int]:
    """(stride, line count); StatementError for any line of the wrong length or layout."""
    if not data:
        return LINE_LENGTH + 2, 0
    crlf = data[LINE_LENGTH:LINE_LENGTH + 2] == b"\r\n"
    stride = LINE_LENGTH + (2 if crlf else 1)
    if not data.endswith(b"\n"):
        raise StatementError(data.count(b"\n") + 1, "the last line has no line end (a cut file?)")
    if len(data) % stride:
        raise _slow_line_check(data)
    count = len(data) // stride
    if data[stride - 1::stride] != b"\n" * count or (
            crlf and data[LINE_LENGTH::stride] != b"\r" * count):
        raise _slow_line_check(data)
    for pos, _ in OFFSETS.values():
        if pos and data[pos - 1::stride][:count] != b" " * count:
            raise _slow_line_check(data)
    return stride, count


def parse(data: bytes) -> pl.DataFrame:
    data = _zm_bytes(data)
    _, count = _check_layout(data)
    if not count:
        return empty()
    if not data.isascii():
        try:
            data.decode("gbk")
        except UnicodeDecodeError as exc:
            raise StatementError(data[:exc.start].count(b"\n") + 1, "not GBK text (ZM files "
                                 "are GBK)", encoding=True) from exc
    raw = pl.read_csv(io.BytesIO(data), has_header=False, separator="\x1f", quote_char=None,
                      new_columns=["raw"], infer_schema=False, encoding="utf8-lossy")
    col = pl.col("raw")
    frame = raw.select(**{n: col.str.slice(OFFSETS[n][0], OFFSETS[n][1]).str.strip_chars()
                          for n in NEEDED})
    frame = frame.with_columns(pl.col("tradeNo").replace_strict(KIND, default=None).alias("kind"))
    checks = ((pl.col("kind").is_null(), "unknown tradeNo"),
              (~pl.col("txnAmt").str.contains(r"^\d{12}$"), "bad amount (txnAmt)"),
              ((pl.col("queryId") == "") | (pl.col("orderId") == ""),
               "no queryId or orderId"))
    for bad, why in checks if any_bad(frame, checks) else ():
        row = first_bad(frame, bad)
        if row is not None:
            raise StatementError(row + 1, f"{why} ({frame['tradeNo'][row]!r}, "
                                          f"{frame['txnAmt'][row]!r})")
    ours = pl.col("orderId").str.replace_all("Z", "_", literal=True)
    order = pl.when(pl.col("kind") == "REVERSAL").then(
        pl.col("orderId").str.replace_all("V", "_", literal=True)).otherwise(ours)
    return finish(frame.with_row_index("_i").select(
        line=pl.col("_i").cast(pl.Int64) + 1,
        kind=pl.col("kind"),
        ref=order,
        order_ref=pl.when(pl.col("kind") == "REFUND").then(pl.lit("")).otherwise(order),
        txn_id=pl.col("queryId"),
        amount_fen=pl.col("txnAmt").cast(pl.Int64),
        status=pl.lit("SUCCESS"),
        at=pl.col("txnTime"),
    ))
