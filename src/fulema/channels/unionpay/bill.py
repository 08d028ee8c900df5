"""UnionPay 全渠道 (5.1.0) statement: the ZM 流水 file of the file-transfer archive.

File transfer (txnType=76, txnSubType=01, fileType=00, settleDate=MMDD) answers `fileContent` =
base64(zlib-deflate(zip)), as UnionPay's SDK (`deCodeFileContent`) reads it. The zip holds the
day's files; the 流水 file is `INN{yyMMdd}88ZM_{merId}`. It is fixed-width GBK text, one line per
transaction, the fields in `FIELDS` order, separated by a single space, values left-aligned and
space-padded (numbers zero-padded). Widths are in bytes (GBK: a Chinese character takes two), as
in 《全渠道平台接入接口规范 第3部分 文件接口》 and the SDK's `parseZMFile`.

`render_zm` writes lines (the sandbox uses it); `parse_zm` reads them into `ZmRow`s with Money
amounts and refuses any line whose length is not exactly `LINE_LENGTH`.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date

from fulema.core.money import Money

ENCODING = "gbk"
# (field, width in bytes), in file order
FIELDS: tuple[tuple[str, int], ...] = (
    ("tradeNo", 3), ("acqInsCode", 11), ("sendInsCode", 11), ("traceNo", 6), ("txnTime", 10),
    ("payCardNo", 19), ("txnAmt", 12), ("merCatCode", 4), ("termType", 2), ("queryId", 21),
    ("oldPayType", 2), ("orderId", 32), ("payCardType", 2), ("origTradeSysTraceNo", 6),
    ("origTradeTime", 10), ("merCharge", 13), ("settleAmt", 13), ("payType", 4),
    ("groupMerCode", 15), ("txnType", 2), ("txnSubType", 2), ("bizType", 6), ("accType", 2),
    ("billType", 4), ("billNo", 32), ("interactMode", 1), ("origQryId", 21), ("merId", 15),
    ("accountType", 1), ("subMerId", 15), ("subMerAbbr", 32), ("subMerAcccountAmt", 13),
    ("settleNetAmt", 13), ("termId", 8), ("merReserved", 32), ("discountAmt", 13),
    ("invoiceAmt", 13), ("insAdditionCharge", 12), ("installmentNum", 2), ("tradeMedia", 1),
    ("reserved", 131),
)
WIDTHS = dict(FIELDS)
LINE_LENGTH = sum(w for _, w in FIELDS) + len(FIELDS) - 1  # 607 bytes, line end excluded
ZERO_PADDED = frozenset({"traceNo", "txnAmt"})
SIGNED = ("merCharge", "settleAmt", "settleNetAmt")  # C/D then 12 digits of fen
# 交易代码
CONSUME, VOID, REFUND = "S22", "S30", "S31"
TRADE_NAMES = {CONSUME: "消费", VOID: "消费撤销", REFUND: "退货"}
ZM_NAME = re.compile(r"^INN\d{6}\d{2}ZM_\w+$")


def zm_file_name(settle_day: date, mer_id: str) -> str:
    return f"INN{settle_day:%y%m%d}88ZM_{mer_id}"


def signed_amount(fen: int) -> str:
    """`C000000001000` for +1000 fen (credit to the merchant), `D…` for a debit."""
    return ("D" if fen < 0 else "C") + f"{abs(fen):012d}"


def render_zm(rows: list[dict[str, str]]) -> bytes:
    """GBK lines, CRLF-terminated, one per row; a missing field is blank. ValueError for a value
    longer than its field."""
    out = bytearray()
    for row in rows:
        cells: list[bytes] = []
        for name, width in FIELDS:
            raw = row.get(name, "").encode(ENCODING)
            if len(raw) > width:
                raise ValueError(f"ZM {name} {row.get(name)!r} is longer than {width} bytes")
            cells.append(raw.rjust(width, b"0") if name in ZERO_PADDED and raw
                         else raw.ljust(width, b" "))
        out += b" ".join(cells) + b"\r\n"
    return bytes(out)


@dataclass(frozen=True)
class ZmRow:
    """One transaction of the ZM file; `fields` keeps every field, trimmed."""

    trade_code: str  # S22 consume, S30 void, S31 refund
    query_id: str
    order_id: str
    orig_query_id: str
    mer_id: str
    trace_no: str
    txn_time: str  # MMDDhhmmss, Beijing
    txn_type: str
    txn_sub_type: str
    txn_amt: Money  # the transaction's amount, never negative
    settle_amt: Money  # signed: positive credits the merchant, negative debits it
    mer_charge: Money  # signed like settle_amt
    fields: dict[str, str]


def _digits(name: str, value: str, lineno: int) -> int:
    if not value.isdigit() or not value.isascii():
        raise ValueError(f"ZM line {lineno}: {name} {value!r} is not a number")
    return int(value)


def _signed(name: str, value: str, lineno: int) -> Money:
    if not value.strip():
        return Money.zero()
    if len(value) != 13 or value[0] not in "CD":
        raise ValueError(f"ZM line {lineno}: {name} {value!r} is not C/D + 12 digits")
    fen = _digits(name, value[1:], lineno)
    return Money(-fen if value[0] == "D" else fen)


def parse_zm_line(line: bytes, lineno: int = 1) -> ZmRow:
    if len(line) != LINE_LENGTH:
        raise ValueError(f"ZM line {lineno} is {len(line)} bytes, expected {LINE_LENGTH}")
    fields: dict[str, str] = {}
    pos = 0
    for i, (name, width) in enumerate(FIELDS):
        if i and line[pos - 1:pos] != b" ":
            raise ValueError(f"ZM line {lineno}: no separator before {name} at byte {pos}")
        try:
            fields[name] = line[pos:pos + width].decode(ENCODING).strip()
        except UnicodeDecodeError as exc:
            raise ValueError(f"ZM line {lineno}: {name} is not GBK text") from exc
        pos += width + 1
    code = fields["tradeNo"]
    if not re.fullmatch(r"[A-Z0-9]{3}", code) or not fields["queryId"]:
        raise ValueError(f"ZM line {lineno}: not a transaction line (tradeNo {code!r})")
    return ZmRow(
        trade_code=code, query_id=fields["queryId"], order_id=fields["orderId"],
        orig_query_id=fields["origQryId"], mer_id=fields["merId"], trace_no=fields["traceNo"],
        txn_time=fields["txnTime"], txn_type=fields["txnType"],
        txn_sub_type=fields["txnSubType"],
        txn_amt=Money(_digits("txnAmt", fields["txnAmt"], lineno)),
        settle_amt=_signed("settleAmt", fields["settleAmt"], lineno),
        mer_charge=_signed("merCharge", fields["merCharge"], lineno),
        fields=fields)


def parse_zm(data: bytes) -> list[ZmRow]:
    """Every line of a ZM file (CRLF or LF; blank lines skipped). ValueError naming the line
    for a line of the wrong length, a missing separator, a bad amount or non-GBK bytes."""
    rows: list[ZmRow] = []
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if line.strip():
            rows.append(parse_zm_line(line, lineno))
    return rows


def zm_from_archive(archive: bytes) -> bytes:
    """The ZM file's bytes from the (already inflated) zip; b"" if the zip holds no ZM file.
    ValueError if it is not a zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            for name in zf.namelist():
                if ZM_NAME.match(name.rsplit("/", 1)[-1]):
                    return zf.read(name)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a UnionPay statement zip: {exc}") from exc
    return b""
