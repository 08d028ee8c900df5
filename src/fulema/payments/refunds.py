"""Refunds: partial and repeated, never above what was paid, idempotent by out_refund_no.

The refundable amount is checked and reserved (`refund_pending_amount`) under the order's row
lock in the same transaction that records the refund, so twenty concurrent partial refunds can
never together exceed the payment. The channel is called after that commit.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.channels.base import (
    ChannelError,
    ChannelUnavailable,
    RefundRequest,
    RefundResult,
    RefundState,
)
from fulema.core.clock import clock
from fulema.core.db import Database, retry_on_conflict
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import publish
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.marketing import service as marketing
from fulema.payments import notifications
from fulema.payments.callback_routing import SubMerchantCheck
from fulema.payments.deps import Deps
from fulema.payments.domain import (
    OrderStatus,
    RefundStatus,
    check_refund,
    status_after_refund,
    transition,
)
from fulema.payments.models import Order, Refund
from fulema.payments.orders_state import record
from fulema.payments.schemas import RefundOut
from fulema.payments.views import refund_payload, refund_view
from fulema.risk import service as risk

log = structlog.get_logger(__name__)

REFUND_POLL_SECONDS = 10


def _hash(order_id: str, amount: Money, reason: str) -> str:
    return hashlib.sha256(f"{order_id}|{amount.fen}|{reason}".encode()).hexdigest()


async def create_refund(deps: Deps, *, merchant_id: str, order_id: str, out_refund_no: str,
                        amount: Money, reason: str, notify_url: str | None = None
                        ) -> RefundOut:
    deps.settings.outbound_policy().check_notify_url(notify_url)  # NOTIFY_URL_REFUSED
    digest = _hash(order_id, amount, reason)
    # risk decides on the refund (refund ratio, blacklists); a retry counts once
    decision = await risk.decide(deps.db, settings=deps.settings, merchant_id=merchant_id,
                                 out_no=out_refund_no, amount=amount, action="refund")
    if not decision.allow:  # risk has recorded the decision; no refund is written
        raise FulemaError(ErrorCode.RISK_REJECTED, "refused by risk control",
                          reason_code=decision.reason)

    async def reserve() -> tuple[Refund, str, bool]:
        return await _reserve(deps.db, merchant_id=merchant_id, order_id=order_id,
                              out_refund_no=out_refund_no, amount=amount, reason=reason,
                              digest=digest, notify_url=notify_url, decision=decision)

    try:
        refund, out_trade_no, created = await retry_on_conflict(reserve)
    except IntegrityError:
        # a concurrent request with the same out_refund_no won the insert: read its refund
        refund, out_trade_no, created = await retry_on_conflict(reserve)
    if not created:
        return refund_view(refund, out_trade_no)
    return await _submit(deps, refund.id)


async def _reserve(db: Database, *, merchant_id: str, order_id: str, out_refund_no: str,
                   amount: Money, reason: str, digest: str, notify_url: str | None,
                   decision: risk.Decision) -> tuple[Refund, str, bool]:
    async with db.transaction() as s:
        order = (await s.scalars(select(Order).where(
            Order.id == order_id, Order.merchant_id == merchant_id).with_for_update())).first()
        if order is None:
            raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
        existing = (await s.scalars(select(Refund).where(
            Refund.merchant_id == merchant_id, Refund.out_refund_no == out_refund_no))).first()
        if existing is not None:
            if existing.request_hash != digest:
                raise FulemaError(ErrorCode.DUPLICATE_OUT_REFUND_NO,
                                  f"out_refund_no {out_refund_no} was used with other parameters")
            return existing, order.out_trade_no, False
        check_refund(status=OrderStatus(order.status), paid=order.amount,
                     refunded=order.refunded_amount, pending=order.refund_pending_amount,
                     amount=amount)
        cash, shares = await _split(s, order, amount)
        now = clock.now()
        refund = Refund(id=new_id("rfd"), order_id=order.id, merchant_id=merchant_id,
                        out_refund_no=out_refund_no, request_hash=digest, amount=amount,
                        cash_amount=cash, discounts=shares or None,
                        reason=reason, status=RefundStatus.PROCESSING.value,
                        channel=order.channel, notify_url=notify_url or order.notify_url,
                        next_query_at=now + timedelta(seconds=REFUND_POLL_SECONDS),
                        created_at=now, updated_at=now)
        s.add(refund)
        order.refund_pending_amount = order.refund_pending_amount + amount
        record(s, order, "REFUND_REQUESTED", detail={"refund_id": refund.id,
                                                     "amount": amount.fen})
        await s.flush()
        publish(s, "refund.requested", refund_payload(refund, order))
        await risk.record_decision(s, decision)
        return refund, order.out_trade_no, True


async def _split(s: AsyncSession, order: Order, amount: Money
                 ) -> tuple[Money, list[dict[str, Any]]]:
    """The refund's cash and each discount's share (docs/marketing.md: in proportion,
    cumulative, the last refund taking the remainder), given the order's earlier refunds that
    succeeded or are in flight. Runs under the order's row lock."""
    if not order.discounts:
        return amount, []
    prior = (await s.scalars(select(Refund).where(
        Refund.order_id == order.id,
        Refund.status.in_([RefundStatus.SUCCESS.value, RefundStatus.PROCESSING.value])))).all()
    cash, shares = marketing.refund_split(
        amount=order.amount.fen, payable=order.payable.fen, discounts=order.discounts,
        prior=[((r.cash_amount or r.amount).fen, r.discounts or []) for r in prior],
        refund=amount.fen)
    return Money(cash), shares


async def _submit(deps: Deps, refund_id: str) -> RefundOut:
    async with deps.db.transaction() as s:
        refund = await s.get(Refund, refund_id)
        assert refund is not None
        order = await s.get(Order, refund.order_id)
        assert order is not None
        cash = refund.cash_amount if refund.cash_amount is not None else refund.amount
        # The channel knows only the cash it charged: it refunds the cash share of the
        # payable amount; the discount shares go back to their funders (marketing.settle).
        req = RefundRequest(order_id=order.id, refund_id=refund.id, amount=cash,
                            order_amount=order.payable, reason=refund.reason or "refund",
                            notify_url=deps.settings.callback_url(order.channel),
                            sub_merchant_id=order.channel_sub_merchant_id)
        channel_name = order.channel
    if not cash.is_positive:
        # All of it is discount (a small refund of a heavily discounted order): nothing to
        # send back through the channel.
        return await apply_refund_result(deps, refund_id=refund_id,
                                         result=RefundResult(state=RefundState.SUCCESS),
                                         source="discount_only")
    try:
        result = await deps.channels.get(channel_name).refund(req)
    except ChannelError as exc:
        result = RefundResult(state=RefundState.FAILED, error_code=exc.code,
                              error_message=exc.message)
    except ChannelUnavailable:
        # unknown outcome: stays PROCESSING and the refund job asks the channel
        result = RefundResult(state=RefundState.UNKNOWN)
    return await apply_refund_result(deps, refund_id=refund_id, result=result, source="refund")


async def apply_refund_result(deps: Deps, *, refund_id: str, result: RefundResult,
                              source: str, check: SubMerchantCheck | None = None) -> RefundOut:
    """Idempotent: a second SUCCESS for one refund changes nothing. `check`: a callback's
    sub-merchant check, run on the refund's locked order before anything is written."""
    return await retry_on_conflict(
        lambda: _apply_refund_result(deps, refund_id, result, source, check))


async def _apply_refund_result(deps: Deps, refund_id: str, result: RefundResult,
                               source: str, check: SubMerchantCheck | None) -> RefundOut:
    async with deps.db.transaction() as s:
        refund = await s.get(Refund, refund_id)
        if refund is None:
            raise FulemaError(ErrorCode.REFUND_NOT_FOUND)
        order = await s.get(Order, refund.order_id, with_for_update=True)
        refund = await s.get(Refund, refund_id, with_for_update=True, populate_existing=True)
        assert order is not None
        assert refund is not None
        if check is not None:
            check(order.channel_sub_merchant_id)
        target = {RefundState.SUCCESS: RefundStatus.SUCCESS,
                  RefundState.FAILED: RefundStatus.FAILED}.get(result.state)
        if target is None or refund.status != RefundStatus.PROCESSING:
            if refund.status == RefundStatus.PROCESSING:
                refund.next_query_at = clock.now() + timedelta(seconds=REFUND_POLL_SECONDS)
            return refund_view(refund, order.out_trade_no)
        now = clock.now()
        refund.status = transition(RefundStatus(refund.status), target).value
        refund.updated_at = now
        refund.next_query_at = None
        refund.channel_refund_no = result.channel_refund_no or refund.channel_refund_no
        order.refund_pending_amount = order.refund_pending_amount - refund.amount
        if target == RefundStatus.SUCCESS:
            refund.succeeded_at = now
            order.refunded_amount = order.refunded_amount + refund.amount
            after = status_after_refund(paid=order.amount, refunded=order.refunded_amount)
            record(s, order, "REFUND_SUCCEEDED", to=after,
                   detail={"refund_id": refund.id, "amount": refund.amount.fen, "source": source})
            payload = {**refund_payload(refund, order), "order_status": order.status}
            event_id = publish(s, "refund.succeeded", payload)
            await notifications.stage_if_wanted(s, deps.webhook_switch, event_id=event_id,
                                                topic="refund.succeeded", payload=payload)
        else:
            refund.failure_code = result.error_code
            refund.failure_message = (result.error_message or "")[:256] or None
            record(s, order, "REFUND_FAILED", detail={"refund_id": refund.id,
                                                      "code": result.error_code})
            publish(s, "refund.failed", refund_payload(refund, order))
        return refund_view(refund, order.out_trade_no)


async def get_refund(db: Database, *, merchant_id: str, refund_id: str | None = None,
                     out_refund_no: str | None = None) -> RefundOut:
    async with db.transaction() as s:
        stmt = select(Refund).where(Refund.merchant_id == merchant_id)
        stmt = stmt.where(Refund.id == refund_id) if refund_id else stmt.where(
            Refund.out_refund_no == out_refund_no)
        refund = (await s.scalars(stmt)).first()
        if refund is None:
            raise FulemaError(ErrorCode.REFUND_NOT_FOUND)
        order = await s.get(Order, refund.order_id)
        assert order is not None
        return refund_view(refund, order.out_trade_no)


async def run_refund_jobs(deps: Deps, *, limit: int = 100) -> int:
    """Ask the channel about refunds whose outcome is still unknown."""
    now = clock.now()
    async with deps.db.transaction() as s:
        due = list((await s.execute(select(Refund.id, Refund.order_id, Refund.channel,
                                           Refund.next_query_at,
                                           Order.channel_sub_merchant_id)
                                    .join(Order, Order.id == Refund.order_id).where(and_(
            Refund.status == RefundStatus.PROCESSING.value,
            Refund.next_query_at <= now)).limit(limit))).all())
    done = 0
    for refund_id, order_id, channel_name, seen, sub in due:
        async with deps.db.transaction() as s:
            claimed = await s.execute(update(Refund).where(
                Refund.id == refund_id, Refund.next_query_at == seen).values(
                next_query_at=now + timedelta(seconds=REFUND_POLL_SECONDS)))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        try:
            result = await deps.channels.get(channel_name).refund_query(
                order_id, refund_id, sub_merchant_id=sub)
        except ChannelUnavailable:
            continue
        except ChannelError:
            # The channel never received it (the first call timed out before arriving):
            # send it again; channels deduplicate refunds by out_refund_no.
            view = await _submit(deps, refund_id)
        else:
            view = await apply_refund_result(deps, refund_id=refund_id, result=result,
                                             source="query")
        done += view.status != RefundStatus.PROCESSING
    return done
