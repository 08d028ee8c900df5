"""Merchant API: signed JSON over HTTPS. Every route authenticates the signature first, then
validates the body, so an unsigned caller learns nothing about our validation rules.

Because the body is parsed by hand (after the signature over its raw bytes), each route names
its body (`json_body`), its answer (`response_model`) and its error codes (`error_responses`)
for the OpenAPI document; the services return those typed views and `json_response` puts them
on the wire."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fulema.core import logctx
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.core.web import error_responses, json_body, json_response
from fulema.gateway.protection import RecentAnswers, degraded
from fulema.gateway.service import remember_nonce
from fulema.gateway.signed import (
    SIGNED,
    Signed,
    SignedDeferredNonce,
    SignedRequest,
    parse_body,
)
from fulema.marketing import service as marketing
from fulema.payments import notifications, refunds
from fulema.payments import service as payments
from fulema.payments.schemas import (
    CreateOrderBody,
    NotificationListOut,
    OrderOut,
    RefundBody,
    RefundOut,
)

router = APIRouter(prefix="/api/v1", tags=["merchant API"])

# What a merchant may ask for. QR_STATIC orders are made only by a plate's cashier page.
MERCHANT_WAY_CODES = tuple(w for w in WayCode if w is not WayCode.QR_STATIC)

E = ErrorCode
CHANNEL = (E.CHANNEL_NOT_ENABLED, E.CHANNEL_ERROR, E.CHANNEL_UNAVAILABLE, E.SUB_MERCHANT_REFUSED)
# What an order with a marketing quote can refuse (its discounts are reserved with the order).
QUOTED = (E.QUOTE_INVALID, E.QUOTE_EXPIRED, E.QUOTE_MISMATCH, E.CAMPAIGN_NOT_FOUND,
          E.CAMPAIGN_NOT_ACTIVE, E.CAMPAIGN_NOT_APPLICABLE, E.BUDGET_EXHAUSTED,
          E.COUPON_NOT_FOUND, E.COUPON_NOT_OWNED, E.COUPON_NOT_APPLICABLE, E.COUPON_EXPIRED,
          E.COUPON_NOT_AVAILABLE, E.INVALID_POINTS, E.POINTS_INSUFFICIENT,
          # and what `"discount": "best"` can refuse besides
          E.DISCOUNT_REQUEST_INVALID, E.PAYER_REQUIRED_FOR_DISCOUNT, E.THRESHOLD_NOT_MET,
          E.DISCOUNTS_NOT_STACKABLE)


def deps_of(request: Request) -> payments.Deps:
    deps: payments.Deps = request.app.state.payments
    return deps


def merchant_way_code(value: str) -> WayCode:
    """UNKNOWN_WAY_CODE unless `value` is one of the way codes the merchant API takes."""
    if value == WayCode.QR_STATIC:
        raise FulemaError(ErrorCode.UNKNOWN_WAY_CODE,
                          "QR_STATIC orders come only from the QR plate's cashier (/pay/q/{plate}) "
                          "when a payer scans the plate; for a QR code of this order use "
                          "QR_DYNAMIC")
    if value not in MERCHANT_WAY_CODES:
        raise FulemaError(ErrorCode.UNKNOWN_WAY_CODE,
                          f"way_code must be one of {', '.join(MERCHANT_WAY_CODES)}")
    return WayCode(value)


@router.post("/orders", summary="Unified order (统一下单)", response_model=OrderOut,
             openapi_extra=json_body(CreateOrderBody), responses=error_responses(
                 *SIGNED, *CHANNEL, E.INVALID_AMOUNT, E.AMOUNT_OUT_OF_RANGE, E.UNKNOWN_WAY_CODE,
                 E.WAY_NOT_SUPPORTED, E.NOTIFY_URL_REFUSED,
                 E.UNRECOGNISED_PAYER_CODE, E.PAYER_ID_REQUIRED, E.MERCHANT_NOT_FOUND,
                 E.MERCHANT_NOT_ACTIVE, E.MERCHANT_FROZEN, E.MERCHANT_CLOSED, E.RISK_REJECTED,
                 E.STORE_NOT_FOUND, E.DUPLICATE_OUT_TRADE_NO, E.CHANNEL_NOT_REGISTERED, *QUOTED))
async def create_order(request: Request, signed: SignedDeferredNonce) -> Response:
    cred = signed.cred  # its nonce is recorded with the order
    body = parse_body(CreateOrderBody, signed.body)
    logctx.bind(out_trade_no=body.out_trade_no)
    new = payments.NewOrder(
        out_trade_no=body.out_trade_no, amount=Money.of(body.amount), subject=body.subject,
        way_code=merchant_way_code(body.way_code), channel=body.channel,
        auth_code=body.auth_code, payer_id=body.payer_id, store_id=body.store_id,
        notify_url=body.notify_url, attach=body.attach, expire_seconds=body.expire_seconds,
        client_ip=body.client_ip or (request.client.host if request.client else "127.0.0.1"),
        quote=body.quote, discount=body.discount,
        discount_picks=marketing.Picks(**body.discount_picks.model_dump())
        if body.discount_picks is not None else None,
        terminal_id=body.terminal_id, device_id=body.device_id)
    view = await payments.create_order(deps_of(request), merchant_id=cred.merchant_id,
                                       app_id=cred.app_id, new=new,
                                       default_notify_url=cred.notify_url,
                                       nonce=signed.nonce, shed_marketing=degraded(request))
    logctx.bind(order_id=view.order_id)
    return json_response(view)


@router.get("/orders/by-out-trade-no/{out_trade_no}", summary="Query by merchant order number",
            response_model=OrderOut, responses=error_responses(*SIGNED, E.ORDER_NOT_FOUND))
async def query_by_out_trade_no(out_trade_no: str, request: Request,
                                signed: SignedDeferredNonce) -> Response:
    cred = signed.cred
    logctx.bind(out_trade_no=out_trade_no)
    key = (cred.app_id, "no", out_trade_no)
    if (cached := await _recent(request, key, signed)) is not None:
        return cached
    view = await payments.query_order(deps_of(request), merchant_id=cred.merchant_id,
                                      out_trade_no=out_trade_no, app_id=cred.app_id,
                                      nonce=signed.nonce)
    return _remember(request, key, view)


@router.get("/orders/{order_id}", summary="Query an order", response_model=OrderOut,
            responses=error_responses(*SIGNED, E.ORDER_NOT_FOUND))
async def query_order(order_id: str, request: Request, signed: SignedDeferredNonce) -> Response:
    # The nonce is recorded by the read's own transaction (payments.query_order).
    cred = signed.cred
    logctx.bind(order_id=order_id)
    key = (cred.app_id, "id", order_id)
    if (cached := await _recent(request, key, signed)) is not None:
        return cached
    view = await payments.query_order(deps_of(request), merchant_id=cred.merchant_id,
                                      order_id=order_id, app_id=cred.app_id, nonce=signed.nonce)
    return _remember(request, key, view)


async def _recent(request: Request, key: tuple[str, ...],
                  signed: SignedRequest) -> Response | None:
    """While the app's requests are degraded, an answer of the last seconds, marked as such
    (its nonce recorded first: a replay is refused however the answer is made)."""
    answers: RecentAnswers | None = getattr(request.app.state, "recent_answers", None)
    if answers is None or not degraded(request):
        return None
    hit = answers.get(key)
    if hit is None:
        return None
    await remember_nonce(deps_of(request).db, app_id=signed.cred.app_id, nonce=signed.nonce)
    age, view = hit
    response = json_response(view)
    response.headers["X-Fulema-Cached"] = f"{age:.1f}"
    return response


def _remember(request: Request, key: tuple[str, ...], view: OrderOut) -> Response:
    answers: RecentAnswers | None = getattr(request.app.state, "recent_answers", None)
    if answers is not None:
        answers.put(key, view)
    return json_response(view)


@router.post("/orders/{order_id}/close", summary="Close an unpaid order", response_model=OrderOut,
             responses=error_responses(*SIGNED, *CHANNEL, E.ORDER_NOT_FOUND,
                                       E.ORDER_ALREADY_FINAL))
async def close_order(order_id: str, request: Request, signed: Signed) -> Response:
    cred = signed.cred
    logctx.bind(order_id=order_id)
    view = await payments.close_order(deps_of(request), merchant_id=cred.merchant_id,
                                      order_id=order_id)
    return json_response(view)


@router.post("/orders/{order_id}/refunds", summary="Refund (partial, repeated)",
             response_model=RefundOut, openapi_extra=json_body(RefundBody),
             responses=error_responses(
                 *SIGNED, E.INVALID_AMOUNT, E.CHANNEL_NOT_ENABLED, E.ORDER_NOT_FOUND,
                 E.NOTIFY_URL_REFUSED,
                 E.DUPLICATE_OUT_REFUND_NO, E.ORDER_NOT_PAID, E.REFUND_EXCEEDS_REFUNDABLE,
                 E.RISK_REJECTED))
async def create_refund(order_id: str, request: Request, signed: Signed) -> Response:
    cred = signed.cred
    logctx.bind(order_id=order_id)
    body = parse_body(RefundBody, signed.body)
    view = await refunds.create_refund(deps_of(request), merchant_id=cred.merchant_id,
                                       order_id=order_id, out_refund_no=body.out_refund_no,
                                       amount=Money.of(body.amount), reason=body.reason,
                                       notify_url=body.notify_url)
    return json_response(view)


@router.get("/refunds/by-out-refund-no/{out_refund_no}", summary="Query a refund by number",
            response_model=RefundOut, responses=error_responses(*SIGNED, E.REFUND_NOT_FOUND))
async def query_refund_by_no(out_refund_no: str, request: Request, signed: Signed) -> Response:
    cred = signed.cred
    return json_response(await refunds.get_refund(deps_of(request).db, merchant_id=cred.merchant_id,
                                                  out_refund_no=out_refund_no))


@router.get("/refunds/{refund_id}", summary="Query a refund", response_model=RefundOut,
            responses=error_responses(*SIGNED, E.REFUND_NOT_FOUND))
async def query_refund(refund_id: str, request: Request, signed: Signed) -> Response:
    cred = signed.cred
    return json_response(await refunds.get_refund(deps_of(request).db, merchant_id=cred.merchant_id,
                                                  refund_id=refund_id))


@router.post("/orders/{order_id}/notify", summary="Send the order's notifications again",
             response_model=NotificationListOut,
             responses=error_responses(*SIGNED, E.ORDER_NOT_FOUND))
async def resend_notifications(order_id: str, request: Request, signed: Signed) -> Response:
    cred = signed.cred
    deps = deps_of(request)
    views = await notifications.resend(deps.db, merchant_id=cred.merchant_id, order_id=order_id)
    deps.db.committed.notify()  # the notification loop: no event was published
    return json_response(NotificationListOut(notifications=views))


@router.get("/orders/{order_id}/notifications", summary="Notification attempts for an order",
            response_model=NotificationListOut,
            responses=error_responses(*SIGNED, E.ORDER_NOT_FOUND))
async def list_notifications(order_id: str, request: Request, signed: Signed) -> Response:
    cred = signed.cred
    views = await notifications.list_for_order(deps_of(request).db, merchant_id=cred.merchant_id,
                                               order_id=order_id)
    return json_response(NotificationListOut(notifications=views))
