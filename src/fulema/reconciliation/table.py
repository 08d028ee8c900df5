"""Reading a header-plus-rows CSV table into polars, with exact line numbers.

The channels' CSVs rarely quote anything, so the fast path reads the table as whole lines
(one polars call), checks every line's comma count against the header's and splits the
lines into columns (`str.split_exact`): each row keeps `_line`, its line in the file, so any
later check names the line without a second pass. A table with a quoted cell goes through
polars' CSV reader instead (quotes may hide commas), and its cell counts are checked by the
csv module when polars reports a ragged row.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import polars as pl

from fulema.reconciliation.statement import StatementError

LINE = "_line"


def _records(text: str) -> Any:  # a csv reader: iterable, with line_num
    return csv.reader(io.StringIO(text, newline=""))


def diagnose(text: str, first_line: int, width: int) -> StatementError:
    """The first line (numbered from `first_line` for the table's header) whose cell count is
    not `width`."""
    reader = _records(text)
    for cells in reader:
        line = first_line + reader.line_num - 1
        if cells and len(cells) != width:
            return StatementError(line, f"wrong column count: {len(cells)} columns, "
                                        f"the header has {width}")
    return StatementError(first_line, "unreadable table")


def header_of(text: str) -> list[str]:
    end = text.find("\n")
    first: list[str] = next(_records(text[:end + 1] if end >= 0 else text), [])
    return [c.strip().lstrip("`").strip() for c in first]


def _quoted(text: str, header: list[str], first_line: int) -> pl.DataFrame:
    width = len(header)
    try:
        frame = pl.read_csv(io.BytesIO(text.encode()), infer_schema=False, has_header=True,
                            new_columns=header, quote_char='"', raise_if_empty=False)
    except (pl.exceptions.ComputeError, pl.exceptions.ShapeError) as exc:
        raise diagnose(text, first_line, width) from exc
    if frame.height and frame.select(pl.col(header[-1]).is_null().any()).item():
        bad = diagnose(text, first_line, width)  # a short row, or a truly empty last cell
        if bad.reason != "unreadable table":
            raise bad
    lines = [first_line + reader_line - 1 for reader_line in _record_lines(text)][1:]
    frame = frame.filter(~pl.all_horizontal(pl.all().is_null()))
    return frame.with_columns(pl.all().fill_null("")).with_columns(
        pl.Series(LINE, lines[:frame.height], dtype=pl.Int64))


def _record_lines(text: str) -> list[int]:
    reader = _records(text)
    out = []
    for cells in reader:
        if cells:
            out.append(reader.line_num)
    return out


def read_table(text: str, *, first_line: int) -> pl.DataFrame:
    """The table (header on `first_line`) as string columns plus `_line`; StatementError
    naming the line of a row whose cell count differs from the header's."""
    header = header_of(text)
    width = len(header)
    raw = pl.read_csv(io.BytesIO(text.encode()), has_header=False, separator="\x1f",
                      quote_char=None, infer_schema=False, new_columns=["l"],
                      raise_if_empty=False, truncate_ragged_lines=True)
    body = raw.with_row_index("_n").filter(
        (pl.col("_n") > 0) & pl.col("l").is_not_null() & (pl.col("l").str.len_bytes() > 0))
    if body.select(pl.col("l").str.contains('"', literal=True).any()).item():
        return _quoted(text, header, first_line)
    commas = body.select(pl.col("l").str.count_matches(",", literal=True).alias("c"), "_n")
    wrong = commas.filter(pl.col("c") != width - 1).head(1)
    if wrong.height:
        line = int(wrong["_n"][0]) + first_line
        raise StatementError(line, f"wrong column count: {int(wrong['c'][0]) + 1} columns, "
                                   f"the header has {width}")
    parts = pl.col("l").str.split_exact(",", width - 1).struct.rename_fields(header)
    return body.select(parts.alias("s"), (pl.col("_n").cast(pl.Int64) + first_line).alias(LINE)
                       ).unnest("s")
