"""Small statement files in each channel's format, written by the sandboxes' own writers, for
tests that then break them."""

from __future__ import annotations

import io
import zipfile

from fulema.sandbox.alipay.protocol import BILL_COLUMNS as ALIPAY_COLUMNS
from fulema.sandbox.bankpay.statement import STATEMENT_COLUMNS, statement_csv
from fulema.sandbox.ecny.routes import BILL_COLUMNS as ECNY_COLUMNS
from fulema.sandbox.ecny.routes import bill_csv
from fulema.sandbox.unionpay import zm
from fulema.sandbox.wechat.protocol import render_bill


def wechat(n: int = 3, amount: str = "12.50") -> bytes:
    rows = [{"交易时间": "2026-11-24 12:00:00", "微信订单号": f"42000{i:05d}",
             "商户订单号": f"ord_{i}", "交易状态": "SUCCESS", "订单金额": amount,
             "应结订单金额": amount, "申请退款金额": "0.00", "退款金额": "0.00"}
            for i in range(n)]
    return render_bill(rows, {"总交易单数": str(n)})


def alipay(n: int = 3, amount: str = "12.50", *, text: tuple[str, str] = ("", ""),
           raw: tuple[bytes, bytes] = (b"", b"")) -> bytes:
    """The zip; `text` replaces in the CSV before it is encoded, `raw` in its GBK bytes."""
    out = io.StringIO()
    out.write("#支付宝业务明细查询\r\n#账号：[20880000000000000156]\r\n#-----业务明细列表-----\r\n")
    out.write(",".join(ALIPAY_COLUMNS) + "\r\n")
    for i in range(n):
        row = dict.fromkeys(ALIPAY_COLUMNS, "0.00")
        row.update({"支付宝交易号": f"2026112422{i:018d}\t", "商户订单号": f"ord_{i}\t",
                    "业务类型": "交易", "商品名称": "面条", "完成时间": "2026-11-24 12:00:00",
                    "订单金额（元）": amount, "退款批次号/请求号": "\t"})
        out.write(",".join(row[c] for c in ALIPAY_COLUMNS) + "\r\n")
    out.write("#-----业务明细列表结束-----\r\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        csv_text = out.getvalue().replace(*text) if text[0] else out.getvalue()
        body = csv_text.encode("gbk")
        zf.writestr("20880000000000000156_20261124_业务明细.csv",
                    body.replace(*raw, 2) if raw[0] else body)
    return buf.getvalue()


def zm_rows(n: int = 3, amount: str = "1250") -> list[dict[str, str]]:
    return [{"tradeNo": zm.CONSUME, "traceNo": f"{i:06d}", "txnTime": "1124120000",
             "txnAmt": amount, "queryId": f"{i:021d}", "orderId": f"ordZ{i}", "txnType": "01",
             "txnSubType": "07", "merId": "777290058110048"} for i in range(n)]


def unionpay(n: int = 3, amount: str = "1250") -> bytes:
    return zm.render(zm_rows(n, amount))


def fen_csv(channel: str, n: int = 3, amount: str = "1250") -> bytes:
    columns = STATEMENT_COLUMNS if channel == "bankpay" else ECNY_COLUMNS
    rows = []
    for i in range(n):
        row = dict.fromkeys(columns, "")
        row.update({"record_type": "PAY", "out_trade_no": f"ord_{i}", "trade_no": f"BP{i}",
                    "amount_fen": amount, "trade_time": "12:00:00", "state": "SUCCESS",
                    "status": "SUCCESS", "trade_date": "2026-11-24", "bill_date": "2026-11-24"})
        rows.append({k: row[k] for k in columns})
    return statement_csv(rows) if channel == "bankpay" else bill_csv(rows)
