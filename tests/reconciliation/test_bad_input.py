"""A malformed statement is refused with its line number and reason, whatever the format:
bad header, wrong column count (or line length), bad amount, unknown encoding."""

from __future__ import annotations

import gzip

import pytest

from fulema.core.errors import ErrorCode
from fulema.reconciliation.parsers import parse_statement
from fulema.reconciliation.statement import StatementError
from tests.reconciliation import files


def refused(channel: str, data: bytes) -> StatementError:
    with pytest.raises(StatementError) as caught:
        parse_statement(channel, data)
    return caught.value


def test_well_formed_files_of_every_format_parse() -> None:
    for channel, data in (("wechat", files.wechat()), ("alipay", files.alipay()),
                          ("unionpay", files.unionpay()), ("ecny", files.fen_csv("ecny")),
                          ("bankpay", files.fen_csv("bankpay"))):
        lines = parse_statement(channel, data).lines
        assert lines["amount_fen"].to_list() == [1250] * 3, channel
        assert lines["ref"].to_list() == ["ord_0", "ord_1", "ord_2"], channel
    assert parse_statement("wechat", gzip.compress(files.wechat())).lines.height == 3


@pytest.mark.parametrize(("channel", "data", "line"), [
    ("wechat", files.wechat().replace("商户订单号".encode(), b"order", 1), 1),
    ("alipay", files.alipay(text=("业务类型", "kind")), 4),
    ("ecny", files.fen_csv("ecny").replace(b"out_trade_no", b"our_no", 1), 1),
    ("bankpay", files.fen_csv("bankpay").replace(b"amount_fen", b"amount", 1), 1),
])
def test_a_bad_header_is_refused_naming_the_missing_column(channel: str, data: bytes,
                                                           line: int) -> None:
    err = refused(channel, data)
    assert err.code == ErrorCode.STATEMENT_INVALID
    assert err.line == line
    assert "bad header" in err.reason


def _add_cell(data: bytes, nth_line: int, sep: bytes = b"\n") -> bytes:
    lines = data.split(sep)
    lines[nth_line - 1] = lines[nth_line - 1].rstrip(b"\r") + b",extra" + (
        b"\r" if lines[nth_line - 1].endswith(b"\r") else b"")
    return sep.join(lines)


@pytest.mark.parametrize("channel", ["wechat", "ecny", "bankpay"])
def test_a_row_with_too_many_cells_is_refused_with_its_line(channel: str) -> None:
    data = files.wechat() if channel == "wechat" else files.fen_csv(channel)
    err = refused(channel, _add_cell(data, 3))
    assert (err.code, err.line) == (ErrorCode.STATEMENT_INVALID, 3)
    assert "column count" in err.reason


@pytest.mark.parametrize("channel", ["ecny", "bankpay"])
def test_a_row_with_too_few_cells_is_refused_with_its_line(channel: str) -> None:
    lines = files.fen_csv(channel).split(b"\n")
    lines[2] = lines[2].rsplit(b",", 2)[0]
    err = refused(channel, b"\n".join(lines))
    assert (err.line, "column count" in err.reason) == (3, True)


def test_a_zm_line_of_the_wrong_length_is_refused_with_its_line() -> None:
    lines = files.unionpay().split(b"\r\n")
    lines[1] = lines[1][:-1]
    err = refused("unionpay", b"\r\n".join(lines))
    assert (err.line, "line length" in err.reason) == (2, True)
    shifted = files.unionpay().split(b"\r\n")
    shifted[2] = b"X" + shifted[2][:-1]  # same length, every field shifted by one
    err = refused("unionpay", b"\r\n".join(shifted))
    assert (err.line, "separator" in err.reason) == (3, True)


@pytest.mark.parametrize(("channel", "data", "line"), [
    ("wechat", files.wechat(amount="12.5x"), 2),
    ("alipay", files.alipay(amount="12.5"), 5),
    ("ecny", files.fen_csv("ecny", amount="12.50"), 2),
    ("bankpay", files.fen_csv("bankpay", amount="-"), 2),
    ("unionpay", files.unionpay(amount="12a"), 1),
])
def test_a_bad_amount_is_refused_with_its_line(channel: str, data: bytes, line: int) -> None:
    err = refused(channel, data)
    assert err.code == ErrorCode.STATEMENT_INVALID
    assert err.line == line
    assert "amount" in err.reason or "column count" in err.reason


@pytest.mark.parametrize(("channel", "data", "line"), [
    ("wechat", files.wechat().replace(b"ord_1", "订单".encode("gbk")), 3),
    ("ecny", files.fen_csv("ecny").replace(b"BP2", b"\xff\xfe"), 4),
    ("bankpay", files.fen_csv("bankpay").replace(b"BP0", b"\xc3"), 2),
    ("alipay", files.alipay(raw=("面条".encode("gbk"), b"\x80\xff")), 5),
    ("unionpay", files.unionpay().replace(b"ordZ1 ", b"\xff\xff\xff\xff\xff\xff"), 2),
])
def test_a_file_in_another_encoding_is_refused(channel: str, data: bytes, line: int) -> None:
    err = refused(channel, data)
    assert err.code == ErrorCode.STATEMENT_ENCODING
    assert err.line == line


def test_an_empty_zm_file_is_a_day_without_transactions() -> None:
    assert parse_statement("unionpay", b"").lines.height == 0


def test_not_the_expected_archive_or_an_empty_file_is_refused() -> None:
    assert refused("alipay", b"not a zip").code == ErrorCode.STATEMENT_ENCODING
    assert refused("wechat", b"").code == ErrorCode.STATEMENT_INVALID
    assert refused("wechat", b"\x1f\x8bnot gzip").code == ErrorCode.STATEMENT_ENCODING
    assert "summary" in refused("wechat", files.wechat().split("总交易单数".encode())[0]).reason


def test_an_unknown_record_type_is_refused_with_its_line() -> None:
    err = refused("bankpay", files.fen_csv("bankpay").replace(b"PAY,ord_1", b"PAID,ord_1"))
    assert (err.line, "record_type" in err.reason) == (3, True)
    err = refused("unionpay", files.unionpay().replace(b"S22", b"S99", 1))
    assert (err.line, "tradeNo" in err.reason) == (1, True)


def test_a_cut_zm_file_is_refused() -> None:
    err = refused("unionpay", files.unionpay()[:-700])
    assert (err.code, err.line) == (ErrorCode.STATEMENT_INVALID, 2)


def _quote_empty_cells(data: bytes) -> bytes:
    """The same file as a writer that quotes every empty cell writes it (`,"",`)."""
    out = []
    for line in data.split(b"\n"):
        cells = line.split(b",")
        out.append(b",".join(c if c.strip(b"\r") else b'""' + c for c in cells)
                   if line else line)
    return b"\n".join(out)


@pytest.mark.parametrize("channel", ["ecny", "bankpay"])
def test_quoted_empty_cells_parse_and_a_short_row_among_them_is_named(channel: str) -> None:
    data = _quote_empty_cells(files.fen_csv(channel))
    assert b'""' in data
    assert parse_statement(channel, data).lines["ref"].to_list() == ["ord_0", "ord_1", "ord_2"]
    lines = data.split(b"\n")
    lines[2] = lines[2].rsplit(b",", 1)[0]  # line 3 loses its last cell
    width = lines[0].count(b",") + 1
    err = refused(channel, b"\n".join(lines))
    assert err.line == 3
    assert err.reason == f"wrong column count: {width - 1} columns, the header has {width}"


@pytest.mark.parametrize("channel", ["ecny", "bankpay"])
def test_a_quoted_cell_holding_a_comma_is_one_cell(channel: str) -> None:
    header, *rows = files.fen_csv(channel).split(b"\n")
    names = header.decode().split(",")
    at = names.index("trade_no")
    cells = rows[1].split(b",")
    cells[at] = b'"BP,1"'  # a comma inside a quoted cell: not a cell more
    rows[1] = b",".join(cells)
    lines = parse_statement(channel, b"\n".join([header, *rows])).lines
    assert lines["txn_id"].to_list() == ["BP0", "BP,1", "BP2"]
    cells[at + 1] = b'"x,"",y"'  # and one with a doubled quote too, on a row one cell short
    rows[1] = b",".join(cells[:-1])
    err = refused(channel, b"\n".join([header, *rows]))
    assert err.line == 3
    assert "column count" in err.reason


def test_wechat_rows_are_checked_up_to_the_summary_and_no_further() -> None:
    # the summary part has 7 cells a line, the bill 27: only the bill's rows are counted
    lines = files.wechat().split(b"\n")
    assert lines[4].startswith("总交易单数".encode())
    quoted = lines[:]
    quoted[2] = quoted[2].replace(b"`ord_1", b'"`ord_1"').replace(b",`SUCCESS", b',"`SUC,CESS"')
    err = refused("wechat", b"\n".join(quoted))  # one cell, but not a known state
    assert err.line == 3
    assert "交易状态" in err.reason
    short = lines[:]
    short[3] = short[3].rsplit(b",", 1)[0]  # the last row of the bill loses a cell
    err = refused("wechat", b"\n".join(short))
    assert (err.line, err.reason) == (4, "wrong column count: 26 columns, the header has 27")
