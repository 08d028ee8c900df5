"""Alipay's trade bill (业务明细): a zip of GBK CSV files, parsed by header name.

`alipay.data.dataservice.bill.downloadurl.query` (bill_type=trade) answers a short-lived URL to
a zip holding `<PID>0156_<yyyyMMdd>_业务明细.csv` (one row per payment or refund) and
`..._业务明细(汇总).csv` (totals per store). Both are GBK, wrapped in `#` comment lines above
and below the table, and Alipay appends a tab to id-like cells so spreadsheets keep them as
text. Reconciliation reads rows through `parse_bill`, by column name, so a column Alipay adds
later does not shift the others.
"""

from __future__ import annotations

import csv
import io
import zipfile

ENCODING = "gbk"
DETAIL_TITLE = "#支付宝业务明细查询"
SUMMARY_TITLE = "#支付宝业务汇总查询"
DETAIL_SUFFIX = "_业务明细.csv"
SUMMARY_SUFFIX = "_业务明细(汇总).csv"
COLUMNS = ("支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号",
           "门店名称", "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）",
           "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）",
           "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号", "服务费（元）",
           "分润（元）", "备注")
SUMMARY_COLUMNS = ("门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）",
                   "商家实收（元）", "支付宝优惠（元）", "商家优惠（元）", "卡消费金额（元）",
                   "服务费（元）", "分润（元）", "实收净额（元）")
PAYMENT, REFUND = "交易", "退款"  # 业务类型


def _member_name(info: zipfile.ZipInfo) -> str:
    """Alipay's zips carry GBK file names without the zip UTF-8 flag; Python then decodes
    them as cp437, which we undo. Names flagged UTF-8 are already right."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode(ENCODING)
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def bill_files(data: bytes) -> dict[str, str]:
    """File name -> decoded text for every CSV in the bill zip. ValueError if not a zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return {_member_name(info): zf.read(info).decode("gb18030")  # GBK superset
                    for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"not an Alipay bill zip: {exc}") from exc


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of one bill CSV keyed by its header, `#` lines and blank lines skipped, cells
    trimmed of Alipay's protective tabs and spaces."""
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for cells in csv.reader(lines):
        values = [c.strip() for c in cells]
        if header is None:
            header = values
            continue
        if len(values) < len(header):
            values += [""] * (len(header) - len(values))
        rows.append(dict(zip(header, values, strict=False)))
    return rows


def parse_bill(data: bytes) -> list[dict[str, str]]:
    """The detail rows (业务明细) of a downloaded trade bill zip, keyed by column header.

    Amounts stay yuan strings here ("12.50", refunds negative); convert with
    `Money.from_yuan` where they are used.
    """
    files = bill_files(data)
    for name, text in files.items():
        if name.endswith(DETAIL_SUFFIX) or text.lstrip().startswith(DETAIL_TITLE):
            if "汇总" in name or text.lstrip().startswith(SUMMARY_TITLE):
                continue
            return parse_table(text)
    raise ValueError("the bill zip holds no 业务明细 file")


def parse_summary(data: bytes) -> list[dict[str, str]]:
    """The summary rows (业务明细(汇总)) of a bill zip, keyed by column header."""
    for name, text in bill_files(data).items():
        if name.endswith(SUMMARY_SUFFIX) or text.lstrip().startswith(SUMMARY_TITLE):
            return parse_table(text)
    raise ValueError("the bill zip holds no 汇总 file")
