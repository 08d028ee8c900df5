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

from fulema.channels.alipay.bill import DETAIL_SUFFIX, DETAIL_TITLE, SUMMARY_TITLE
from fulema.reconciliation.statement import YUAN, StatementError, check_header, finish, first_bad, yuan_to_fen
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


def _detail(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = {_name(i): zf.read(i) for i in zf.infolist() if not i.is_dir()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
        raise StatementError(0, "not an Alipay bill zip", encoding=True) from exc
    for name, raw in members.items():
        try:
            text = raw.decode("gb18030")  # a superset of GBK
        except UnicodeDecodeError as exc:
            line = raw[:exc.start].count(b"\n") + 1
            raise StatementError(line, f"{name} is not GBK text (Alipay bills are GBK)",
                                 encoding=True) from exc
        if (name.endswith(DETAIL_SUFFIX) or text.lstrip().startswith(DETAIL_TITLE)) and not (
                "汇总" in name or text.lstrip().startswith(SUMMARY_TITLE)):
            return text
    raise StatementError(0, "the bill zip holds no 业务明细 file")


def parse(data: bytes) -> pl.DataFrame:
    text = _detail(data).replace("\r\n", "\n")
    lines = text.split("\n")
    top = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")), None)
    if top is None:
        raise StatementError(len(lines), "bad header: the 业务明细 file has no table")
    end = next((i for i in range(top + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    table = "\n".join(lines[top:end]) + "\n"
    first = top + 1
    frame = read_table(table, first_line=first)
    check_header(frame.columns, REQUIRED, first)
    frame = frame.with_columns(pl.exclude("_line").str.strip_chars())
    frame = frame.with_columns(pl.col("业务类型").replace_strict(KIND, default=None).alias("kind"))
    for bad, why in ((pl.col("kind").is_null(), "unknown 业务类型"),
                     (~pl.col("订单金额（元）").str.contains(YUAN), "bad amount"),
                     (pl.col("商户订单号") == "", "no 商户订单号")):
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
