"""The Alipay sandbox's trade bill: the zip of GBK CSVs Alipay serves, from the sandbox's books.

Rows: one 交易 row per payment completed on the (Beijing) day, one 退款 row per refund made on
it (negative amounts, 退款批次号/请求号 = out_request_no). Service fee is 0.6% (当面付's list
rate), rounded half-up per row, negative on payments and given back on refunds. Tests inject
differences for reconciliation with `diff` (see `_apply_diff` and `_moved_and_forced`):
drop_order_ids, amount_overrides, extra_rows, status_order_ids (trades the sandbox holds
unpaid, listed as paid at noon) and cross_day_order_ids (rows moved past midnight into the
next day's bill).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from fulema.core.clock import clock
from fulema.core.money import Money
from fulema.sandbox.alipay.books import AlipayPayer, Trade
from fulema.sandbox.alipay.protocol import (
    BEIJING,
    BILL_SUMMARY_SUFFIX,
    beijing_time,
)
from fulema.sandbox.alipay.protocol import (
    BILL_COLUMNS as COLUMNS,
)
from fulema.sandbox.alipay.protocol import (
    BILL_DETAIL_SUFFIX as DETAIL_SUFFIX,
)
from fulema.sandbox.alipay.protocol import (
    BILL_REFUND as REFUND,
)
from fulema.sandbox.alipay.protocol import (
    BILL_SUMMARY_COLUMNS as SUMMARY_COLUMNS,
)

FEE_BPS = 60
RULE = "#-----------------------------------------"


def _cn_time(when: datetime) -> str:
    return when.astimezone(BEIJING).strftime("%Y年%m月%d日 %H:%M:%S")


def _on_day(when: datetime | None, day: date) -> bool:
    return when is not None and when.astimezone(BEIJING).date() == day


def _row(trade: Trade, payer: AlipayPayer | None, *, kind: str, amount: Money, done: datetime,
         request_no: str = "") -> dict[str, str]:
    fee = amount.times_bps(FEE_BPS)
    row = dict.fromkeys(COLUMNS, "0.00")
    row.update({"支付宝交易号": trade.trade_no + "\t", "商户订单号": trade.out_trade_no + "\t",
                "业务类型": kind, "商品名称": trade.subject, "创建时间": beijing_time(trade.created_at),
                "完成时间": beijing_time(done), "门店编号": "\t", "门店名称": "\t", "操作员": "\t",
                "终端号": "\t", "对方账户": (payer.logon_id if payer else "") + "\t",
                "订单金额（元）": amount.to_yuan(), "商家实收（元）": amount.to_yuan(), "券名称": "",
                "退款批次号/请求号": request_no + "\t", "服务费（元）": (-fee).to_yuan(),
                "备注": trade.subject})
    return row


def day_rows(trades: Iterable[Trade], payers: dict[str, AlipayPayer], day: date) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for trade in trades:
        payer = payers.get(trade.buyer_id)
        if trade.paid_at is not None and _on_day(trade.paid_at, day):
            rows.append(_row(trade, payer, kind="交易", amount=Money(trade.total_fen),
                             done=trade.paid_at))
        for refund in trade.refunds.values():
            if _on_day(refund.at, day):
                rows.append(_row(trade, payer, kind=REFUND, amount=Money(-refund.fen),
                                 done=refund.at, request_no=refund.out_request_no))
    return sorted(rows, key=lambda r: r["完成时间"])


def _ids(row: dict[str, str]) -> set[str]:
    return {row["商户订单号"].strip(), row["退款批次号/请求号"].strip()} - {""}


def _listed(diff: dict[str, object], key: str) -> set[str]:
    raw = diff.get(key)
    return {str(x) for x in raw} if isinstance(raw, list) else set()


def _moved_and_forced(trades: list[Trade], payers: dict[str, AlipayPayer], day: date,
                      diff: dict[str, object]) -> list[dict[str, str]]:
    """The day's rows after cross_day_order_ids (yesterday's rows of those ids come in at
    00:00:01, today's go to tomorrow) and status_order_ids (unpaid trades listed as paid)."""
    moved = _listed(diff, "cross_day_order_ids")
    rows = [r for r in day_rows(trades, payers, day) if not _ids(r) & moved]
    late = beijing_time(datetime.combine(day, datetime.min.time(), BEIJING)
                        + timedelta(seconds=1))
    rows += [{**r, "完成时间": late} for r in day_rows(trades, payers, day - timedelta(days=1))
             if _ids(r) & moved]
    noon = datetime.combine(day, datetime.min.time(), BEIJING) + timedelta(hours=12)
    by_no = {t.out_trade_no: t for t in trades}
    for no in sorted(_listed(diff, "status_order_ids")):
        trade = by_no.get(no)
        if trade is not None and trade.paid_at is None:
            rows.append(_row(trade, payers.get(trade.buyer_id), kind="交易",
                             amount=Money(trade.total_fen), done=noon))
    return rows


def _apply_diff(rows: list[dict[str, str]], diff: dict[str, object],
                day: date) -> list[dict[str, str]]:
    """drop_order_ids: rows whose out_trade_no (or refund request no) is listed disappear;
    amount_overrides {id: fen}: that row's amounts change; extra_rows: N phantom payments."""
    ids = _ids

    raw_drop = diff.get("drop_order_ids")
    drop = {str(x) for x in raw_drop} if isinstance(raw_drop, list) else set()
    raw_over = diff.get("amount_overrides")
    overrides = {str(k): v for k, v in raw_over.items()} if isinstance(raw_over, dict) else {}
    kept = [r for r in rows if not ids(r) & drop]
    for row in kept:
        for key in ids(row) & set(overrides):
            fen = int(str(overrides[key]))
            amount = Money(-abs(fen) if row["业务类型"] == REFUND else fen)
            row["订单金额（元）"] = row["商家实收（元）"] = amount.to_yuan()
    extra = diff.get("extra_rows", 0)
    for i in range(extra if isinstance(extra, int) else 0):
        phantom = Trade(f"PHANTOM{day:%Y%m%d}{i:04d}", 100, "phantom", "pay", "",
                        clock.now(), trade_no=f"{day:%Y%m%d}22{i:018d}")
        kept.append(_row(phantom, None, kind="交易", amount=Money(100),
                         done=datetime.combine(day, datetime.min.time(), BEIJING)))
    return kept


def _csv(header: list[str], table: list[list[str]], footer: list[str]) -> bytes:
    out = io.StringIO()
    for line in header:
        out.write(line + "\r\n")
    csv.writer(out, lineterminator="\r\n").writerows(table)
    for line in footer:
        out.write(line + "\r\n")
    return out.getvalue().encode("gbk", errors="replace")


def render_bill_zip(trades: Iterable[Trade], payers: dict[str, AlipayPayer], *, day: date,
                    account: str, diff: dict[str, object]) -> tuple[str, bytes]:
    """(zip file name, zip bytes) for the day's trade bill of `account` (PID + 0156)."""
    rows = _apply_diff(_moved_and_forced(list(trades), payers, day, diff), diff, day)
    start = datetime.combine(day, datetime.min.time(), BEIJING)
    span = f"#起始日期：[{_cn_time(start)}]   终止日期：[{_cn_time(start + timedelta(days=1))}]"
    head = [f"#账号：[{account}]", span]
    exported = f"#导出时间：[{_cn_time(clock.now())}]"
    pays = [r for r in rows if r["业务类型"] != REFUND]
    refunds = [r for r in rows if r["业务类型"] == REFUND]

    def total(rs: list[dict[str, str]], col: str) -> Money:
        return sum((Money.from_yuan(r[col]) for r in rs), Money(0))

    detail = _csv(
        ["#支付宝业务明细查询", *head, RULE + "业务明细列表----------------------------------------"],
        [list(COLUMNS), *[[r[c] for c in COLUMNS] for r in rows]],
        [RULE + "业务明细列表结束------------------------------------",
         f"#交易合计：{len(pays)}笔，商家实收共{total(pays, '商家实收（元）').to_yuan()}元，"
         f"商家优惠共0.00元",
         f"#退款合计：{len(refunds)}笔，商家实收退款共{total(refunds, '商家实收（元）').to_yuan()}元，"
         f"商家优惠退款共0.00元", exported])
    amount, fee = total(rows, "订单金额（元）"), total(rows, "服务费（元）")
    sums = [str(len(pays)), str(len(refunds)), amount.to_yuan(), total(rows, "商家实收（元）").to_yuan(),
            "0.00", "0.00", "0.00", fee.to_yuan(), "0.00", (amount + fee).to_yuan()]
    summary = _csv(
        ["#支付宝业务汇总查询", *head, RULE + "业务汇总列表----------------------------------------"],
        [list(SUMMARY_COLUMNS), ["", "", *sums], ["合计", "", *sums]],
        [RULE + "业务汇总列表结束-----------------------------------", exported])
    stem = f"{account}_{day:%Y%m%d}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(stem + DETAIL_SUFFIX, detail)
        zf.writestr(stem + BILL_SUMMARY_SUFFIX, summary)
    return f"{stem}.csv.zip", buf.getvalue()
