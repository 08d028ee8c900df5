"""What every statement parser shares: the normalized line table, its checks and its errors.

Each channel's parser (`parse_*.py`) turns the file into one polars table with the columns of
`LINE_SCHEMA`, whatever the channel calls them:

- `line`      the 1-based line number in the (decoded) file, for error messages and reports
- `kind`      PAY, REFUND or REVERSAL (a paid payer-code payment reversed: 撤销)
- `ref`       our id the channel echoes: the order id for PAY and REVERSAL, the refund id
              for REFUND (every channel returns it as 商户订单号 / out_refund_no / orderId)
- `order_ref` our order id
- `txn_id`    the channel's own transaction (or refund) number
- `amount_fen` the line's amount in fen, never negative
- `status`    SUCCESS, or the channel's state when the line says otherwise
- `at`        the channel's time of the line, as the channel writes it

Parsing is columnar: the whole file is read by polars in one call and checked with
expressions. Only when a check fails does a parser walk the lines in Python, to name the
first bad line and why (`StatementError`): the fast path stays fast and a refusal stays
precise. Nothing is imported from a file that fails any check.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from fulema.core.errors import ErrorCode, FulemaError

LINE_SCHEMA: dict[str, type[pl.DataType]] = {
    "line": pl.Int64, "kind": pl.String, "ref": pl.String, "order_ref": pl.String,
    "txn_id": pl.String, "amount_fen": pl.Int64, "status": pl.String, "at": pl.String}
KINDS = ("PAY", "REFUND", "REVERSAL")
YUAN = r"^-?\d{1,12}\.\d{2}$"  # the channels write yuan with exactly two decimals
FEN = r"^-?\d{1,15}$"


class StatementError(FulemaError):
    """A refused statement: `line` is the 1-based line of the file (0: the file as a whole)."""

    def __init__(self, line: int, reason: str, *, encoding: bool = False) -> None:
        code = ErrorCode.STATEMENT_ENCODING if encoding else ErrorCode.STATEMENT_INVALID
        where = f"line {line}: " if line else ""
        super().__init__(code, f"{where}{reason}", line=line)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Statement:
    """A parsed statement: its lines, and the SHA-256 of the file as received."""

    channel: str
    lines: pl.DataFrame
    sha256: str


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def yuan_to_fen(col: str) -> pl.Expr:
    """`"12.50"` -> 1250 and `"-3.00"` -> -300, exactly (the decimal point is removed, no
    float is ever made). Only for values `YUAN` accepted."""
    return pl.col(col).str.replace(".", "", literal=True).cast(pl.Int64)


def first_bad(frame: pl.DataFrame, bad: pl.Expr) -> int | None:
    """The index of the first row where `bad` holds, or None."""
    flags = frame.select(bad.fill_null(True).alias("bad"))["bad"]
    if not flags.any():
        return None
    return int(flags.arg_max() or 0)


def any_bad(frame: pl.DataFrame, checks: tuple[tuple[pl.Expr, str], ...]) -> bool:
    """Whether any row fails any of the `(bad, why)` checks: all of them in one parallel
    pass over the frame (the common case: nothing fails, and nothing more is computed)."""
    flags = frame.select([bad.fill_null(True).any().alias(f"c{i}")
                          for i, (bad, _) in enumerate(checks)])
    return any(flags.row(0))


def check_header(header: list[str], required: tuple[str, ...], line: int = 1) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise StatementError(line, f"bad header: no column {', '.join(missing)}")


def finish(frame: pl.DataFrame) -> pl.DataFrame:
    """The normalized table in `LINE_SCHEMA` order and types."""
    return frame.select([pl.col(n).cast(t) for n, t in LINE_SCHEMA.items()])


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=LINE_SCHEMA)
