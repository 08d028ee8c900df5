"""The sandbox's trade bill (交易账单, ALL) for a day, made from its own records.

商户号 is the sandbox's (the service provider's) mchid; 特约商户号 is the sub_mchid a
partner-form order was made under, "0" on the provider's own (direct-form) orders.
Payments appear on the (China Standard Time) day they succeeded, refunds on the day they were
accepted, as WeChat documents; a reversed paid payer-code payment adds a refund row whose
交易状态 is REVOKED. Fees are 0.60% per row, rounded half-up to the fen and returned (negative)
on refunds. `Faults.statement_diff` injects differences for reconciliation tests:
``{"drop": [out_trade_no | out_refund_no], "amount": {no: fen}, "extra": [{"out_trade_no",
"amount_fen"}], "status": [out_trade_no], "cross_day": [out_trade_no | out_refund_no]}``:
`status` lists orders the sandbox holds unpaid as paid at noon (the bill says SUCCESS, its
query does not); `cross_day` moves those rows past midnight into the next day's bill.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from fulema.core.money import Money
from fulema.sandbox.wechat.protocol import CST, render_bill
from fulema.sandbox.wechat.state import Order, WechatSandbox

FEE_BPS = 60
TRADE_TYPES = {"NATIVE", "JSAPI", "MWEB", "APP", "MICROPAY"}


def _yuan(fen: int) -> str:
    return Money(fen).to_yuan()


def _row(sb: WechatSandbox, o: Order, at: datetime, *, refund: dict[str, Any] | None,
         amount: int) -> dict[str, str]:
    fee = Money(amount).times_bps(FEE_BPS).fen
    row = {"交易时间": at.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S"), "公众账号ID": o.appid,
           "商户号": sb.config.mchid, "特约商户号": o.sub_mchid or "0", "设备号": "",
           "微信订单号": o.transaction_id, "商户订单号": o.out_trade_no,
           "用户标识": o.openid, "交易类型": o.trade_type,
           "付款银行": "OTHERS", "货币种类": "CNY", "代金券金额": "0.00",
           "充值券退款金额": "0.00", "商品名称": o.description, "商户数据包": "",
           "费率": "0.60%", "费率备注": ""}
    if refund is None:
        row.update({"交易状态": "SUCCESS", "应结订单金额": _yuan(amount), "微信退款单号": "",
                    "商户退款单号": "", "退款金额": "0.00", "退款类型": "", "退款状态": "",
                    "手续费": _yuan(fee), "订单金额": _yuan(amount), "申请退款金额": "0.00"})
    else:
        row.update({"交易状态": refund["state"], "应结订单金额": "0.00",
                    "微信退款单号": refund["refund_id"], "商户退款单号": refund["out_refund_no"],
                    "退款金额": _yuan(amount), "退款类型": "ORIGINAL", "退款状态": "SUCCESS",
                    "手续费": _yuan(-fee), "订单金额": "0.00", "申请退款金额": _yuan(amount)})
    return row


def bill_rows(sb: WechatSandbox, day: date, bill_type: str = "ALL",
              sub_mchid: str = "") -> list[dict[str, str]]:
    """The day's rows; with `sub_mchid` (a service provider asking for one 特约商户) only that
    sub-merchant's, as WeChat's partner tradebill answers, else every row (the provider's own
    and all its sub-merchants', each naming its 特约商户号)."""
    rows = _all_rows(sb, day, bill_type)
    return [r for r in rows if r["特约商户号"] == sub_mchid] if sub_mchid else rows


def _all_rows(sb: WechatSandbox, day: date, bill_type: str) -> list[dict[str, str]]:
    diff = sb.faults.statement_diff
    moved = {str(k) for k in diff.get("cross_day", [])}
    rows = [(k, r) for k, r in _day_rows(sb, day, bill_type) if k not in moved]
    if moved:  # yesterday's rows for these keys, booked just after midnight
        late = datetime.combine(day, time(0, 0, 1), CST).strftime("%Y-%m-%d %H:%M:%S")
        for key, row in _day_rows(sb, day - timedelta(days=1), bill_type):
            if key in moved:
                rows.append((key, {**row, "交易时间": late}))
    if bill_type in ("ALL", "SUCCESS"):
        noon = datetime.combine(day, time(12, 0), CST)
        for no in diff.get("status", []):
            o = sb.orders.get(str(no))
            if o is not None and o.success_at is None:
                rows.append((o.out_trade_no, _row(sb, o, noon, refund=None, amount=o.total)))
    return _apply_diff(sb, day, rows)


def _day_rows(sb: WechatSandbox, day: date, bill_type: str) -> list[tuple[str, dict[str, str]]]:
    rows: list[tuple[str, dict[str, str]]] = []  # (key for the diff, row)
    if bill_type in ("ALL", "SUCCESS"):
        for o in sb.orders.values():
            if o.success_at is not None and o.success_at.astimezone(CST).date() == day:
                rows.append((o.out_trade_no, _row(sb, o, o.success_at, refund=None,
                                                  amount=o.total)))
    if bill_type in ("ALL", "REFUND"):
        for r in sb.refunds.values():
            if r.created_at.astimezone(CST).date() == day:
                ref = {"state": "REVOKED" if r.kind == "REVOKED" else "REFUND",
                       "refund_id": r.refund_id, "out_refund_no": r.out_refund_no}
                rows.append((r.out_refund_no, _row(sb, r.order, r.created_at, refund=ref,
                                                   amount=r.amount)))
    return rows


def _apply_diff(sb: WechatSandbox, day: date,
                rows: list[tuple[str, dict[str, str]]]) -> list[dict[str, str]]:
    diff = sb.faults.statement_diff
    drop, amounts = set(diff.get("drop", [])), dict(diff.get("amount", {}))
    kept: list[dict[str, str]] = []
    for key, row in rows:
        if key in drop:
            continue
        if key in amounts:
            fen = int(amounts[key])
            fields = ("应结订单金额", "订单金额") if row["退款金额"] == "0.00" \
                else ("退款金额", "申请退款金额")
            for name in fields:
                row[name] = _yuan(fen)
        kept.append(row)
    noon = datetime.combine(day, time(12, 0), CST)
    for extra in diff.get("extra", []):
        fake = Order(str(extra["out_trade_no"]), "NATIVE", int(extra["amount_fen"]), "extra",
                     None, noon, noon + timedelta(minutes=5), sb.config.appid,
                     transaction_id=sb.new_transaction_id(), openid="oUpF8uExtraRow00000000000000")
        kept.append(_row(sb, fake, noon, refund=None, amount=fake.total))
    kept.sort(key=lambda r: (r["交易时间"], r["商户订单号"]))
    return kept


def render(rows: list[dict[str, str]]) -> bytes:
    def fen(text: str) -> int:
        return Money.from_yuan(text).fen

    summary = {
        "总交易单数": str(len(rows)),
        "应结订单总金额": _yuan(sum(fen(r["应结订单金额"]) for r in rows)),
        "退款总金额": _yuan(sum(fen(r["退款金额"]) for r in rows)),
        "充值券退款总金额": "0.00",
        "手续费总金额": _yuan(sum(fen(r["手续费"]) for r in rows)),
        "订单总金额": _yuan(sum(fen(r["订单金额"]) for r in rows)),
        "申请退款总金额": _yuan(sum(fen(r["申请退款金额"]) for r in rows)),
    }
    return render_bill(rows, summary)
