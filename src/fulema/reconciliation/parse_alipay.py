"""Alipay's trade bill: a zip of GBK CSVs; the 业务明细 file is read, `#` lines around it.

Read by header name. 业务类型 交易 is a payment, 退款 a refund (negative amounts; our refund id
is 退款批次号/请求号). Alipay appends a tab to id cells, which is trimmed. Our order id is
商户订单号; the channel's number is 支付宝交易号 (a refund carries its payment's number, so
refunds are matched by our refund id).
"""

from __future__ import annotations

import io
import zipfile
import zlib

import polars as pl

from fulema.channels.alipay.bill import DETAIL_SUFFIX, DETAIL_TITLE
from fulema.reconciliation.statement import YUAN, StatementError, any_bad, finish, first_bad, yuan_to_fen
from fulema.reconciliation.table import read_table

REQUIRED = ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）", "退款批次号/请求号")
KIND = {"交易": "PAY", "退款": "REFUND"}


def _name(info: zipfile.ZipInfo) -> str:
    """Alipay's member names are GBK without the zip UTF-8 flag (Python reads them as cp437)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _member(data: bytes) -> tuple[str, bytes]:
    """(name, GBK bytes) of the 业务明细 file in the bill zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            for info in infos:
                name = _name(info)
                if name.endswith(DETAIL_SUFFIX) and "汇总" not in name:
                    return name, zf.read(info)
            for info in infos:  # a zip whose names say nothing: look at the titles
                raw = zf.read(info)
                if raw.startswith(DETAIL_TITLE.encode("gbk")):
                    return _name(info), raw
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
        raise StatementError(0, "not an Alipay bill zip", encoding=True) from exc
    raise StatementError(0, "the bill zip holds no 业务明细 file")


def _table(raw: bytes) -> tuple[bytes, int]:
    """The table between the `#` lines, as UTF-8, and the line number of its header. `#` and
    line ends are found in the GBK bytes directly (both are below 0x40, so never part of a
    two-byte GBK character); only the table itself is decoded, once, strictly."""
    top = 0
    while raw.startswith((b"#", b"\r\n", b"\n"), top):
        nl = raw.find(b"\n", top)
        if nl < 0:
            break
        top = nl + 1
    if top >= len(raw):
        raise StatementError(raw.count(b"\n") + 1, "bad header: the 业务明细 file has no table")
    end = raw.find(b"\n#", top)
    body = raw[top:] if end < 0 else raw[top:end + 1]
    first = raw.count(b"\n", 0, top) + 1
    try:
        return body.decode("gb18030").encode(), first  # GB18030: a superset of GBK
    except UnicodeDecodeError as exc:
        raise StatementError(body[:exc.start].count(b"\n") + first,
                             "not GBK text (Alipay bills are GBK)", encoding=True) from exc


def parse(data: bytes) -> pl.DataFrame:
    _, raw = _member(data)
    table, first = _table(raw)
    frame = read_table(table, first_line=first, columns=REQUIRED)
    frame = frame.with_columns(pl.col(REQUIRED).str.strip_chars())
    frame = frame.with_columns(pl.col("业务类型").replace_strict(KIND, default=None).alias("kind"))
    checks = ((pl.col("kind").is_null(), "unknown 业务类型"),
              (~pl.col("订单金额（元）").str.contains(YUAN), "bad amount"),
              (pl.col("商户订单号") == "", "no 商户订单号"))
    for bad, why in checks if any_bad(frame, checks) else ():
        row = first_bad(frame, bad)
        if row is not None:
            raise StatementError(int(frame["_line"][row]),
                                 f"{why} ({frame['业务类型'][row]!r}, "
                                 f"{frame['订单金额（元）'][row]!r})")
    is_refund = pl.col("kind") == "REFUND"
    return finish(frame.select(
        line=pl.col("_line"),
        kind=pl.col("kind"),
        ref=pl.when(is_refund).then(pl.col("退款批次号/请求号")).otherwise(pl.col("商户订单号")),
        order_ref=pl.col("商户订单号"),
        txn_id=pl.col("支付宝交易号"),
        amount_fen=yuan_to_fen("订单金额（元）").abs(),
        status=pl.lit("SUCCESS"),
        at=pl.col("完成时间"),
    ))
