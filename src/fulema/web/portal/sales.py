"""The portal's sales pages: today's takings, orders (filters, cursor pages), one order with
its history and the refund form, and the daily and monthly reports with their CSV export.

Filters arrive as text and are parsed here, so bad input gets the page again with a message
naming the field (never a JSON 422). Refunds go through `payments.create_refund` with the
out_refund_no made when the form was rendered: a double submit refunds once.
"""

from __future__ import annotations

import re
import secrets
from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from fulema.core.clock import clock
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.vocab import ChannelName
from fulema.gateway.protection import shed_when_degraded
from fulema.merchants import service as merchants
from fulema.merchants.user_rules import Permission
from fulema.payments import portal_reads as reads
from fulema.payments import service as payments
from fulema.payments.domain import OrderStatus
from fulema.web.charts import bars
from fulema.web.portal import auth
from fulema.web.render import render

router = APIRouter(prefix="/portal", include_in_schema=False)
_YUAN = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?", re.ASCII)
_REFUND_NO = re.compile(r"portal[0-9a-f]{16}", re.ASCII)
CHANNELS = [c.value for c in ChannelName]
STATUSES = [s.value for s in OrderStatus]


def _bad(field: str, zh: str, en: str) -> FulemaError:
    return FulemaError(ErrorCode.VALIDATION_ERROR, f"{field}: {zh} · {en}")


def parse_day(field: str, text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _bad(field, "日期格式应为 2026-11-26", "a date like 2026-11-26") from None


def parse_yuan(field: str, text: str) -> Money | None:
    if not text:
        return None
    if not _YUAN.fullmatch(text.strip()):
        raise _bad(field, "金额如 12.50", "an amount in yuan like 12.50")
    return Money.from_yuan(text.strip())


def today() -> date:
    return reads.local_day(clock.now())


async def _store_names(request: Request, merchant_id: str) -> dict[str, str]:
    detail = await merchants.get_merchant(request.app.state.db, merchant_id=merchant_id)
    return {s.id: s.name for s in detail.stores}


@router.get("/")
@auth.page()
async def takings(request: Request, day: str = "") -> Response:
    ctx = auth.ctx_of(request)
    the_day = parse_day("day", day) or today()
    t = await reads.takings(request.app.state.db, merchant_id=ctx.merchant_id, day=the_day)
    names = await _store_names(request, ctx.merchant_id)
    stores = {names.get(k, k or "—"): v for k, v in t.by_store.items()}
    hours = [f"{h:02d}" for h in range(24)]
    return render(request, "portal/takings.html", day=the_day, t=t, stores=stores,
                  chart_channel=bars(list(t.by_channel), list(t.by_channel.values()),
                                     title="按渠道 By channel"),
                  chart_store=bars(list(stores), list(stores.values()), title="按门店 By store"),
                  chart_hour=bars(hours, t.by_hour, title="按小时 By hour"),
                  hours=hours, **ctx.page())


def _filter(q: dict[str, str]) -> reads.OrderFilter:
    status, channel = q.get("status", ""), q.get("channel", "")
    if status and status not in STATUSES:
        raise _bad("status", "未知状态", "unknown state")
    if channel and channel not in CHANNELS:
        raise _bad("channel", "未知渠道", "unknown channel")
    low, high = parse_yuan("min", q.get("min", "")), parse_yuan("max", q.get("max", ""))
    if low is not None and high is not None and low.fen > high.fen:
        raise _bad("min", "最小金额大于最大金额", "min is above max")
    day_from, day_to = parse_day("from", q.get("from", "")), parse_day("to", q.get("to", ""))
    if day_from and day_to and day_from > day_to:
        raise _bad("from", "开始日期晚于结束日期", "from is after to")
    out_trade_no = q.get("out_trade_no", "").strip()
    if len(out_trade_no) > 64:
        raise _bad("out_trade_no", "最长 64 个字符", "at most 64 characters")
    return reads.OrderFilter(day_from=day_from, day_to=day_to, status=status or None,
                             channel=channel or None, store_id=q.get("store") or None,
                             min_fen=low.fen if low else None, max_fen=high.fen if high else None,
                             out_trade_no=out_trade_no or None)


@router.get("/orders")
@auth.page()
async def orders(request: Request) -> Response:
    ctx = auth.ctx_of(request)
    q = {k: v for k, v in request.query_params.items() if k != "lang"}
    names = await _store_names(request, ctx.merchant_id)
    common = {"q": q, "channels": CHANNELS, "statuses": STATUSES, "stores": names,
              **ctx.page()}
    try:
        where = _filter(q)
    except FulemaError as exc:
        return render(request, "portal/orders.html", status_code=400, error=exc.message,
                      page=None, next_href="", **common)
    after = q.get("after", "")[:40] or None
    page = await reads.list_orders(request.app.state.db, merchant_id=ctx.merchant_id,
                                   where=where, limit=20, starting_after=after)
    next_href = ""
    if page.has_more and page.data:
        next_href = "/portal/orders?" + urlencode({**q, "after": page.data[-1].order_id})
    return render(request, "portal/orders.html", error="", page=page, next_href=next_href,
                  **common)


async def _detail_page(request: Request, order_id: str, *, error: str = "",
                       message: str = "", status_code: int = 200) -> Response:
    ctx = auth.ctx_of(request)
    detail = await reads.order_detail(request.app.state.db, merchant_id=ctx.merchant_id,
                                      order_id=order_id)
    names = await _store_names(request, ctx.merchant_id)
    return render(request, "portal/order.html", status_code=status_code, d=detail,
                  store_name=names.get(detail.store_id or "", "—"), error=error, message=message,
                  out_refund_no=f"portal{secrets.token_hex(8)}",
                  can_refund=ctx.may(Permission.REFUND), **ctx.page())


@router.get("/orders/{order_id}")
@auth.page()
async def order(request: Request, order_id: str, done: str = "") -> Response:
    return await _detail_page(request, order_id,
                              message="退款已提交 · Refund submitted" if done else "")


def _refund_input(detail: reads.OrderDetail, amount: str, out_refund_no: str) -> Money:
    if not _REFUND_NO.fullmatch(out_refund_no):
        raise _bad("out_refund_no", "表单无效，请刷新", "the form is broken: reload it")
    money = parse_yuan("amount", amount)
    if money is None or money.fen <= 0:
        raise _bad("amount", "请输入退款金额", "enter the amount to refund")
    if money.fen > detail.refundable:
        raise _bad("amount", f"最多可退 {Money(detail.refundable).to_yuan()} 元",
                   f"at most {Money(detail.refundable).to_yuan()} may be refunded")
    return money


@router.post("/orders/{order_id}/refund/confirm")
@auth.page(Permission.REFUND)
async def confirm_refund(request: Request, order_id: str, amount: str = Form("", max_length=20),
                         reason: str = Form("", max_length=128),
                         out_refund_no: str = Form("", max_length=64)) -> Response:
    ctx = auth.ctx_of(request)
    detail = await reads.order_detail(request.app.state.db, merchant_id=ctx.merchant_id,
                                      order_id=order_id)
    try:
        money = _refund_input(detail, amount, out_refund_no)
    except FulemaError as exc:
        return await _detail_page(request, order_id, error=exc.message, status_code=400)
    return render(request, "portal/refund_confirm.html", d=detail, amount=money,
                  reason=reason.strip(), out_refund_no=out_refund_no, **ctx.page())


@router.post("/orders/{order_id}/refund")
@auth.page(Permission.REFUND)
async def refund(request: Request, order_id: str, amount: str = Form("", max_length=20),
                 reason: str = Form("", max_length=128),
                 out_refund_no: str = Form("", max_length=64)) -> Response:
    ctx = auth.ctx_of(request)
    detail = await reads.order_detail(request.app.state.db, merchant_id=ctx.merchant_id,
                                      order_id=order_id)
    already = any(r.out_refund_no == out_refund_no for r in detail.refunds)
    if not already:  # a second submit of the same form is answered by the first refund
        try:
            money = _refund_input(detail, amount, out_refund_no)
            await payments.create_refund(request.app.state.payments, merchant_id=ctx.merchant_id,
                                         order_id=order_id, out_refund_no=out_refund_no,
                                         amount=money, reason=reason.strip())
        except FulemaError as exc:
            return await _detail_page(request, order_id, error=exc.message, status_code=400)
    return RedirectResponse(f"/portal/orders/{order_id}?done=1", status_code=303)


def _report_span(q: dict[str, str]) -> tuple[date, date, bool]:
    monthly = q.get("period") == "month"
    end = parse_day("to", q.get("to", "")) or today()
    start = parse_day("from", q.get("from", "")) or (
        end.replace(day=1) - timedelta(days=150) if monthly else end - timedelta(days=13))
    if monthly:
        start = start.replace(day=1)
    return start, end, monthly


@router.get("/reports")
@auth.page()
async def reports(request: Request) -> Response:
    ctx = auth.ctx_of(request)
    q = dict(request.query_params)
    try:
        start, end, monthly = _report_span(q)
        rows = await reads.report(request.app.state.db, merchant_id=ctx.merchant_id,
                                  day_from=start, day_to=end, monthly=monthly)
    except FulemaError as exc:
        return render(request, "portal/reports.html", status_code=400, error=exc.message,
                      rows=[], q=q, chart="", csv_href="", can_export=False, **ctx.page())
    span = {"period": "month" if monthly else "day", "from": start.isoformat(),
            "to": end.isoformat()}
    return render(request, "portal/reports.html", error="", rows=rows, q=span,
                  chart=bars([r.period[5:] for r in rows], [r.gross for r in rows],
                             title="收款 Gross"),
                  csv_href="/portal/reports.csv?" + urlencode(span),
                  can_export=ctx.may(Permission.EXPORT), **ctx.page())


@router.get("/reports.csv", dependencies=[Depends(shed_when_degraded)])
@auth.page(Permission.EXPORT)
async def reports_csv(request: Request) -> Response:
    ctx = auth.ctx_of(request)
    start, end, monthly = _report_span(dict(request.query_params))
    rows = await reads.report(request.app.state.db, merchant_id=ctx.merchant_id,
                              day_from=start, day_to=end, monthly=monthly)
    name = f"fulema-{'monthly' if monthly else 'daily'}-{start}-{end}.csv"
    return Response(reads.report_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
