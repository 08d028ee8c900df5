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

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulema.channels.detect import detect_app
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_token
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.gateway.protection import degraded
from fulema.marketing import service as marketing
from fulema.merchants import service as merchants
from fulema.payments import service as payments
from fulema.payments.api import deps_of
from fulema.web import pages
from fulema.web.oauth import authorize_url, verify_payer_token
from fulema.web.security_headers import script_nonce

# What a payer may type: yuan in ASCII digits, at most two decimals, nothing else. Decimal
# would also take '1e3', ' 1', '-1', '+1', 'NaN' and full-width digits ('１'); a payer who
# typed any of those meant something else, so it is refused, not interpreted.
_AMOUNT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?", re.ASCII)
AMOUNT_HELP = "请输入金额，如 12.50 · Enter the amount in yuan, like 12.50 (digits, up to 2 decimals)"


def payer_amount(text: str) -> Money:
    """The amount a payer typed on the pad, or INVALID_AMOUNT with a message for the payer."""
    if not _AMOUNT.fullmatch(text):
        raise FulemaError(ErrorCode.INVALID_AMOUNT, AMOUNT_HELP)
    return Money.from_yuan(text)

router = APIRouter(tags=["cashier"], include_in_schema=False)


@router.get("/pay/q/{plate_code}", response_class=HTMLResponse, response_model=None)
async def show_plate(plate_code: str, request: Request, pid: str = "") -> Response:
    deps = deps_of(request)
    plate = await merchants.get_plate(deps.db, code=plate_code)
    channel = detect_app(request.headers.get("user-agent", ""), deps.settings)
    enabled = [c.value for c in deps.channels.available()]
    if channel is None or channel.value not in enabled:
        # an unsupported app, or its channel is down right now: name the apps that work
        return HTMLResponse(pages.unsupported(plate.merchant_name, enabled), status_code=200)
    if not pid or verify_payer_token(deps.settings, pid, channel=channel.value) is None:
        # An app that runs the cashier inside itself (WeChat, Alipay) needs the payer's id for
        # an in-app payment: ask it silently (the channel's PayerAuth); it comes back as a
        # signed `pid` token. A channel without payer authorisation goes on without one.
        url = authorize_url(deps.channels, deps.settings, channel, plate_code)
        if url is not None:
            return RedirectResponse(url, status_code=302)
        pid = ""
    return HTMLResponse(pages.amount_pad(merchant=plate.merchant_name, store=plate.store_name,
                                         channel=channel.value, action=f"/pay/q/{plate_code}",
                                         payer_id=pid, nonce=script_nonce(request)))


@router.post("/pay/q/{plate_code}", response_class=HTMLResponse)
async def pay_plate(plate_code: str, request: Request, amount: str = Form(""),
                    payer_id: str = Form(""), quote: str = Form(""),
                    quote_points: str = Form(""), use_points: str = Form(""),
                    confirm: str = Form("")) -> HTMLResponse:
    deps = deps_of(request)
    plate = await merchants.get_plate(deps.db, code=plate_code)
    channel = detect_app(request.headers.get("user-agent", ""), deps.settings)
    enabled = [c.value for c in deps.channels.available()]
    if channel is None or channel.value not in enabled:
        return HTMLResponse(pages.unsupported(plate.merchant_name, enabled), status_code=400)

    def again(message: str) -> HTMLResponse:
        return HTMLResponse(pages.amount_pad(
            merchant=plate.merchant_name, store=plate.store_name, channel=channel.value,
            action=f"/pay/q/{plate_code}", payer_id=payer_id, error=message, amount=amount,
            nonce=script_nonce(request)), status_code=400)

    try:
        money = payer_amount(amount)
        # only a payer id we signed ourselves (after the app's OAuth) is trusted
        payer = (verify_payer_token(deps.settings, payer_id, channel=channel.value)
                 if payer_id else None)
        if not money.is_positive:
            return again("请输入大于 0 的金额 · Enter an amount above 0")
        chosen = (quote_points if use_points and quote_points else quote) if confirm else ""
        if not confirm:
            offer = await _offer(request, plate, channel, money, payer, token=payer_id)
            if offer is not None:
                return HTMLResponse(offer)
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
        return again(exc.message)
    return HTMLResponse(pages.hand_over(
        merchant=plate.merchant_name, amount=Money(view.payable_amount).to_yuan(),
        order_id=view.order_id,
        channel=channel.value, pay_params=view.pay_params, code_url=view.code_url,
        h5_url=view.h5_url))


async def _offer(request: Request, plate: merchants.PlateInfo, channel: ChannelName,
                 money: Money, payer: str | None, *, token: str) -> str | None:
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
    return pages.confirm(
        merchant=plate.merchant_name, action=f"/pay/q/{plate.code}",
        payer_id=token if payer else "", amount=money.to_yuan(),
        lines=[(d.kind, Money(d.amount).to_yuan()) for d in best.discounts],
        discount=Money(best.discount_amount).to_yuan(),
        payable=Money(best.payable_amount).to_yuan(), quote=best.quote_id, points_offer=offer)


@router.get("/pay/result/{order_id}", response_class=HTMLResponse)
async def show_result(order_id: str, request: Request) -> HTMLResponse:
    deps = deps_of(request)
    view = await payments.order_by_id(deps, order_id=order_id)
    snapshot = await merchants.check_merchant(deps.db, merchant_id=view.merchant_id)
    return HTMLResponse(pages.result(merchant=snapshot.name, amount=Money(view.payable_amount).to_yuan(),
                                     status=view.status, order_id=order_id))
