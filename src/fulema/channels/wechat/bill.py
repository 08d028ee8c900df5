"""WeChat Pay's trade bill file (交易账单, bill_type=ALL): write it (sandbox) and read it.

As documented in 交易账单文件格式说明: comma-separated, a detail header row, detail rows, a
summary header row and one summary row; every detail and summary value is prefixed with a
backtick (so spreadsheet programs do not turn long numbers into scientific notation); amounts
are in yuan with two decimals; the file is UTF-8 and, when asked with tar_type=GZIP, gzip'd.
WeChat warns that the column order may change, so `parse_tradebill` reads by header name.
"""

from __future__ import annotations

import csv
import gzip
import io

DETAIL_COLUMNS = [
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
    "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
]
SUMMARY_COLUMNS = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额",
                   "手续费总金额", "订单总金额", "申请退款总金额"]
BACKTICK = "`"


def render_tradebill(rows: list[dict[str, str]], summary: dict[str, str]) -> bytes:
    """The plain (not gzip'd) bill: CRLF line ends, as WeChat's files have."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DETAIL_COLUMNS)
    for row in rows:
        writer.writerow([BACKTICK + row.get(col, "") for col in DETAIL_COLUMNS])
    writer.writerow(SUMMARY_COLUMNS)
    writer.writerow([BACKTICK + summary.get(col, "") for col in SUMMARY_COLUMNS])
    return out.getvalue().encode("utf-8")


def _plain(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":  # gzip magic: the tar_type=GZIP download
        data = gzip.decompress(data)
    return data.decode("utf-8-sig")  # tolerate a BOM before the first header


def _cells(line: list[str]) -> list[str]:
    return [c[1:] if c.startswith(BACKTICK) else c for c in (x.strip() for x in line)]


def parse_tradebill(data: bytes) -> list[dict[str, str]]:
    """The detail rows of a bill (gzip'd or plain) as dicts keyed by the header's column names.

    The detail part ends where the summary header (the row starting with 总交易单数) begins.
    Raises ValueError when the first row is not a bill header.
    """
    lines = [row for row in csv.reader(io.StringIO(_plain(data))) if any(c.strip() for c in row)]
    if not lines or "商户订单号" not in [c.strip() for c in lines[0]]:
        raise ValueError("not a WeChat Pay trade bill: no 商户订单号 column in the header")
    header = [c.strip() for c in lines[0]]
    rows: list[dict[str, str]] = []
    for line in lines[1:]:
        if line and line[0].strip().lstrip(BACKTICK) == SUMMARY_COLUMNS[0]:
            break
        rows.append(dict(zip(header, _cells(line), strict=False)))
    return rows


def parse_tradebill_summary(data: bytes) -> dict[str, str]:
    """The summary row (总交易单数, 应结订单总金额, ...) keyed by its header names."""
    lines = [row for row in csv.reader(io.StringIO(_plain(data))) if any(c.strip() for c in row)]
    for i, line in enumerate(lines):
        if line and line[0].strip() == SUMMARY_COLUMNS[0] and i + 1 < len(lines):
            return dict(zip([c.strip() for c in line], _cells(lines[i + 1]), strict=False))
    raise ValueError("no summary part in the bill")
