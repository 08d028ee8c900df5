"""Closing an unpaid order, on the merchant's request or at expiry.

A close is a conversation with the channel, never a local state change: we close here only
what the channel has closed too (or never had). An order the payer can still pay at the
channel is never reported CLOSED to the merchant.
"""

from __future__ import annotations

import structlog

from fulema.channels.base import ChannelError, ChannelUnavailable, TradeResult, TradeState
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.vocab import WayCode
from fulema.payments.deps import Deps
from fulema.payments.domain import OPEN_STATUSES, PAID_STATUSES, OrderStatus
from fulema.payments.models import Order
from fulema.payments.orders_apply import apply_trade_result, ask_channel
from fulema.payments.orders_query import get_order
from fulema.payments.schemas import OrderOut
from fulema.payments.views import order_view

log = structlog.get_logger(__name__)


async def close_order(deps: Deps, *, merchant_id: str, order_id: str,
                      reason: str = "merchant") -> OrderOut:
    order = await get_order(deps.db, merchant_id=merchant_id, order_id=order_id)
    if order.status == OrderStatus.CLOSED:
        return order_view(order)
    if order.status not in OPEN_STATUSES:
        raise FulemaError(ErrorCode.ORDER_ALREADY_FINAL, f"the order is {order.status}")
    channel = deps.channels.get(order.channel)
    if order.status == OrderStatus.PAYING or order.next_query_at is not None:
        try:
            sub = order.channel_sub_merchant_id
            if order.way_code == WayCode.BARCODE.value:
                await channel.cancel(order.id, sub_merchant_id=sub)
            else:
                await channel.close(order.id, sub_merchant_id=sub)
        except ChannelError as exc:
            # The channel refused (already paid, busy, ...): its own state decides.
            view = await _after_refused_close(deps, order, exc)
            if view is not None:
                return view
        except ChannelUnavailable as exc:
            raise FulemaError(ErrorCode.CHANNEL_UNAVAILABLE) from exc
    closed = TradeResult(state=TradeState.CLOSED)
    view = await apply_trade_result(deps, order_id=order.id, result=closed, source=reason)
    if view.status != OrderStatus.CLOSED:
        raise FulemaError(ErrorCode.ORDER_ALREADY_FINAL, f"the order is {view.status}")
    return view


async def _after_refused_close(deps: Deps, order: Order, exc: ChannelError) -> OrderOut | None:
    """The order's view when the channel's state settles it, None when it may be closed
    here (the channel never had it); refuses while the channel still has it open."""
    result = await ask_channel(deps, order.channel, order.id, order.channel_sub_merchant_id)
    view = await apply_trade_result(deps, order_id=order.id, result=result, source="query")
    if view.status in PAID_STATUSES:
        raise FulemaError(ErrorCode.ORDER_ALREADY_FINAL, "the payer paid before the close")
    if view.status not in OPEN_STATUSES:
        return view
    if result.state == TradeState.NOT_FOUND:
        return None
    log.warning("order.close_refused", order_id=order.id, channel=order.channel,
                channel_code=exc.code, channel_state=result.state.value)
    raise FulemaError(ErrorCode.CHANNEL_ERROR,
                      f"{order.channel} refused to close the order ({exc.code}: {exc.message}); "
                      "it stays open and will be closed when the channel allows") from exc
