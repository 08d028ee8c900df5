"""The cashier behind a static aggregated QR plate (`/pay/q/{plate}`).

One printed code for every payer: the page recognises the scanning app from its User-Agent,
shows the merchant and an amount pad, creates a QR_STATIC order on that app's channel and hands
over to it. An app we cannot take gets a page naming the apps that work.

When a discount applies (a campaign, one of the payer's coupons) or the payer has points, the
amount is followed by a confirmation page showing amount, discount and what they pay, with a
choice to use points; the order is then created with the signed quote the page carried.
"""

from __future__ import annotations

import re

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fulema.channels.detect import detect_app
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_token
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.gateway.protection import degraded
from fulema.marketing import service as marketing
from fulema.merchants import service as merchants
from fulema.onboarding import service as onboarding
from fulema.payments import service as payments
from fulema.payments.api import deps_of
from fulema.payments.schemas import OrderOut
from fulema.web import pages
from fulema.web.oauth import authorize_url, verify_payer_token
from fulema.web.payer_messages import ABOVE_ZERO, ENTER_AMOUNT, payer_message
from fulema.web.render import render

# What a payer may type: yuan in ASCII digits, at most two decimals, nothing else. Decimal
# would also take '1e3', ' 1', '-1', '+1', 'NaN' and full-width digits ('１'); a payer who
# typed any of those meant something else, so it is refused, not interpreted.
_AMOUNT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?", re.ASCII)
AMOUNT_HELP = ENTER_AMOUNT


def payer_amount(text: str) -> Money:
    """The amount a payer typed on the pad, or INVALID_AMOUNT with a message for the payer."""
    if not _AMOUNT.fullmatch(text):
        raise FulemaError(ErrorCode.INVALID_AMOUNT, AMOUNT_HELP)
    return Money.from_yuan(text)

router = APIRouter(tags=["cashier"], include_in_schema=False)

# Set by the sandbox's app shell (sandbox/appshell, development only) to the app it plays. The
# name is repeated there, not imported: production code never reaches a sandbox (import-linter);
# a test checks the two agree.
APP_SHELL_COOKIE = "fulema_app_shell"
NO_PLATE = ("收款码不存在 · No such payment code",
            "这个收款码不存在或已停用 · This payment code does not exist or is disabled")
NO_ORDER = ("订单不存在 · No such order", "找不到这笔订单 · This order cannot be found")
STATUS_LABELS = {"SUCCESS": "支付成功 · Paid", "PAYING": "等待支付 · Waiting for payment",
                 "CREATED": "等待支付 · Waiting for payment",
                 "CLOSED": "订单已关闭 · Closed", "FAILED": "支付失败 · Failed",
                 "REFUNDED": "已退款 · Refunded", "PARTIAL_REFUNDED": "部分退款 · Partly refunded"}


def _not_found(request: Request, what: tuple[str, str]) -> HTMLResponse:
    """A page, not the API's JSON: the payer scanned a code or followed a link."""
    return render(request, "cashier/not_found.html", status_code=404, title=what[0],
                  message=what[1])


async def _plate(request: Request, plate_code: str) -> merchants.PlateInfo | None:
    try:
        return await merchants.get_plate(deps_of(request).db, code=plate_code)
    except FulemaError as exc:
        if exc.code == ErrorCode.PLATE_NOT_FOUND:
            return None
        raise


def _pad(request: Request, plate: merchants.PlateInfo, channel: ChannelName, *, payer_id: str,
         error: str = "", amount: str = "", status_code: int = 200) -> HTMLResponse:
    """The amount pad (again, with a message and what was typed, after bad input)."""
    return render(request, "cashier/pad.html", status_code=status_code,
                  merchant=plate.merchant_name, store=plate.store_name,
                  app_name=pages.APP_NAMES.get(channel.value, channel.value),
                  action=f"/pay/q/{plate.code}", payer_id=payer_id, error=error, amount=amount,
                  app_bridge=_app_bridge(request))


def _unsupported(request: Request, merchant: str, enabled: list[str],
                 status_code: int) -> HTMLResponse:
    """An app we cannot take (or whose channel is down): name the apps that work."""
    return render(request, "cashier/unsupported.html", status_code=status_code,
                  merchant=merchant, apps=[pages.APP_NAMES.get(c, c) for c in enabled])


def _app_bridge(request: Request) -> bool:
    """Whether the sandbox app shell plays the payer's app here (development only): then the
    page includes the shell's bridge script, as the real app injects its own (appshell)."""
    settings = deps_of(request).settings
    return (settings.is_development and settings.mount_sandbox
            and bool(request.cookies.get(APP_SHELL_COOKIE)))


@router.get("/pay/q/{plate_code}", response_class=HTMLResponse, response_model=None)
async def show_plate(plate_code: str, request: Request, pid: str = "") -> Response:
    deps = deps_of(request)
    plate = await _plate(request, plate_code)
    if plate is None:
        return _not_found(request, NO_PLATE)
    channel = detect_app(request.headers.get("user-agent", ""), deps.settings)
    enabled = await onboarding.offered_channels(  # onboarding on: registered channels only
        deps.db, deps.settings, merchant_id=plate.merchant_id,
        channels=[c.value for c in deps.channels.available()])
    if channel is None or channel.value not in enabled:
        # an unsupported app, or its channel is down right now: name the apps that work
        return _unsupported(request, plate.merchant_name, enabled, 200)
    if not pid or verify_payer_token(deps.settings, pid, channel=channel.value) is None:
        # An app that runs the cashier inside itself (WeChat, Alipay) needs the payer's id for
        # an in-app payment: ask it silently (the channel's PayerAuth); it comes back as a
        # signed `pid` token. A channel without payer authorisation goes on without one.
        url = authorize_url(deps.channels, deps.settings, channel, plate_code)
        if url is not None:
            return RedirectResponse(url, status_code=302)
        pid = ""
    return _pad(request, plate, channel, payer_id=pid)


@router.post("/pay/q/{plate_code}", response_class=HTMLResponse)
async def pay_plate(plate_code: str, request: Request, amount: str = Form(""),
                    payer_id: str = Form(""), quote: str = Form(""),
                    quote_points: str = Form(""), use_points: str = Form(""),
                    confirm: str = Form("")) -> HTMLResponse:
    deps = deps_of(request)
    plate = await _plate(request, plate_code)
    if plate is None:
        return _not_found(request, NO_PLATE)
    channel = detect_app(request.headers.get("user-agent", ""), deps.settings)
    enabled = await onboarding.offered_channels(  # onboarding on: registered channels only
        deps.db, deps.settings, merchant_id=plate.merchant_id,
        channels=[c.value for c in deps.channels.available()])
    if channel is None or channel.value not in enabled:
        return _unsupported(request, plate.merchant_name, enabled, 400)

    def again(message: str) -> HTMLResponse:
        return _pad(request, plate, channel, payer_id=payer_id, error=message, amount=amount,
                    status_code=400)

    try:
        money = payer_amount(amount)
        # only a payer id we signed ourselves (after the app's OAuth) is trusted
        payer = (verify_payer_token(deps.settings, payer_id, channel=channel.value)
                 if payer_id else None)
        if not money.is_positive:
            return again(ABOVE_ZERO)
        chosen = (quote_points if use_points and quote_points else quote) if confirm else ""
        if not confirm:
            offer = await _offer(request, plate, channel, money, payer, token=payer_id)
            if offer is not None:
                return offer
        cred = await merchants.default_app_for_merchant(deps.db, merchant_id=plate.merchant_id)
        view = await payments.create_order(
            deps, merchant_id=plate.merchant_id, app_id=cred.app_id if cred else "cashier",
            default_notify_url=cred.notify_url if cred else None,
            new=payments.NewOrder(
                out_trade_no=f"QR{new_token(12)}", amount=money, subject=plate.merchant_name,
                way_code=WayCode.QR_STATIC, channel=channel, payer_id=payer,
                store_id=plate.store_id, quote=chosen or None,
                client_ip=request.client.host if request.client else "127.0.0.1"))
    except FulemaError as exc:
        return again(payer_message(exc, deps.settings))
    return hand_over(request, merchant=plate.merchant_name, view=view)


def hand_over(request: Request, *, merchant: str, view: OrderOut) -> HTMLResponse:
    """The page that hands the payment to the payer's app: its in-app payment interface
    (WeChat JSAPI, Alipay tradePay, 云闪付 upsdk.pay; static/cashier.js), or the link the app
    opens (e-CNY, the bank's app, a QR link without a proven payer)."""
    channel = view.channel.value
    params = view.pay_params or None
    way, tn = "link", ""
    if channel == "wechat" and params and params.get("paySign"):
        way = "wechat"
    elif channel == "alipay" and params and params.get("tradeNO"):
        way = "alipay"
    elif channel == "unionpay" and view.code_url:
        # upsdk.pay takes the payment's reference; ours is the QR code UnionPay issued for
        # this order (docs/cashier.md: why, and what a tn from 手机控件支付 would change)
        way, tn = "unionpay", view.code_url
    return render(request, "cashier/hand_over.html", merchant=merchant, order_id=view.order_id,
                  amount=Money(view.payable_amount).to_yuan(), way=way, tn=tn,
                  pay_params=params if way in ("wechat", "alipay") else None,
                  link=view.h5_url or view.code_url or "",
                  app_name=pages.APP_NAMES.get(channel, channel),
                  app_bridge=_app_bridge(request))


async def _offer(request: Request, plate: merchants.PlateInfo, channel: ChannelName,
                 money: Money, payer: str | None, *, token: str) -> HTMLResponse | None:
    """The confirmation page when a discount or points can lower what the payer pays; None
    when nothing applies (the order is then created straight away, as without marketing), and
    while the platform is degraded: marketing is the first work shed (the full amount)."""
    if degraded(request):
        return None
    deps = deps_of(request)
    ask = dict(merchant_id=plate.merchant_id, amount=money, channel=channel.value,
               payer_id=payer, store_id=plate.store_id)
    try:
        best = await marketing.quote(deps.db, deps.settings, **ask)  # type: ignore[arg-type]
        with_points = (await marketing.quote(deps.db, deps.settings, max_points=True, **ask)  # type: ignore[arg-type]
                       if payer and best.points_balance else None)
    except FulemaError:
        return None  # the order's own checks answer the payer
    points_line = next((d for d in with_points.discounts if d.kind == "points"), None) if (
        with_points) else None
    if best.discount_amount == 0 and points_line is None:
        return None
    offer = None
    if with_points is not None and points_line is not None:
        offer = (points_line.points or 0, Money(points_line.amount).to_yuan(),
                 Money(with_points.payable_amount).to_yuan(), with_points.quote_id)
    return render(
        request, "cashier/confirm.html", merchant=plate.merchant_name,
        action=f"/pay/q/{plate.code}", payer_id=token if payer else "", amount=money.to_yuan(),
        lines=[(d.kind, Money(d.amount).to_yuan()) for d in best.discounts],
        kind_names=pages.KIND_NAMES, discount=Money(best.discount_amount).to_yuan(),
        payable=Money(best.payable_amount).to_yuan(), quote=best.quote_id, points_offer=offer,
        app_bridge=_app_bridge(request))


async def _order(request: Request, order_id: str) -> tuple[OrderOut, str] | None:
    """The order and its merchant's name; None for an order that does not exist."""
    deps = deps_of(request)
    try:
        view = await payments.order_by_id(deps, order_id=order_id)
    except FulemaError as exc:
        if exc.code == ErrorCode.ORDER_NOT_FOUND:
            return None
        raise
    snapshot = await merchants.check_merchant(deps.db, merchant_id=view.merchant_id)
    return view, snapshot.name


@router.get("/pay/result/{order_id}", response_class=HTMLResponse)
async def show_result(order_id: str, request: Request) -> HTMLResponse:
    found = await _order(request, order_id)
    if found is None:
        return _not_found(request, NO_ORDER)
    view, merchant = found
    status = view.status.value
    return render(request, "cashier/result.html", merchant=merchant, order_id=order_id,
                  amount=Money(view.payable_amount).to_yuan(), status=status,
                  label=STATUS_LABELS.get(status, status))


@router.get("/pay/result/{order_id}/status", response_model=None)
async def result_status(order_id: str, request: Request) -> JSONResponse:
    """What the result and PC cashier pages poll: the order's state and its label. Read from
    the platform's own record (the channel's notification moves it), never a call to the
    channel, so polling costs one primary-key read."""
    found = await _order(request, order_id)
    if found is None:
        return JSONResponse({"status": "NOT_FOUND", "label": NO_ORDER[0]}, status_code=404,
                            headers={"Cache-Control": "no-store"})
    status = found[0].status.value
    return JSONResponse({"status": status, "label": STATUS_LABELS.get(status, status)},
                        headers={"Cache-Control": "no-store"})


@router.get("/pay/order/{order_id}", response_class=HTMLResponse)
async def pc_cashier(order_id: str, request: Request) -> HTMLResponse:
    """The PC cashier: the order's own QR code (a QR_DYNAMIC order's code_url) beside the
    amount; the page turns to "paid" by itself once the payer has paid in the app."""
    found = await _order(request, order_id)
    if found is None:
        return _not_found(request, NO_ORDER)
    view, merchant = found
    status = view.status.value
    waiting = status in ("CREATED", "PAYING")
    qr = (segno.make_qr(view.code_url, error="m").svg_data_uri(scale=4, border=2)
          if waiting and view.code_url else "")
    channel = view.channel.value
    return render(request, "cashier/order.html", merchant=merchant, order_id=order_id,
                  subject=view.subject, amount=Money(view.payable_amount).to_yuan(),
                  status=status, label=STATUS_LABELS.get(status, status), qr=qr,
                  app_name=pages.APP_NAMES.get(channel, channel))
