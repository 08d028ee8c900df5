"""Reading a header-plus-rows CSV table (UTF-8 bytes) into polars, with exact line numbers.

Two columnar passes, no Python loop over rows: the table read as whole lines checks every
line's cell count against the header's (when no cell is quoted, a line's commas count its
cells exactly), then polars' CSV reader materialises only the columns the parser needs, each
row keeping `_line`, its line in the file (a blank line reads as an all-null row, so row
index and line stay in step; those rows are dropped after). Only a failed check walks the
text with the csv module, to name the line and the reason.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import polars as pl

from fulema.reconciliation.statement import StatementError, check_header

LINE = "_line"


def _records(text: str) -> Any:  # a csv reader: iterable, with line_num
    return csv.reader(io.StringIO(text, newline=""))


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StatementError(data[:exc.start].count(b"\n") + 1, "not UTF-8 text",
                             encoding=True) from exc


def encoding_error(data: bytes, first_line: int) -> StatementError:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return StatementError(data[:exc.start].count(b"\n") + first_line, "not UTF-8 text",
                              encoding=True)
    return StatementError(first_line, "unreadable table")


def diagnose(data: bytes, first_line: int, width: int) -> StatementError:
    """The first line (numbered from `first_line` for the table's header) whose cell count is
    not `width`."""
    reader = _records(_text(data))
    for cells in reader:
        if cells and len(cells) != width:
            return StatementError(first_line + reader.line_num - 1,
                                  f"wrong column count: {len(cells)} columns, the header "
                                  f"has {width}")
    return StatementError(first_line, "unreadable table")


def header_of(data: bytes, first_line: int = 1) -> list[str]:
    end = data.find(b"\n")
    head = data[:end + 1] if end >= 0 else data
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StatementError(first_line, "the header is not UTF-8 text", encoding=True) from exc
    return [c.strip().lstrip("`").strip() for c in next(_records(text), [])]


def _check_cells(data: bytes, first_line: int, width: int, end: int | None = None,
                 rows: int = 0) -> None:
    """Every line's cell count, in one lazy query that answers only the first wrong line.

    A line's commas count its cells exactly unless a quoted cell holds a comma (or a line
    end). Quotes that vanish when every `""` pair is taken out cannot: such a line has only
    empty quoted cells (`""`, as many writers quote them) or doubled quotes outside any
    quoted cell, whereas a quoted cell holding a comma always leaves an odd run of quotes on
    one side of it. So only a line with a quote left over is *uncertain*; when the first
    flagged line is one, the csv module counts the whole file (slow but exact)."""
    lines = pl.scan_csv(io.BytesIO(data), has_header=False, separator="\x1f", quote_char=None,
                        infer_schema=False, new_columns=["l"], raise_if_empty=False,
                        truncate_ragged_lines=True).with_row_index("_n")
    line = pl.col("l")
    uncertain = (pl.lit(False) if b'"' not in data else
                 line.str.contains('"', literal=True)
                 & line.str.replace_all('""', "", literal=True).str.contains('"', literal=True))
    if end is not None:  # the table stops at byte `end`: its header and `rows` lines
        lines = lines.filter(pl.col("_n") <= rows)
    flagged = (lines.filter(pl.col("_n") > 0)
               .select("_n", c=line.str.count_matches(",", literal=True), u=uncertain)
               .filter(((pl.col("c") != width - 1) & pl.col("c").is_not_null()) | pl.col("u"))
               .head(1))
    try:
        found = flagged.collect()
    except pl.exceptions.ComputeError as exc:
        raise encoding_error(data, first_line) from exc
    if found.height and found["u"][0]:
        bad = diagnose(data[:end], first_line, width)  # a quoted cell may hold commas
        if bad.reason != "unreadable table":
            raise bad
    elif found.height:
        raise StatementError(int(found["_n"][0]) + first_line,
                             f"wrong column count: {int(found['c'][0]) + 1} columns, the "
                             f"header has {width}")


def read_table(data: bytes, *, first_line: int, columns: tuple[str, ...],
               end: int | None = None) -> pl.DataFrame:
    """The `columns` of the table (its header on `first_line`) as strings, blank lines
    dropped, plus `_line`. StatementError for a missing column, a row whose cell count
    differs from the header's, or bytes that are not UTF-8. `end`: the table is `data[:end]`
    (ending in a line end), read in place: a slice would copy it whole first."""
    header = header_of(data, first_line)
    check_header(header, columns, first_line)
    rows = None if end is None else data.count(b"\n", 0, end) - 1
    _check_cells(data, first_line, len(header), end, rows or 0)
    try:
        frame = pl.read_csv(io.BytesIO(data), has_header=True, new_columns=header,
                            columns=list(columns), infer_schema=False, quote_char='"',
                            raise_if_empty=False, row_index_name="_r", n_rows=rows)
    except pl.exceptions.ComputeError as exc:
        raise encoding_error(data, first_line) from exc
    return frame.filter(~pl.all_horizontal(pl.exclude("_r").is_null())).select(
        pl.exclude("_r").fill_null(""),
        (pl.col("_r").cast(pl.Int64) + first_line + 1).alias(LINE))
