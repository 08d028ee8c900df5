"""Order use cases: create (idempotent per merchant), query, close, and applying what a channel
says (response, callback or query) to an order.

Channel calls never run inside a database transaction: a transaction holds row locks for
milliseconds, a channel call may take seconds, and on SQLite the in-process sandbox's callback
would otherwise wait on our own write lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.channels.base import (
    BarcodePayRequest,
    ChannelError,
    ChannelUnavailable,
    CreatePaymentRequest,
    TradeResult,
    TradeState,
)
from fulema.channels.breaker import CircuitOpen
from fulema.channels.detect import detect_payer_code
from fulema.channels.registry import ChannelRegistry
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database, is_retryable, retry_on_conflict, table_of
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import publish, publish_now
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.gateway import service as gateway
from fulema.merchants import service as merchants
from fulema.payments import notifications
from fulema.payments.domain import (
    OPEN_STATUSES,
    ORDER_TRANSITIONS,
    PAID_STATUSES,
    OrderStatus,
    check_amount,
    check_order_transition,
)
from fulema.payments.models import Order, OrderEvent
from fulema.risk import service as risk

log = structlog.get_logger(__name__)

IN_APP_CHANNELS = frozenset({ChannelName.WECHAT.value, ChannelName.ALIPAY.value})
# How long one process holds the right to call the channel for a new order.
CHANNEL_CLAIM_SECONDS = 30


@dataclass(frozen=True)
class Deps:
    db: Database
    settings: Settings
    channels: ChannelRegistry


@dataclass(frozen=True)
class NewOrder:
    out_trade_no: str
    amount: Money
    subject: str
    way_code: WayCode
    channel: ChannelName | None = None
    auth_code: str | None = None
    payer_id: str | None = None
    store_id: str | None = None
    notify_url: str | None = None
    attach: str | None = None
    expire_seconds: int | None = None
    client_ip: str = "127.0.0.1"

    def request_hash(self) -> str:
        """What makes two requests with one out_trade_no 'the same request'."""
        fields = {k: v for k, v in self.__dict__.items() if k != "client_ip"}
        fields["amount"] = self.amount.fen
        return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse_way_code(value: str) -> WayCode:
    try:
        return WayCode(value)
    except ValueError as exc:
        raise FulemaError(ErrorCode.UNKNOWN_WAY_CODE,
                          f"way_code must be one of {', '.join(w.value for w in WayCode)}") from exc


def mask_code(code: str) -> str:
    return code[:4] + "*" * max(0, len(code) - 8) + code[-4:]


def order_view(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.id, "out_trade_no": order.out_trade_no,
        "merchant_id": order.merchant_id, "status": order.status, "amount": order.amount.fen,
        "refunded_amount": order.refunded_amount.fen, "channel": order.channel,
        "way_code": order.way_code, "subject": order.subject, "code_url": order.code_url,
        "h5_url": order.h5_url, "pay_params": order.pay_params,
        "channel_trade_no": order.channel_trade_no, "payer_id": order.payer_id,
        "attach": order.attach, "failure_code": order.failure_code,
        "failure_message": order.failure_message, "expire_at": order.expire_at,
        "paid_at": order.paid_at, "created_at": order.created_at,
    }


def _event_payload(order: Order) -> dict[str, Any]:
    view = order_view(order)
    for key in ("expire_at", "paid_at", "created_at"):
        value = view[key]
        view[key] = value.isoformat() if isinstance(value, datetime) else value
    view["app_id"] = order.app_id
    view["notify_url"] = order.notify_url
    view["store_id"] = order.store_id
    return view


def record(session: AsyncSession, order: Order, kind: str, *, to: OrderStatus | None = None,
           detail: dict[str, Any] | None = None) -> None:
    """Append to the order's event log (and move its state when `to` is given)."""
    now = clock.now()
    before = order.status
    if to is not None and to != before:
        check_order_transition(OrderStatus(before), to)
        order.status = to.value
    order.updated_at = now
    session.add(OrderEvent(id=new_id("oev"), order_id=order.id, kind=kind, from_status=before,
                           to_status=order.status, detail=detail or {}, at=now))


# ---------------------------------------------------------------------------- create

# The hot path's statements are built once, values bound per call: a statement built per
# request with `.values(...)` makes SQLAlchemy derive a new cache key from every value
# (it showed in the profile); these compile once and are reused from its cache.
_INSERT_ORDER = insert(table_of(Order))
_INSERT_EVENT = insert(table_of(OrderEvent))
_orders = table_of(Order).c
_ACCEPT = (
    update(table_of(Order))
    .where(_orders.id == bindparam("b_id"), _orders.status == bindparam("b_from"))
    .values(status=bindparam("b_to"), code_url=bindparam("b_code_url"),
            h5_url=bindparam("b_h5_url"), pay_params=bindparam("b_pay_params"),
            channel_trade_no=bindparam("b_trade_no"), next_query_at=None,
            updated_at=bindparam("b_now")))

async def create_order(deps: Deps, *, merchant_id: str, app_id: str, new: NewOrder,
                       default_notify_url: str | None = None,
                       nonce: str | None = None) -> dict[str, Any]:
    """Record the order and hand it to the channel.

    The hot path is two short transactions around the channel call: (1) the merchant's status,
    the request's nonce, the order and its first event; (2) the channel's answer. `nonce`, when
    given, is the signed request's nonce: recording it here saves a transaction per order.
    """
    settings = deps.settings
    check_amount(new.amount, max_fen=settings.max_order_fen)
    channel = _resolve_channel(new, settings)
    deps.channels.get(channel)  # refuses a channel that is not enabled
    if new.store_id:
        await merchants.get_store(deps.db, merchant_id=merchant_id, store_id=new.store_id)
    decision = await risk.decide(deps.db, merchant_id=merchant_id, amount=new.amount,
                                 channel=channel.value, way_code=new.way_code.value,
                                 payer_id=new.payer_id)
    if not decision.allow:
        raise FulemaError(ErrorCode.RISK_REJECTED, decision.reason or None)

    order, mine = await _insert_or_get(deps, merchant_id=merchant_id, app_id=app_id, new=new,
                                       channel=channel, nonce=nonce,
                                       notify_url=new.notify_url or default_notify_url)
    if mine or (order.status == OrderStatus.CREATED
                and await _claim_channel_step(deps.db, order.id)):
        if new.way_code == WayCode.BARCODE:
            assert new.auth_code is not None
            return await _barcode_pay(deps, order, new.auth_code)
        return await _channel_create(deps, order)
    return order_view(order)


def _resolve_channel(new: NewOrder, settings: Settings) -> ChannelName:
    if new.way_code == WayCode.BARCODE:
        if not new.auth_code:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, "auth_code is required for BARCODE")
        detected = detect_payer_code(new.auth_code, settings)
        if new.channel is not None and new.channel != detected:
            raise FulemaError(ErrorCode.UNRECOGNISED_PAYER_CODE,
                              f"the payer code belongs to {detected}, not {new.channel}")
        return detected
    if new.channel is None:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"channel is required for {new.way_code}")
    if new.way_code == WayCode.JSAPI and not new.payer_id:
        raise FulemaError(ErrorCode.PAYER_ID_REQUIRED)
    return new.channel


async def _insert_or_get(deps: Deps, *, merchant_id: str, app_id: str, new: NewOrder,
                         channel: ChannelName, notify_url: str | None, nonce: str | None
                         ) -> tuple[Order, bool]:
    """The order for this request and whether this request created it (and so holds the
    right to call the channel). Optimistic: insert first, read only on a conflict."""
    db = deps.db
    digest = new.request_hash()
    now = clock.now()
    expire = new.expire_seconds or deps.settings.order_expire_seconds
    values: dict[str, Any] = dict(
        id=new_id("ord"), merchant_id=merchant_id, app_id=app_id, store_id=new.store_id,
        out_trade_no=new.out_trade_no, request_hash=digest, amount=new.amount,
        subject=new.subject, way_code=new.way_code.value, channel=channel.value,
        status=OrderStatus.CREATED.value, payer_id=new.payer_id,
        payer_code_masked=mask_code(new.auth_code) if new.auth_code else None,
        notify_url=notify_url, attach=new.attach, client_ip=new.client_ip,
        channel_trade_no=None, code_url=None, h5_url=None, pay_params=None,
        failure_code=None, failure_message=None, paid_at=None,
        refunded_amount=Money.zero(), refund_pending_amount=Money.zero(),
        expire_at=now + timedelta(seconds=expire),
        next_query_at=now + timedelta(seconds=CHANNEL_CLAIM_SECONDS),  # the inserter's claim
        created_at=now, updated_at=now)
    try:
        async with db.transaction() as s:
            await merchants.check_can_pay_in(s, merchant_id=merchant_id)
            if nonce is not None:
                await gateway.insert_nonce(s, app_id=app_id, nonce=nonce)
            # Core INSERTs, not the ORM unit of work: the hot path's biggest CPU cost was
            # SQLAlchemy's flush machinery (docs/performance.md). The Order built below is a
            # plain carrier for the channel step and the answer; it never joins the session.
            await s.execute(_INSERT_ORDER, values)
            await s.execute(_INSERT_EVENT, dict(
                id=new_id("oev"), order_id=values["id"], kind="CREATED", from_status=None,
                to_status=OrderStatus.CREATED.value,
                detail={"amount": new.amount.fen, "channel": channel.value}, at=now))
        order = Order(**values)
        return order, True
    except (IntegrityError, DBAPIError) as exc:
        # A concurrent request with the same out_trade_no won the insert (InnoDB may report
        # that as a deadlock), or the nonce was replayed: tell the two apart.
        if not isinstance(exc, IntegrityError) and not is_retryable(exc):
            raise
    if nonce is not None:
        await gateway.remember_nonce(db, app_id=app_id, nonce=nonce)  # NONCE_REPLAYED
    existing = await _find_by_out_trade_no(db, merchant_id, new.out_trade_no)
    if existing is None:
        raise FulemaError(ErrorCode.INTERNAL_ERROR, "the order could not be recorded; retry")
    if existing.request_hash != digest:
        raise FulemaError(ErrorCode.DUPLICATE_OUT_TRADE_NO,
                          f"out_trade_no {new.out_trade_no} was used with other parameters")
    return existing, False


async def _find_by_out_trade_no(db: Database, merchant_id: str, out_trade_no: str) -> Order | None:
    async with db.transaction() as s:
        return (await s.scalars(select(Order).where(
            Order.merchant_id == merchant_id, Order.out_trade_no == out_trade_no))).first()


async def _claim_channel_step(db: Database, order_id: str) -> bool:
    """Only one request calls the channel for a new order, however many arrive at once."""
    now = clock.now()
    try:
        async with db.transaction() as s:
            result = await s.execute(
                update(Order)
                .where(Order.id == order_id, Order.status == OrderStatus.CREATED.value,
                       or_(Order.next_query_at.is_(None), Order.next_query_at < now))
                .values(next_query_at=now + timedelta(seconds=CHANNEL_CLAIM_SECONDS)))
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]
    except DBAPIError as exc:
        if is_retryable(exc):
            return False  # another request holds the row: it makes the channel call
        raise


async def _channel_create(deps: Deps, order: Order) -> dict[str, Any]:
    channel = deps.channels.get(order.channel)
    way = WayCode(order.way_code)
    if way == WayCode.QR_STATIC and order.channel in IN_APP_CHANNELS:
        # The plate's cashier runs inside the payer's app: with the payer's id (from the app's
        # silent authorisation) it is an in-app (JSAPI) payment, without it the app's QR link.
        # The other channels take QR_STATIC as it is (their app confirms the payment itself).
        way = WayCode.JSAPI if order.payer_id else WayCode.QR_DYNAMIC
    req = CreatePaymentRequest(
        order_id=order.id, amount=order.amount, subject=order.subject, way_code=way,
        notify_url=deps.settings.callback_url(order.channel),
        expire_at=order.expire_at, payer_id=order.payer_id, client_ip=order.client_ip,
        return_url=f"{deps.settings.public_base_url}/pay/result/{order.id}")
    try:
        result = await channel.create(req)
    except ChannelError as exc:
        failed = TradeResult(state=TradeState.FAILED, error_code=exc.code,
                             error_message=exc.message)
        await apply_trade_result(deps, order_id=order.id, result=failed, source="create")
        raise FulemaError(ErrorCode.CHANNEL_ERROR, f"{exc.code}: {exc.message}") from exc
    except ChannelUnavailable as exc:
        # The channel may or may not have the order; it stays CREATED and a retry of the same
        # request (or the expiry job) sorts it out. Nothing is lost, nothing is charged.
        raise FulemaError(ErrorCode.CHANNEL_UNAVAILABLE, str(exc) or None) from exc
    async def accept() -> dict[str, Any]:
        # One conditional UPDATE instead of SELECT ... FOR UPDATE + UPDATE: it only moves an
        # order that is still CREATED, so a callback that already paid it is never undone.
        now = clock.now()
        async with deps.db.transaction() as s:
            moved = await s.execute(_ACCEPT, dict(
                b_id=order.id, b_from=OrderStatus.CREATED.value, b_to=OrderStatus.PAYING.value,
                b_code_url=result.code_url, b_h5_url=result.h5_url,
                b_pay_params=result.pay_params,
                b_trade_no=result.channel_trade_no or order.channel_trade_no, b_now=now))
            if moved.rowcount == 1:  # type: ignore[attr-defined]
                await s.execute(_INSERT_EVENT, dict(
                    id=new_id("oev"), order_id=order.id, kind="CHANNEL_ACCEPTED",
                    from_status=OrderStatus.CREATED.value, to_status=OrderStatus.PAYING.value,
                    detail={}, at=now))
                order.status, order.code_url, order.h5_url = (
                    OrderStatus.PAYING.value, result.code_url, result.h5_url)
                order.pay_params = result.pay_params
                order.channel_trade_no = result.channel_trade_no or order.channel_trade_no
                order.next_query_at, order.updated_at = None, now
                await publish_now(s, "payment.paying", _event_payload(order))
                return order_view(order)
            row = await s.get(Order, order.id)
            assert row is not None
            return order_view(row)

    return await retry_on_conflict(accept)


async def _barcode_pay(deps: Deps, order: Order, auth_code: str) -> dict[str, Any]:
    channel = deps.channels.get(order.channel)
    req = BarcodePayRequest(order_id=order.id, amount=order.amount, subject=order.subject,
                            auth_code=auth_code, client_ip=order.client_ip)
    try:
        result = await channel.barcode_pay(req)
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


# ---------------------------------------------------------------------------- results

_TARGET: dict[TradeState, OrderStatus | None] = {
    TradeState.PAYING: OrderStatus.PAYING,
    TradeState.SUCCESS: OrderStatus.SUCCESS,
    TradeState.FAILED: OrderStatus.FAILED,
    TradeState.CLOSED: OrderStatus.CLOSED,
    TradeState.NOT_FOUND: None,
    TradeState.UNKNOWN: None,
}


async def apply_trade_result(deps: Deps, *, order_id: str, result: TradeResult,
                             source: str) -> dict[str, Any]:
    """Apply what the channel says to the order, idempotently. Duplicate callbacks, a query
    racing a callback, or a stale PAYING after SUCCESS all end in the same single state."""
    return await retry_on_conflict(lambda: _apply_trade_result(deps, order_id, result, source))


async def _apply_trade_result(deps: Deps, order_id: str, result: TradeResult,
                              source: str) -> dict[str, Any]:
    async with deps.db.transaction() as s:
        order = await s.get(Order, order_id, with_for_update=True)
        if order is None:
            raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
        target = _TARGET[result.state]
        current = OrderStatus(order.status)
        detail = {"source": source, "state": result.state.value}
        if (target == OrderStatus.SUCCESS and result.amount is not None
                and result.amount != order.amount):
            # Checked before anything else, a paid order included: a success for another
            # amount is never applied, and never acknowledged as a harmless duplicate.
            log.error("payment.amount_mismatch", order_id=order.id, source=source,
                      expected=order.amount.fen, got=result.amount.fen)
            raise FulemaError(ErrorCode.CALLBACK_INVALID,
                              "the channel's amount differs from the order's")
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
                publish(s, "payment.paid_after_close", _event_payload(order))
                return order_view(order)
            order.paid_at = result.paid_at or clock.now()
            order.channel_trade_no = result.channel_trade_no or order.channel_trade_no
            order.payer_id = result.payer_id or order.payer_id
        if target == OrderStatus.FAILED:
            order.failure_code = result.error_code
            order.failure_message = (result.error_message or "")[:256] or None
        if target not in _allowed_from(current):
            record(s, order, "IGNORED_RESULT", detail=detail)
            return order_view(order)
        poll = timedelta(seconds=deps.settings.userpaying_poll_seconds)
        order.next_query_at = clock.now() + poll if target == OrderStatus.PAYING else None
        record(s, order, f"CHANNEL_{result.state.value}", to=target, detail=detail)
        if target == OrderStatus.SUCCESS:
            payload = _event_payload(order)
            event_id = publish(s, "payment.succeeded", payload)
            notifications.stage(s, event_id=event_id, topic="payment.succeeded",
                                payload=payload)
        elif target == OrderStatus.PAYING:
            publish(s, "payment.paying", _event_payload(order))
        elif target == OrderStatus.FAILED:
            publish(s, "payment.failed", _event_payload(order))
        elif target == OrderStatus.CLOSED:
            publish(s, "payment.closed", _event_payload(order))
        return order_view(order)


def _allowed_from(current: OrderStatus) -> frozenset[OrderStatus]:
    return ORDER_TRANSITIONS[current]


# ---------------------------------------------------------------------------- query / close

async def get_order(db: Database, *, merchant_id: str, order_id: str | None = None,
                    out_trade_no: str | None = None) -> Order:
    async with db.transaction() as s:
        stmt = select(Order).where(Order.merchant_id == merchant_id)
        stmt = stmt.where(Order.id == order_id) if order_id else stmt.where(
            Order.out_trade_no == out_trade_no)
        order = (await s.scalars(stmt)).first()
    if order is None:
        raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
    return order


async def query_order(deps: Deps, *, merchant_id: str, order_id: str | None = None,
                      out_trade_no: str | None = None, refresh: bool = True) -> dict[str, Any]:
    """The order as we know it; an open order is first refreshed from the channel."""
    order = await get_order(deps.db, merchant_id=merchant_id, order_id=order_id,
                            out_trade_no=out_trade_no)
    if refresh and order.status == OrderStatus.PAYING:
        return await sync_with_channel(deps, order_id=order.id)
    return order_view(order)


async def order_by_id(deps: Deps, *, order_id: str) -> dict[str, Any]:
    """For the payer's result page (no merchant scope: the order id is unguessable)."""
    async with deps.db.transaction() as s:
        order = await s.get(Order, order_id)
    if order is None:
        raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
    if order.status == OrderStatus.PAYING:
        return await sync_with_channel(deps, order_id=order_id)
    return order_view(order)


async def sync_with_channel(deps: Deps, *, order_id: str) -> dict[str, Any]:
    async with deps.db.transaction() as s:
        order = await s.get(Order, order_id)
        assert order is not None
        channel_name = order.channel
    result = await _ask_channel(deps, channel_name, order_id)
    return await apply_trade_result(deps, order_id=order_id, result=result, source="query")


async def _ask_channel(deps: Deps, channel_name: str, order_id: str) -> TradeResult:
    """What the channel says of the order; UNKNOWN when it cannot say (never FAILED)."""
    try:
        return await deps.channels.get(channel_name).query(order_id)
    except (ChannelUnavailable, ChannelError):
        return TradeResult(state=TradeState.UNKNOWN)


async def close_order(deps: Deps, *, merchant_id: str, order_id: str,
                      reason: str = "merchant") -> dict[str, Any]:
    order = await get_order(deps.db, merchant_id=merchant_id, order_id=order_id)
    if order.status == OrderStatus.CLOSED:
        return order_view(order)
    if order.status not in OPEN_STATUSES:
        raise FulemaError(ErrorCode.ORDER_ALREADY_FINAL, f"the order is {order.status}")
    channel = deps.channels.get(order.channel)
    if order.status == OrderStatus.PAYING or order.next_query_at is not None:
        try:
            if order.way_code == WayCode.BARCODE.value:
                await channel.cancel(order.id)
            else:
                await channel.close(order.id)
        except ChannelError as exc:
            # The channel refused (already paid, busy, ...): its own state decides. We close
            # here only if the channel has closed it too or never had it; an order the payer
            # can still pay at the channel must never be reported CLOSED to the merchant.
            view = await _after_refused_close(deps, order, exc)
            if view is not None:
                return view
        except ChannelUnavailable as exc:
            raise FulemaError(ErrorCode.CHANNEL_UNAVAILABLE) from exc
    closed = TradeResult(state=TradeState.CLOSED)
    view = await apply_trade_result(deps, order_id=order.id, result=closed, source=reason)
    if view["status"] != OrderStatus.CLOSED:
        raise FulemaError(ErrorCode.ORDER_ALREADY_FINAL, f"the order is {view['status']}")
    return view


async def _after_refused_close(deps: Deps, order: Order, exc: ChannelError
                               ) -> dict[str, Any] | None:
    """The order's view when the channel's state settles it, None when it may be closed
    here (the channel never had it); refuses while the channel still has it open."""
    result = await _ask_channel(deps, order.channel, order.id)
    view = await apply_trade_result(deps, order_id=order.id, result=result, source="query")
    if view["status"] in {s.value for s in PAID_STATUSES}:
        raise FulemaError(ErrorCode.ORDER_ALREADY_FINAL, "the payer paid before the close")
    if view["status"] not in {s.value for s in OPEN_STATUSES}:
        return view
    if result.state == TradeState.NOT_FOUND:
        return None
    log.warning("order.close_refused", order_id=order.id, channel=order.channel,
                channel_code=exc.code, channel_state=result.state.value)
    raise FulemaError(ErrorCode.CHANNEL_ERROR,
                      f"{order.channel} refused to close the order ({exc.code}: {exc.message}); "
                      "it stays open and will be closed when the channel allows") from exc
