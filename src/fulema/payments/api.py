"""Merchant API: signed JSON over HTTPS. Every route authenticates the signature first, then
validates the body, so an unsigned caller learns nothing about our validation rules."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.core.web import json_response
from fulema.gateway.service import authenticate
from fulema.gateway.signing import H_NONCE
from fulema.merchants.service import AppCredential
from fulema.payments import notifications, refunds
from fulema.payments import service as payments
from fulema.payments.schemas import CreateOrderBody, RefundBody

router = APIRouter(prefix="/api/v1", tags=["merchant API"])
M = TypeVar("M", bound=BaseModel)

# What a merchant may ask for. QR_STATIC orders are made only by a plate's cashier page.
MERCHANT_WAY_CODES = tuple(w for w in WayCode if w is not WayCode.QR_STATIC)


def deps_of(request: Request) -> payments.Deps:
    deps: payments.Deps = request.app.state.payments
    return deps


async def _auth(request: Request, *, defer_nonce: bool = False) -> tuple[AppCredential, bytes]:
    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    deps = deps_of(request)
    cred = await authenticate(deps.db, deps.settings, method=request.method, path=path,
                              headers={k.lower(): v for k, v in request.headers.items()},
                              body=body, defer_nonce=defer_nonce)
    return cred, body


def parse_body(model: type[M], raw: bytes) -> M:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FulemaError(ErrorCode.MALFORMED_JSON, "body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise FulemaError(ErrorCode.MALFORMED_JSON, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if field == "amount":
            raise FulemaError(ErrorCode.INVALID_AMOUNT,
                              "amount must be an integer number of fen") from exc
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"{field}: {first['msg']}") from exc


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


@router.post("/orders", summary="Unified order (统一下单)")
async def create_order(request: Request) -> Response:
    cred, raw = await _auth(request, defer_nonce=True)  # recorded with the order
    body = parse_body(CreateOrderBody, raw)
    new = payments.NewOrder(
        out_trade_no=body.out_trade_no, amount=Money.of(body.amount), subject=body.subject,
        way_code=merchant_way_code(body.way_code), channel=body.channel,
        auth_code=body.auth_code, payer_id=body.payer_id, store_id=body.store_id,
        notify_url=body.notify_url, attach=body.attach, expire_seconds=body.expire_seconds,
        client_ip=body.client_ip or (request.client.host if request.client else "127.0.0.1"))
    view = await payments.create_order(deps_of(request), merchant_id=cred.merchant_id,
                                       app_id=cred.app_id, new=new,
                                       default_notify_url=cred.notify_url,
                                       nonce=request.headers[H_NONCE])
    return json_response(view)


@router.get("/orders/by-out-trade-no/{out_trade_no}", summary="Query by merchant order number")
async def query_by_out_trade_no(out_trade_no: str, request: Request) -> Response:
    cred, _ = await _auth(request)
    view = await payments.query_order(deps_of(request), merchant_id=cred.merchant_id,
                                      out_trade_no=out_trade_no)
    return json_response(view)


@router.get("/orders/{order_id}", summary="Query an order")
async def query_order(order_id: str, request: Request) -> Response:
    cred, _ = await _auth(request)
    view = await payments.query_order(deps_of(request), merchant_id=cred.merchant_id,
                                      order_id=order_id)
    return json_response(view)


@router.post("/orders/{order_id}/close", summary="Close an unpaid order")
async def close_order(order_id: str, request: Request) -> Response:
    cred, _ = await _auth(request)
    view = await payments.close_order(deps_of(request), merchant_id=cred.merchant_id,
                                      order_id=order_id)
    return json_response(view)


@router.post("/orders/{order_id}/refunds", summary="Refund (partial, repeated)")
async def create_refund(order_id: str, request: Request) -> Response:
    cred, raw = await _auth(request)
    body = parse_body(RefundBody, raw)
    view = await refunds.create_refund(deps_of(request), merchant_id=cred.merchant_id,
                                       order_id=order_id, out_refund_no=body.out_refund_no,
                                       amount=Money.of(body.amount), reason=body.reason,
                                       notify_url=body.notify_url)
    return json_response(view)


@router.get("/refunds/by-out-refund-no/{out_refund_no}", summary="Query a refund by number")
async def query_refund_by_no(out_refund_no: str, request: Request) -> Response:
    cred, _ = await _auth(request)
    return json_response(await refunds.get_refund(deps_of(request).db, merchant_id=cred.merchant_id,
                                                  out_refund_no=out_refund_no))


@router.get("/refunds/{refund_id}", summary="Query a refund")
async def query_refund(refund_id: str, request: Request) -> Response:
    cred, _ = await _auth(request)
    return json_response(await refunds.get_refund(deps_of(request).db, merchant_id=cred.merchant_id,
                                                  refund_id=refund_id))


@router.post("/orders/{order_id}/notify", summary="Send the order's notifications again")
async def resend_notifications(order_id: str, request: Request) -> Response:
    cred, _ = await _auth(request)
    deps = deps_of(request)
    views = await notifications.resend(deps.db, merchant_id=cred.merchant_id, order_id=order_id)
    deps.db.committed.notify()  # the notification loop: no event was published
    return json_response({"notifications": views})


@router.get("/orders/{order_id}/notifications", summary="Notification attempts for an order")
async def list_notifications(order_id: str, request: Request) -> Response:
    cred, _ = await _auth(request)
    deps = deps_of(request)
    await payments.get_order(deps.db, merchant_id=cred.merchant_id, order_id=order_id)
    data: list[dict[str, Any]] = await notifications.list_for_order(
        deps.db, merchant_id=cred.merchant_id, order_id=order_id)
    return json_response({"notifications": data})
