"""Handing a recorded order to its channel: a payment the payer completes in their app
(`channel_create`) or a payer code the merchant scanned (`barcode_pay`).

Runs after the order's INSERT has committed and outside any transaction (a channel call may
take seconds). What the channel answers is applied through the one state path: the Core
`ACCEPT` for the hot CREATED -> PAYING step, `apply_trade_result` for anything else.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from fulema.channels.base import (
    BarcodePayRequest,
    ChannelError,
    ChannelUnavailable,
    CreatePaymentRequest,
    CreatePaymentResult,
    SubMerchantRefused,
    TradeResult,
    TradeState,
)
from fulema.channels.breaker import CircuitOpen
from fulema.core.clock import clock
from fulema.core.db import mark_published, retry_on_conflict, table_of
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import OUTBOX_TABLE, outbox_row, publish_now
from fulema.core.vocab import WayCode
from fulema.onboarding import service as onboarding
from fulema.payments.deps import Deps
from fulema.payments.domain import OrderStatus
from fulema.payments.models import Order, OrderEvent
from fulema.payments.orders_apply import apply_trade_result
from fulema.payments.orders_sql import accept_and_log
from fulema.payments.orders_state import core_move, event_row, move_params
from fulema.payments.schemas import OrderOut
from fulema.payments.views import order_payload, order_view

ORDER_EVENTS = table_of(OrderEvent)


async def _merchant_app(deps: Deps, order: Order) -> str | None:
    """The merchant's own app at the channel (WeChat sub_appid) for an order its own app made
    (JSAPI / APP asked for by the merchant, in the partner form); None for a plate payment
    through our cashier, whose payer id is under our app."""
    if not order.channel_sub_merchant_id or order.way_code not in (WayCode.JSAPI, WayCode.APP):
        return None
    return await onboarding.merchant_app_id(deps.db, merchant_id=order.merchant_id,
                                            channel=order.channel)


async def channel_create(deps: Deps, order: Order, *, strong_auth: bool = False) -> OrderOut:
    channel = deps.channels.get(order.channel)
    way = WayCode(order.way_code)
    if way == WayCode.QR_STATIC:
        # How a plate payment is made is the channel's to say (in-app with the payer's id,
        # its app's QR link, or the plate as it is): see `Channel.static_code_way`.
        way = channel.static_code_way(order.payer_id)
    req = CreatePaymentRequest(
        order_id=order.id, amount=order.payable, subject=order.subject, way_code=way,
        notify_url=deps.settings.callback_url(order.channel),
        expire_at=order.expire_at, payer_id=order.payer_id, client_ip=order.client_ip,
        return_url=f"{deps.settings.public_base_url}/pay/result/{order.id}",
        strong_auth=strong_auth, sub_merchant_id=order.channel_sub_merchant_id,
        sub_app_id=await _merchant_app(deps, order))
    try:
        result = await channel.create(req)
    except ChannelError as exc:
        failed = TradeResult(state=TradeState.FAILED, error_code=exc.code,
                             error_message=exc.message)
        await apply_trade_result(deps, order_id=order.id, result=failed, source="create")
        if isinstance(exc, SubMerchantRefused):  # not this order: the merchant at the channel
            raise FulemaError(ErrorCode.SUB_MERCHANT_REFUSED,
                              f"{order.channel} refused the merchant's registration there "
                              f"({exc.code}: {exc.message})") from exc
        raise FulemaError(ErrorCode.CHANNEL_ERROR, f"{exc.code}: {exc.message}") from exc
    except ChannelUnavailable as exc:
        # The channel may or may not have the order; it stays CREATED and a retry of the same
        # request (or the expiry job) sorts it out. Nothing is lost, nothing is charged.
        raise FulemaError(ErrorCode.CHANNEL_UNAVAILABLE, str(exc) or None) from exc
    trade_no = result.channel_trade_no or order.channel_trade_no

    async def accept() -> OrderOut:
        # One conditional UPDATE instead of SELECT ... FOR UPDATE + UPDATE: it only moves an
        # order that is still CREATED, so a callback that already paid it is never undone.
        now = clock.now()
        db = deps.db
        if db.dialect == "postgresql" and not db.notify_other_processes:
            # One statement, so no BEGIN/COMMIT around it; wakes this process's dispatcher as
            # a commit that published would. (With NOTIFY for other processes it takes the
            # transaction below: the NOTIFY must commit with the event.)
            async with db.one_statement() as conn:
                view = await accept_in_one(conn, order, result, trade_no=trade_no, now=now)
            if view is not None:
                db.committed.notify()
                return view
            async with db.transaction() as s:  # another writer moved it first
                return await _as_it_is(s, order.id)
        async with db.transaction() as s:
            if db.dialect == "postgresql":
                view = await accept_in_one(s, order, result, trade_no=trade_no, now=now)
                if view is not None:
                    mark_published(s)  # as publish_now would: the commit wakes the consumers
                    return view
            elif await core_move(s, order_id=order.id, current=OrderStatus.CREATED,
                                 target=OrderStatus.PAYING, kind="CHANNEL_ACCEPTED", at=now,
                                 code_url=result.code_url, h5_url=result.h5_url,
                                 pay_params=result.pay_params, trade_no=trade_no):
                view = _paying(order, result, trade_no=trade_no, now=now)
                await publish_now(s, "payment.paying", order_payload(order, view))
                return view
            return await _as_it_is(s, order.id)

    return await retry_on_conflict(accept)


async def _as_it_is(s: AsyncSession, order_id: str) -> OrderOut:
    row = await s.get(Order, order_id)
    assert row is not None
    return order_view(row)


def _paying(order: Order, result: CreatePaymentResult, *, trade_no: str | None,
            now: datetime) -> OrderOut:
    """The carrier `order` as the accept step leaves it (PAYING, the channel's links), and its
    view."""
    order.status, order.code_url, order.h5_url = (
        OrderStatus.PAYING.value, result.code_url, result.h5_url)
    order.pay_params, order.channel_trade_no = result.pay_params, trade_no
    order.next_query_at, order.updated_at = None, now
    return order_view(order)


async def accept_in_one(s: AsyncSession | AsyncConnection, order: Order,
                         result: CreatePaymentResult, *, trade_no: str | None,
                         now: datetime) -> OrderOut | None:
    """The accept step on PostgreSQL: the conditional UPDATE, its order event and the
    `payment.paying` outbox row in one statement (`orders_sql.accept_and_log`). The event's
    payload is the view of the order as moved, so it is built first; if another writer moved
    the order before us nothing is written, the carrier is put back and None answered."""
    move = move_params(order_id=order.id, current=OrderStatus.CREATED, target=OrderStatus.PAYING,
                       now=now, code_url=result.code_url, h5_url=result.h5_url,
                       pay_params=result.pay_params, trade_no=trade_no)
    before = (order.status, order.code_url, order.h5_url, order.pay_params,
              order.channel_trade_no, order.next_query_at, order.updated_at)
    view = _paying(order, result, trade_no=trade_no, now=now)
    event = event_row(order_id=order.id, kind="CHANNEL_ACCEPTED", before=OrderStatus.CREATED,
                      after=OrderStatus.PAYING, detail={}, at=now)
    stmt, params = accept_and_log(move, event_table=ORDER_EVENTS, event=event,
                                  outbox_table=OUTBOX_TABLE,
                                  outbox=outbox_row("payment.paying", order_payload(order, view)))
    moved = await s.execute(stmt, params)
    if moved.rowcount == 1:  # type: ignore[attr-defined]
        return view
    (order.status, order.code_url, order.h5_url, order.pay_params,
     order.channel_trade_no, order.next_query_at, order.updated_at) = before
    return None


async def barcode_pay(deps: Deps, order: Order, auth_code: str, *,
                      strong_auth: bool = False) -> OrderOut:
    channel = deps.channels.get(order.channel)
    req = BarcodePayRequest(order_id=order.id, amount=order.payable, subject=order.subject,
                            auth_code=auth_code, client_ip=order.client_ip,
                            strong_auth=strong_auth,
                            sub_merchant_id=order.channel_sub_merchant_id)
    try:
        result = await channel.barcode_pay(req)
    except SubMerchantRefused as exc:
        # Nothing was charged (the channel refused before the payer's code was used): the
        # order FAILS and the merchant is told why, as for a created order.
        failed = TradeResult(state=TradeState.FAILED, error_code=exc.code,
                             error_message=exc.message)
        await apply_trade_result(deps, order_id=order.id, result=failed, source="barcode_pay")
        raise FulemaError(ErrorCode.SUB_MERCHANT_REFUSED,
                          f"{order.channel} refused the merchant's registration there "
                          f"({exc.code}: {exc.message})") from exc
    except ChannelError as exc:
        result = TradeResult(state=TradeState.FAILED, error_code=exc.code,
                             error_message=exc.message)
    except CircuitOpen as exc:
        # Nothing was sent (the breaker refused before the call): the payer was not charged,
        # so the cashier is told at once instead of after a timeout.
        failed = TradeResult(state=TradeState.FAILED, error_code=ErrorCode.CHANNEL_UNAVAILABLE,
                             error_message=f"{order.channel} is unavailable")
        await apply_trade_result(deps, order_id=order.id, result=failed, source="breaker")
        raise FulemaError(ErrorCode.CHANNEL_UNAVAILABLE,
                          f"{order.channel} is unavailable; use another payment app") from exc
    except ChannelUnavailable:
        result = TradeResult(state=TradeState.UNKNOWN)
    if result.state in (TradeState.UNKNOWN, TradeState.NOT_FOUND):
        # The payer may have been charged: never call it failed; poll, then cancel.
        result = TradeResult(state=TradeState.PAYING, raw=result.raw)
    return await apply_trade_result(deps, order_id=order.id, result=result, source="barcode_pay")
