"""The ZM 流水 file of UnionPay's daily file-transfer archive, as the sandbox writes it.

From 《全渠道平台接入接口规范 第3部分 文件接口》 and the SDK's `parseZMFile`, NOT from
`fulema.channels.unionpay.bill` (the adapter's reader): an independent writer is what tests
the reader; duplicated constants are intended. Fixed-width GBK text, one CRLF-terminated line
per transaction, the fields of `FIELDS` in order separated by one space, values left-aligned
and space-padded (traceNo and txnAmt zero-padded on the left), widths in bytes (a Chinese
character takes two). The archive's 流水 file is named ``INN{yyMMdd}88ZM_{merId}``.
"""

from __future__ import annotations

from datetime import date

ENCODING = "gbk"
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
LINE_BYTES = sum(width for _, width in FIELDS) + len(FIELDS) - 1  # 607, line end excluded
ZERO_PADDED = frozenset({"traceNo", "txnAmt"})
# 交易代码 by txnType: 01 consume S22, 31 consume void S30, 04 refund S31
CONSUME, VOID, REFUND = "S22", "S30", "S31"
TRADE_CODES = {"01": CONSUME, "31": VOID, "04": REFUND}


def file_name(settle_day: date, mer_id: str) -> str:
    return f"INN{settle_day:%y%m%d}88ZM_{mer_id}"


def signed_fen(fen: int) -> str:
    """``C`` (credit to the merchant) or ``D`` (debit), then 12 digits of fen."""
    return ("D" if fen < 0 else "C") + f"{abs(fen):012d}"


def render(rows: list[dict[str, str]]) -> bytes:
    """The lines for `rows` (a missing field is blank); ValueError for a value too long."""
    out = bytearray()
    for row in rows:
        cells = []
        for name, width in FIELDS:
            raw = row.get(name, "").encode(ENCODING)
            if len(raw) > width:
                raise ValueError(f"ZM {name} is longer than {width} bytes")
            cells.append(raw.rjust(width, b"0") if name in ZERO_PADDED and raw
                         else raw.ljust(width, b" "))
        out += b" ".join(cells) + b"\r\n"
    return bytes(out)
