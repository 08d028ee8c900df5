"""Creating an order: check the request, record it (idempotent per merchant's out_trade_no),
then hand it to the channel (`orders_channel`).

Recording is one short unit of work: the merchant's check (its status and its registration's
sub-merchant id), the request's nonce, the order, its first event and risk's decision. On
PostgreSQL that is one statement in autocommit (`orders_sql.insert_all_if`: the check rides in
it and every INSERT is filtered on it); on MySQL-protocol databases one round trip of several
statements in a transaction (`orders_batch`); on SQLite one SELECT and one Core INSERT each.
A best-discount order reads the merchant first (its discount depends on the merchant's
category), then writes as above without the check. The channel is called
after it commits, never inside a transaction: a transaction holds row locks for milliseconds, a
channel call may take seconds. A transaction the database aborted for a lock conflict (an
InnoDB deadlock victim) is run again while no order has the out_trade_no.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from fulema.channels.detect import detect_payer_code
from fulema.core import logctx
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database, is_retryable, table_of
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.gateway import service as gateway
from fulema.marketing import service as marketing
from fulema.merchants import service as merchants
from fulema.onboarding import service as onboarding
from fulema.payments import orders_batch
from fulema.payments.deps import Deps
from fulema.payments.domain import OrderStatus, check_amount
from fulema.payments.models import Order, OrderEvent, payer_index
from fulema.payments.orders_channel import barcode_pay, channel_create
from fulema.payments.orders_sql import insert_all, insert_all_if
from fulema.payments.orders_state import INSERT_EVENT, INSERT_ORDER, event_row
from fulema.payments.schemas import OrderOut
from fulema.payments.views import order_view
from fulema.risk import service as risk

# How long one process holds the right to call the channel for a new order.
CHANNEL_CLAIM_SECONDS = 30
# Runs of the recording transaction when the database aborts it for a lock conflict and no
# order was recorded (`_insert_or_get`): bounded, so a hot lock ends in an error, not a loop.
RECORD_ATTEMPTS = 3


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
    quote: str | None = None  # a marketing quote (its discounts are reserved with the order)
    discount: str | None = None  # "best": the order chooses its discount itself
    discount_picks: marketing.Picks | None = None  # the payer's picks for "best"
    terminal_id: str | None = None  # for risk's velocity rules; not stored on the order
    device_id: str | None = None

    def request_hash(self) -> str:
        """What makes two requests with one out_trade_no 'the same request'. The fields added
        later (risk's, the best discount's) are left out when unset, so an order's hash is what
        it was before they existed."""
        fields = {k: v for k, v in self.__dict__.items()
                  if k != "client_ip" and not (k in _LATER and v is None)}
        fields["amount"] = self.amount.fen
        return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


_LATER = frozenset({"terminal_id", "device_id", "discount", "discount_picks"})
BEST = "best"


def check_discount_request(new: NewOrder, channel: ChannelName) -> marketing.Picks | None:
    """The picks of a best-discount order (None: the order does not ask for one), or
    DISCOUNT_REQUEST_INVALID / INVALID_POINTS / PAYER_REQUIRED_FOR_DISCOUNT; reads nothing."""
    if new.discount is None:
        if new.discount_picks is not None:
            raise FulemaError(ErrorCode.DISCOUNT_REQUEST_INVALID,
                              'discount_picks needs "discount": "best"')
        return None
    if new.discount != BEST:
        raise FulemaError(ErrorCode.DISCOUNT_REQUEST_INVALID, 'discount must be "best"')
    if new.quote is not None:
        raise FulemaError(ErrorCode.DISCOUNT_REQUEST_INVALID,
                          "discount and quote: one or the other (a quote already chose)")
    picks = new.discount_picks or marketing.Picks()
    picks.check(marketing.key_of(channel.value, new.payer_id))
    return picks


def mask_code(code: str) -> str:
    return code[:4] + "*" * max(0, len(code) - 8) + code[-4:]


async def create_order(deps: Deps, *, merchant_id: str, app_id: str, new: NewOrder,
                       default_notify_url: str | None = None,
                       nonce: str | None = None, shed_marketing: bool = False) -> OrderOut:
    """Record the order and hand it to the channel.

    The hot path is two short units of work around the channel call: (1) the merchant's
    status, the request's nonce, the order and its first event (one statement on PostgreSQL,
    one round trip on MySQL-protocol databases); (2) the channel's answer (one statement on
    PostgreSQL). `nonce`, when given, is the signed
    request's nonce: recording it here saves a transaction per order.
    `"discount": "best"` chooses and reserves the discount in (1) as well; `shed_marketing`
    (the request is degraded) makes such an order at the full amount, nothing looked up.
    """
    settings = deps.settings
    check_amount(new.amount, max_fen=settings.max_order_fen)
    channel = _resolve_channel(new, settings)
    deps.channels.check_way(channel, new.way_code)  # not enabled, or not this way: refused
    deps.settings.outbound_policy().check_notify_url(new.notify_url)
    picks = check_discount_request(new, channel)
    if shed_marketing:
        picks = None  # marketing is shed first under load: the full amount
    quote: marketing.Quote | None = None
    if new.quote is not None:
        try:
            quote = marketing.verify(settings, new.quote, merchant_id=merchant_id,
                                     amount=new.amount, channel=channel.value,
                                     payer_id=new.payer_id, store_id=new.store_id)
        except FulemaError as exc:
            # The same request again after its quote expired answers the order it made.
            existing = await _find_by_out_trade_no(deps.db, merchant_id, new.out_trade_no)
            if exc.code != ErrorCode.QUOTE_EXPIRED or existing is None or (
                    existing.request_hash != new.request_hash()):
                raise
            return order_view(existing)
    if new.store_id:
        await merchants.get_store(deps.db, merchant_id=merchant_id, store_id=new.store_id)
    decision = await risk.decide(
        deps.db, settings=settings, merchant_id=merchant_id, out_no=new.out_trade_no,
        amount=new.amount, channel=channel.value, way_code=new.way_code.value,
        payer_id=new.payer_id, store_id=new.store_id, terminal_id=new.terminal_id,
        device_id=new.device_id, client_ip=new.client_ip)
    if not decision.allow:  # risk has recorded the decision; nothing else is written
        raise FulemaError(ErrorCode.RISK_REJECTED, "refused by risk control",
                          reason_code=decision.reason)

    order, mine = await _insert_or_get(deps, merchant_id=merchant_id, app_id=app_id, new=new,
                                       channel=channel, nonce=nonce, quote=quote,
                                       notify_url=new.notify_url or default_notify_url,
                                       decision=decision, picks=picks)
    logctx.bind(order_id=order.id)  # the channel call's lines (and any failure's) name it
    if mine or (order.status == OrderStatus.CREATED
                and await _claim_channel_step(deps.db, order.id)):
        if new.way_code == WayCode.BARCODE:
            assert new.auth_code is not None
            return await barcode_pay(deps, order, new.auth_code, strong_auth=decision.challenge)
        return await channel_create(deps, order, strong_auth=decision.challenge)
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


def _priced(amount: Money, quote: marketing.Quote | None) -> dict[str, Any]:
    """The order's payable amount, discount and discount lines under `quote`."""
    if quote is None:
        return dict(payable_amount=amount, discount_amount=Money.zero(), discounts=None)
    return dict(payable_amount=quote.payable, discount_amount=quote.discount,
                discounts=[q.line.as_dict() for q in quote.lines])


def _created_detail(new: NewOrder, channel: ChannelName, values: dict[str, Any],
                    quote: marketing.Quote | None) -> dict[str, Any]:
    return {"amount": new.amount.fen, "channel": channel.value,
            **({"payable": values["payable_amount"].fen} if quote else {})}


# A best-discount order whose campaign was left out at the reservation (spent meanwhile): the
# order and its CREATED event (both written moments ago in this same transaction) get the price
# it was actually made at.
_o = table_of(Order).c
REPRICE_ORDER = (update(table_of(Order)).where(_o.id == bindparam("b_id"))
                 .values(payable_amount=bindparam("b_payable", type_=_o.payable_amount.type),
                         discount_amount=bindparam("b_discount", type_=_o.discount_amount.type),
                         discounts=bindparam("b_discounts", type_=_o.discounts.type)))
_e = table_of(OrderEvent).c
ORDERS, ORDER_EVENTS = table_of(Order), table_of(OrderEvent)
REPRICE_EVENT = (update(table_of(OrderEvent)).where(_e.id == bindparam("b_event"))
                 .values(detail=bindparam("b_detail", type_=_e.detail.type)))


async def _insert_or_get(deps: Deps, *, merchant_id: str, app_id: str, new: NewOrder,
                         channel: ChannelName, notify_url: str | None, nonce: str | None,
                         decision: risk.Decision, quote: marketing.Quote | None = None,
                         picks: marketing.Picks | None = None) -> tuple[Order, bool]:
    """The order for this request and whether this request created it (and so holds the
    right to call the channel). Optimistic: insert first, read only on a conflict.

    A quote's discounts are reserved (budget, coupon, points) in the same transaction, after
    the order's INSERT, so a create that fails reserves nothing and the budget row is locked
    only until commit. With `picks` (`"discount": "best"`) the discount is chosen in that
    transaction too (`marketing.best_in`: no second request, no signed quote); a campaign spent
    between the choice and the take is left out and the order repriced without it."""
    db = deps.db
    digest = new.request_hash()
    now = clock.now()
    expire = new.expire_seconds or deps.settings.order_expire_seconds
    values: dict[str, Any] = dict(
        id=new_id("ord"), merchant_id=merchant_id, app_id=app_id, store_id=new.store_id,
        out_trade_no=new.out_trade_no, request_hash=digest, amount=new.amount,
        subject=new.subject, way_code=new.way_code.value, channel=channel.value,
        channel_sub_merchant_id=None, status=OrderStatus.CREATED.value, payer_id=new.payer_id,
        payer_id_hash=payer_index(new.payer_id),
        payer_code_masked=mask_code(new.auth_code) if new.auth_code else None,
        notify_url=notify_url, attach=new.attach, client_ip=new.client_ip,
        channel_trade_no=None, code_url=None, h5_url=None, pay_params=None,
        failure_code=None, failure_message=None, paid_at=None,
        refunded_amount=Money.zero(), refund_pending_amount=Money.zero(),
        **_priced(new.amount, quote),
        expire_at=now + timedelta(seconds=expire),
        next_query_at=now + timedelta(seconds=CHANNEL_CLAIM_SECONDS),  # the inserter's claim
        created_at=now, updated_at=now)
    gated = deps.db.dialect == "postgresql" and picks is None
    batched = deps.db.multi_statements and picks is None
    lone_decision = risk.lone_decision_row(decision) is not None

    async def record_once() -> None:
        quote_now = quote
        values.update(_priced(new.amount, quote_now))  # a rerun starts from the request's price
        if gated and lone_decision and (quote_now is None or not quote_now.lines):
            # The whole unit of work is one statement (the check and every row): run it in
            # autocommit, so no BEGIN and COMMIT round trips either.
            async with db.one_statement() as conn:
                await _record_checked(conn, deps, app_id=app_id, nonce=nonce, order=values,
                                      event=_created(quote_now), decision=decision)
            return
        async with db.transaction() as s:
            if gated:
                event = _created(quote_now)
                await _record_checked(s, deps, app_id=app_id, nonce=nonce, order=values,
                                      event=event, decision=decision)
            elif batched:
                event = _created(quote_now)
                await _record_batched(s, deps, app_id=app_id, nonce=nonce, order=values,
                                      event=event, decision=decision)
            else:
                # The merchant may take payments and, onboarding on, is registered (ACTIVE)
                # at the channel; either way an ACTIVE registration's sub-merchant id sends
                # the order in the partner form. One SELECT for both (check_pay_in).
                merchant, values["channel_sub_merchant_id"] = await onboarding.check_pay_in(
                    s, deps.settings, merchant_id=merchant_id, channel=channel.value)
                if picks is not None:
                    quote_now, _ = await marketing.best_in(
                        s, db, deps.settings, merchant_id=merchant_id, mcc=merchant.mcc,
                        amount=new.amount, channel=channel.value, payer_id=new.payer_id,
                        store_id=new.store_id, picks=picks, show_balance=False)
                    values.update(_priced(new.amount, quote_now if quote_now.lines else None))
                event = _created(quote_now)
                await _record(s, deps, app_id=app_id, nonce=nonce, order=values, event=event,
                              decision=decision)
            if quote_now is not None and quote_now.lines:  # last: see marketing.reserve
                reserved = await marketing.reserve(s, order_id=values["id"],
                                                   merchant_id=merchant_id, quote=quote_now,
                                                   best=picks is not None)
                if reserved is not quote_now:  # rare: the campaign ran out since the choice
                    values.update(_priced(new.amount, reserved if reserved.lines else None))
                    await s.execute(REPRICE_ORDER, {
                        "b_id": values["id"], "b_payable": values["payable_amount"],
                        "b_discount": values["discount_amount"],
                        "b_discounts": values["discounts"]})
                    await s.execute(REPRICE_EVENT, {
                        "b_event": event["id"],
                        "b_detail": _created_detail(new, channel, values, reserved)})

    def _created(quote_now: marketing.Quote | None) -> dict[str, Any]:
        return event_row(order_id=values["id"], kind="CREATED", before=None,
                         after=OrderStatus.CREATED, at=now,
                         detail=_created_detail(new, channel, values, quote_now))

    for attempt in range(RECORD_ATTEMPTS):
        try:
            await record_once()
            return Order(**values), True
        except _CheckRaced:
            # The merchant's status or registration changed between two statements of the
            # batch (nothing was written): run it again, or give up as a lock conflict would.
            if attempt == RECORD_ATTEMPTS - 1:
                raise FulemaError(ErrorCode.INTERNAL_ERROR,
                                  "the order could not be recorded; retry") from None
        except (IntegrityError, DBAPIError) as exc:
            # A concurrent request with the same out_trade_no won the insert (InnoDB may
            # report that as a deadlock), or the nonce was replayed: told apart below.
            if isinstance(exc, IntegrityError):
                break
            if not is_retryable(exc):
                raise
            # The database aborted this transaction for a lock conflict (an InnoDB deadlock
            # victim, e.g. in the marketing budget's take, or a lock wait timeout): nothing
            # was written. Unless an order with this out_trade_no exists now, run it again.
            if (attempt == RECORD_ATTEMPTS - 1
                    or await _find_by_out_trade_no(db, merchant_id, new.out_trade_no)):
                break
            await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
        except FulemaError:
            # A best-discount order asked again may find its discount gone (its coupon locked
            # by the order it made, the campaign spent): the order it made answers, as it was.
            if picks is None or await _find_by_out_trade_no(db, merchant_id,
                                                            new.out_trade_no) is None:
                raise
            break
    if nonce is not None:
        await gateway.remember_nonce(db, app_id=app_id, nonce=nonce)  # NONCE_REPLAYED
    existing = await _find_by_out_trade_no(db, merchant_id, new.out_trade_no)
    if existing is None:
        raise FulemaError(ErrorCode.INTERNAL_ERROR, "the order could not be recorded; retry")
    if existing.request_hash != digest:
        raise FulemaError(ErrorCode.DUPLICATE_OUT_TRADE_NO,
                          f"out_trade_no {new.out_trade_no} was used with other parameters")
    return existing, False


async def _record(s: AsyncSession, deps: Deps, *, app_id: str, nonce: str | None,
                  order: dict[str, Any], event: dict[str, Any], decision: risk.Decision) -> None:
    """The request's nonce, the order, its CREATED event and risk's decision: one statement on
    PostgreSQL (`orders_sql.insert_all`), one INSERT each elsewhere, in the caller's
    transaction either way. Core INSERTs, not the ORM unit of work (see orders_state): the
    Order the caller builds from `order` is a plain carrier that never joins the session. A
    used nonce or a taken out_trade_no fails it with IntegrityError, nothing written."""
    if deps.db.dialect != "postgresql":
        if nonce is not None:
            await gateway.insert_nonce(s, app_id=app_id, nonce=nonce)
        await s.execute(INSERT_ORDER, order)
        await s.execute(INSERT_EVENT, event)
        await risk.record_decision(s, decision)
        return
    parts, decision_row = _rows(app_id, nonce, order, event, decision)
    await s.execute(*insert_all(parts))
    if decision_row is None:
        await risk.record_decision(s, decision)  # a REVIEW's case, a published outcome, or off


def _rows(app_id: str, nonce: str | None, order: dict[str, Any], event: dict[str, Any],
          decision: risk.Decision
          ) -> tuple[list[tuple[Table, dict[str, Any]]], dict[str, Any] | None]:
    """The recording's rows, each from its owner (the nonce from the gateway, the decision
    from risk), in the order they are written; and the decision's row (None: the decision is
    more than a row and `risk.record_decision` writes it after)."""
    parts: list[tuple[Table, dict[str, Any]]] = []
    if nonce is not None:
        parts.append((gateway.NONCE_TABLE, gateway.nonce_row(app_id=app_id, nonce=nonce)))
    parts += [(ORDERS, order), (ORDER_EVENTS, event)]
    decision_row = risk.lone_decision_row(decision)
    if decision_row is not None:
        parts.append((risk.DECISION_TABLE, decision_row))
    return parts, decision_row


async def _record_checked(s: AsyncSession | AsyncConnection, deps: Deps, *, app_id: str,
                          nonce: str | None, order: dict[str, Any], event: dict[str, Any],
                          decision: risk.Decision) -> None:
    """`onboarding.check_pay_in` and `_record` in one statement (PostgreSQL,
    `orders_sql.insert_all_if`): nothing is written unless the merchant may take payments
    here, and then the refusal is the one `check_pay_in` gives. Sets the order's
    `channel_sub_merchant_id` from the registration the statement read. A decision that is
    more than its row (`risk.lone_decision_row` None) is recorded after it, so `s` is then a
    transaction's session."""
    gate = onboarding.pay_in_gate(deps.settings, merchant_id=order["merchant_id"],
                                  channel=order["channel"])
    parts, decision_row = _rows(app_id, nonce, order, event, decision)
    stmt, params = insert_all_if(gate, parts,
                                 sub_merchant=(ORDERS, "channel_sub_merchant_id"))
    row = (await s.execute(stmt, params)).first()
    _merchant, order["channel_sub_merchant_id"] = gate.check(row)  # refused: nothing written
    if row is None or row.recorded != 1:  # the check passed, so the statement wrote the rows
        raise FulemaError(ErrorCode.INTERNAL_ERROR, "the order could not be recorded; retry")
    if decision_row is None:
        assert isinstance(s, AsyncSession), "a decision with a case or an event: a transaction"
        await risk.record_decision(s, decision)


class _CheckRaced(Exception):
    """The batch wrote nothing, yet the merchant passes the check now: it changed meanwhile."""


async def _record_batched(s: AsyncSession, deps: Deps, *, app_id: str, nonce: str | None,
                          order: dict[str, Any], event: dict[str, Any],
                          decision: risk.Decision) -> None:
    """`_record_checked` on MySQL-protocol databases: the check and every row in one round
    trip of several statements (`orders_batch.recording`), in the caller's transaction. No
    row came back: the merchant was refused and nothing was written; `check_pay_in` then
    names the refusal (one statement more, on that path only)."""
    gate = onboarding.pay_in_gate(deps.settings, merchant_id=order["merchant_id"],
                                  channel=order["channel"])
    decision_row = risk.lone_decision_row(decision)
    compiled, params = orders_batch.recording(
        deps.db.engine.dialect, gate, order=order, event=(ORDER_EVENTS, event),
        nonce=(gateway.NONCE_TABLE, gateway.nonce_row(app_id=app_id, nonce=nonce))
        if nonce is not None else None,
        decision=(risk.DECISION_TABLE, decision_row) if decision_row is not None else None)
    rows = await orders_batch.run(s, compiled, params)
    if not rows:
        await onboarding.check_pay_in(s, deps.settings, merchant_id=order["merchant_id"],
                                      channel=order["channel"])  # raises the refusal
        raise _CheckRaced
    order["channel_sub_merchant_id"] = rows[0].channel_sub_merchant_id
    if decision_row is None:
        await risk.record_decision(s, decision)


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
