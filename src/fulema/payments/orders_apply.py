"""Applying what a channel says of an order (its answer, a callback or a query) to the order.

Every source ends here, under the order's row lock, so duplicate callbacks, a query racing a
callback or a stale PAYING after SUCCESS all end in the same single state, and each change and
its `payment.*` event (and the merchant's notification) commit together.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from fulema.channels.base import ChannelError, ChannelUnavailable, TradeResult, TradeState
from fulema.core import logctx
from fulema.core.clock import clock
from fulema.core.db import retry_on_conflict
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import publish
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.payments import notifications
from fulema.payments.callback_routing import SubMerchantCheck
from fulema.payments.deps import Deps
from fulema.payments.domain import OPEN_STATUSES, PAID_STATUSES, OrderStatus, allowed
from fulema.payments.models import Order
from fulema.payments.orders_state import record
from fulema.payments.schemas import OrderOut
from fulema.payments.views import order_payload, order_view

log = structlog.get_logger(__name__)

_TARGET: dict[TradeState, OrderStatus | None] = {
    TradeState.PAYING: OrderStatus.PAYING,
    TradeState.SUCCESS: OrderStatus.SUCCESS,
    TradeState.FAILED: OrderStatus.FAILED,
    TradeState.CLOSED: OrderStatus.CLOSED,
    TradeState.NOT_FOUND: None,
    TradeState.UNKNOWN: None,
}
_TOPIC = {OrderStatus.PAYING: "payment.paying", OrderStatus.FAILED: "payment.failed",
          OrderStatus.CLOSED: "payment.closed"}


async def apply_trade_result(deps: Deps, *, order_id: str, result: TradeResult,
                             source: str, check: SubMerchantCheck | None = None) -> OrderOut:
    """Apply what the channel says to the order, idempotently. `check`: a callback's
    sub-merchant check, run on the locked order before anything is written."""
    return await retry_on_conflict(
        lambda: _apply_trade_result(deps, order_id, result, source, check))


async def _apply_trade_result(deps: Deps, order_id: str, result: TradeResult,
                              source: str, check: SubMerchantCheck | None) -> OrderOut:
    async with deps.db.transaction() as s:
        order = await s.get(Order, order_id, with_for_update=True)
        if order is None:
            raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
        # a callback or a poll: from here its log lines name the order
        logctx.bind(order_id=order.id, out_trade_no=order.out_trade_no,
                    merchant_id=order.merchant_id)
        if check is not None:
            check(order.channel_sub_merchant_id)
        target = _TARGET[result.state]
        current = OrderStatus(order.status)
        detail = {"source": source, "state": result.state.value}
        if target == OrderStatus.SUCCESS:
            # Checked before anything else, a paid order included: a success that does not
            # say it is for this order's amount in CNY is never applied, and never
            # acknowledged as a harmless duplicate, whichever channel or source it came from.
            problem = success_problem(result, order.payable)
            if problem is not None:
                log.error("payment.success_refused", order_id=order.id, source=source,
                          problem=problem, expected=order.payable.fen,
                          got=result.amount.fen if result.amount is not None else None,
                          currency=result.currency)
                raise FulemaError(ErrorCode.CALLBACK_INVALID, f"the channel's success {problem}")
        if target is None or current == target or (
                target == OrderStatus.SUCCESS and current in PAID_STATUSES):
            if current == OrderStatus.PAYING and order.way_code == WayCode.BARCODE.value:
                order.next_query_at = clock.now() + timedelta(
                    seconds=deps.settings.userpaying_poll_seconds)
            if source == "callback" and target is not None:
                log.info("callback.duplicate", order_id=order.id, state=result.state.value,
                         status=current.value)
            return order_view(order)
        if target == OrderStatus.SUCCESS:
            if current not in OPEN_STATUSES:
                # Paid at the channel after we closed or failed it: money moved, so it must
                # not be dropped. Operations get an event to refund or reopen by hand.
                record(s, order, "PAID_AFTER_CLOSE", detail=detail)
                view = order_view(order)
                publish(s, "payment.paid_after_close", order_payload(order, view))
                return view
            order.paid_at = result.paid_at or clock.now()
            order.channel_trade_no = result.channel_trade_no or order.channel_trade_no
            # The payer the order was made for (and its discounts, coupon and points bound to)
            # stays; a channel's payer id fills in only where none was given.
            order.payer_id = order.payer_id or result.payer_id
        if target == OrderStatus.FAILED:
            order.failure_code = result.error_code
            order.failure_message = (result.error_message or "")[:256] or None
        if not allowed(current, target):
            record(s, order, "IGNORED_RESULT", detail=detail)
            return order_view(order)
        poll = timedelta(seconds=deps.settings.userpaying_poll_seconds)
        order.next_query_at = clock.now() + poll if target == OrderStatus.PAYING else None
        record(s, order, f"CHANNEL_{result.state.value}", to=target, detail=detail)
        view = order_view(order)
        payload = order_payload(order, view)
        if target == OrderStatus.SUCCESS:
            # What the channel said of its fee and settlement (typed in TradeResult) rides
            # with the event for the ledger and settlement; not part of the merchant's view.
            event_id = publish(s, "payment.succeeded", {
                **payload, "fee_waived": result.fee_waived,
                "same_day_settlement": result.same_day_settlement})
            await notifications.stage_if_wanted(s, deps.webhook_switch, event_id=event_id,
                                                topic="payment.succeeded", payload=payload)
        else:
            publish(s, _TOPIC[target], payload)
        return view


def success_problem(result: TradeResult, expected: Money) -> str | None:
    """Why a channel's SUCCESS cannot be applied to an order of `expected`, or None."""
    if result.amount is None:
        return "carries no amount"
    if result.currency is not None and result.currency.upper() != "CNY":
        return f"is in {result.currency[:8]}, not CNY"
    if result.amount != expected:
        return "is for another amount than the order's"
    return None


async def ask_channel(deps: Deps, channel_name: str, order_id: str,
                      sub_merchant_id: str | None = None) -> TradeResult:
    """What the channel says of the order (asked in the form it was created in: under its
    sub-merchant id when it has one); UNKNOWN when it cannot say (never FAILED)."""
    try:
        return await deps.channels.get(channel_name).query(order_id,
                                                           sub_merchant_id=sub_merchant_id)
    except (ChannelUnavailable, ChannelError):
        return TradeResult(state=TradeState.UNKNOWN)


async def sync_with_channel(deps: Deps, *, order_id: str) -> OrderOut:
    """Ask the channel about the order and apply its answer."""
    async with deps.db.transaction() as s:
        order = await s.get(Order, order_id)
        if order is None:
            raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
        channel_name, sub = order.channel, order.channel_sub_merchant_id
    result = await ask_channel(deps, channel_name, order_id, sub)
    return await apply_trade_result(deps, order_id=order_id, result=result, source="query")
