"""What happens to a bill payment after the payer pays: the write-off (销账) at the biller,
retried until its deadline, and the automatic refund past it.

- The consumer `billing.orders` reads payment.succeeded / .failed / .closed and
  refund.succeeded of bill orders (matched by order id): paid -> PAID with the write-off due now
  and its deadline set; failed or closed unpaid -> CLOSED (the bill is free again); refund
  succeeded -> REFUNDED. Each change is a conditional UPDATE from the state it expects, so a
  second delivery changes nothing.
- The job `run_writeoffs` claims due PAID payments (conditional UPDATE, no SKIP LOCKED), asks the
  biller to write off (with a timeout), and on failure schedules the next try; past the deadline
  it first asks the biller whether a timed-out write-off went through after all, and only if not
  refunds the payment through payments (idempotent by out_refund_no).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select, update

from fulema.billing.billers import BillerError, BillerRegistry, WriteOff
from fulema.billing.domain import BillPaymentStatus as S
from fulema.billing.domain import merchant_funded_discount, writeoff_retry_delay
from fulema.billing.models import Biller, BillPayment
from fulema.core.clock import as_utc, clock
from fulema.core.db import Database
from fulema.core.errors import FulemaError
from fulema.core.events import Event, first_deliveries, first_delivery, publish
from fulema.core.money import Money
from fulema.payments import service as payments

log = structlog.get_logger(__name__)

CONSUMER = "billing.orders"
WRITEOFF_TIMEOUT_SECONDS = 10.0
CLAIM_SECONDS = 60


async def on_order_event(db: Database, event: Event, *, deadline_seconds: int) -> None:
    order_id = event.payload.get("order_id")
    if not order_id:
        return
    async with db.transaction() as s:
        payment = await s.scalar(select(BillPayment).where(BillPayment.order_id == order_id))
        if payment is None:  # not a bill order (or a donation: charity has its own consumer)
            return
        if not await first_delivery(s, CONSUMER, event.id):
            return
        await _apply(s, event, payment.id, deadline_seconds)


async def on_order_events(db: Database, events: list[Event], *, deadline_seconds: int) -> None:
    """A dispatcher round of `billing.orders` in one transaction: one look-up of the round's
    orders (`order_id IN (...)`) finds the few that are bill orders, and only their events get
    a receipt and their work, in order, as `on_order_event` does one by one. Most payments are
    not bills: a round of them costs that one SELECT."""
    ids = sorted({str(e.payload["order_id"]) for e in events if e.payload.get("order_id")})
    if not ids:
        return
    async with db.transaction() as s:
        bills = {str(r.order_id): r.id for r in (await s.execute(
            select(BillPayment.order_id, BillPayment.id).where(
                BillPayment.order_id.in_(ids)))).all()}
        if not bills:
            return
        mine = [e for e in events if e.payload.get("order_id") in bills]
        for event in await first_deliveries(s, CONSUMER, mine):
            await _apply(s, event, bills[str(event.payload["order_id"])], deadline_seconds)


async def _apply(s: Any, event: Event, payment_id: str, deadline_seconds: int) -> None:
    """One event's change to its bill payment (its receipt already written): each a
    conditional UPDATE from the state it expects, so a second delivery changes nothing."""
    p = event.payload
    now = clock.now()
    guard = (BillPayment.id == payment_id)
    if event.topic == "payment.succeeded":
        values: dict[str, Any] = dict(
            status=S.PAID.value, paid_at=now, next_writeoff_at=now, updated_at=now,
            writeoff_deadline=now + timedelta(seconds=deadline_seconds))
        refused = merchant_funded_discount(p.get("discounts", []))
        if refused:  # the biller writes off the whole bill: it cannot fund a discount
            values.update(status=S.REFUNDING.value, writeoff_deadline=now,
                          last_error=f"merchant-funded discount of {refused} fen on a bill")
        await s.execute(update(BillPayment).where(
            guard, BillPayment.status == S.CREATED.value).values(**values))
    elif event.topic in {"payment.failed", "payment.closed"}:
        await s.execute(update(BillPayment).where(
            guard, BillPayment.status == S.CREATED.value).values(
            status=S.CLOSED.value, live_key=None, updated_at=now))
    elif event.topic == "refund.succeeded":
        await s.execute(update(BillPayment).where(
            guard, BillPayment.status == S.REFUNDING.value).values(
            status=S.REFUNDED.value, live_key=None, refunded_at=now, updated_at=now))
        await _published_if_changed(s, payment_id, S.REFUNDED)


async def _published_if_changed(s: Any, payment_id: str, status: S) -> None:
    row = await s.get(BillPayment, payment_id, populate_existing=True)
    if row is not None and row.status == status.value:
        publish(s, f"bill.{status.value.lower()}", {
            "payment_id": row.id, "biller_code": row.biller_code, "bill_id": row.bill_id,
            "amount": row.amount.fen, "order_id": row.order_id, "status": row.status})


async def due_writeoffs(db: Database, *, limit: int = 50) -> list[str]:
    now = clock.now()
    async with db.transaction() as s:
        return list((await s.scalars(select(BillPayment.id).where(
            BillPayment.status.in_((S.PAID.value, S.REFUNDING.value)),
            BillPayment.next_writeoff_at <= now)
            .order_by(BillPayment.next_writeoff_at).limit(limit))).all())


async def _claim(db: Database, payment_id: str) -> BillPayment | None:
    now = clock.now()
    async with db.transaction() as s:
        p = await s.get(BillPayment, payment_id)
        if p is None or p.next_writeoff_at is None or as_utc(p.next_writeoff_at) > now \
                or p.status not in (S.PAID.value, S.REFUNDING.value):
            return None
        result = await s.execute(update(BillPayment).where(
            BillPayment.id == p.id, BillPayment.status == p.status,
            BillPayment.next_writeoff_at == p.next_writeoff_at).values(
            next_writeoff_at=now + timedelta(seconds=CLAIM_SECONDS), updated_at=now))
        return p if result.rowcount == 1 else None  # type: ignore[attr-defined]


async def run_writeoffs(deps: payments.Deps, billers: BillerRegistry, *,
                        retry_seconds: float) -> int:
    done = 0
    for payment_id in await due_writeoffs(deps.db):
        p = await _claim(deps.db, payment_id)
        if p is None:
            continue
        async with deps.db.transaction() as s:
            biller = await s.get(Biller, p.biller_code)
        assert biller is not None
        adapter = billers.get(biller.code, biller.adapter)
        if p.status == S.PAID.value:
            try:
                w = await asyncio.wait_for(adapter.write_off(
                    bill_id=p.bill_id, amount_fen=p.amount.fen, reference=p.id),
                    WRITEOFF_TIMEOUT_SECONDS)
            except (BillerError, TimeoutError) as exc:
                await _failed(deps.db, p, f"{type(exc).__name__}: {exc}"[:500],
                              retry_seconds=retry_seconds)
                continue
            await _written_off(deps.db, p.id, w)
            done += 1
        else:  # REFUNDING: did a write-off go through after all? Else refund.
            try:
                w2 = await _query(adapter, p.id)
            except (BillerError, TimeoutError) as exc:
                # Cannot tell: refunding now could pay the bill twice. The claim expires and
                # the biller is asked again.
                log.warning("billing.query_failed", payment_id=p.id, error=repr(exc))
                continue
            if w2 is not None:
                await _written_off(deps.db, p.id, w2)
            else:
                await _refund(deps, p)
            done += 1
    return done


async def _query(adapter: Any, reference: str) -> WriteOff | None:
    found: WriteOff | None = await asyncio.wait_for(adapter.query(reference),
                                                    WRITEOFF_TIMEOUT_SECONDS)
    return found


async def _failed(db: Database, p: BillPayment, error: str, *, retry_seconds: float) -> None:
    now = clock.now()
    attempts = p.writeoff_attempts + 1
    past_deadline = p.writeoff_deadline is not None and now >= as_utc(p.writeoff_deadline)
    values: dict[str, Any] = dict(writeoff_attempts=attempts, last_error=error, updated_at=now)
    if past_deadline:
        values.update(status=S.REFUNDING.value, next_writeoff_at=now)
    else:
        values.update(next_writeoff_at=now + writeoff_retry_delay(attempts, retry_seconds))
    log.warning("billing.writeoff_failed", payment_id=p.id, attempts=attempts,
                refunding=past_deadline, error=error)
    async with db.transaction() as s:
        await s.execute(update(BillPayment).where(
            BillPayment.id == p.id, BillPayment.status == S.PAID.value).values(**values))


async def _written_off(db: Database, payment_id: str, w: WriteOff) -> None:
    now = clock.now()
    async with db.transaction() as s:
        await s.execute(update(BillPayment).where(
            BillPayment.id == payment_id,
            BillPayment.status.in_((S.PAID.value, S.REFUNDING.value))).values(
            status=S.WRITTEN_OFF.value, receipt_no=w.receipt_no, written_off_at=now,
            next_writeoff_at=None, updated_at=now))
        await _published_if_changed(s, payment_id, S.WRITTEN_OFF)


async def _refund(deps: payments.Deps, p: BillPayment) -> None:
    """Refund the whole payment (idempotent by out_refund_no = "R" + payment id)."""
    assert p.order_id is not None
    try:
        refund = await payments.create_refund(
            deps, merchant_id=p.merchant_id, order_id=p.order_id, out_refund_no=f"R{p.id}",
            amount=Money(p.amount.fen), reason="bill write-off failed past its deadline")
    except FulemaError as exc:
        log.error("billing.refund_failed", payment_id=p.id, code=exc.code)
        return  # the claim expires and the job asks again
    now = clock.now()
    async with deps.db.transaction() as s:
        values: dict[str, Any] = dict(refund_id=refund.refund_id, updated_at=now,
                                      next_writeoff_at=None)
        if refund.status == "SUCCESS":
            values.update(status=S.REFUNDED.value, live_key=None, refunded_at=now)
        await s.execute(update(BillPayment).where(
            BillPayment.id == p.id, BillPayment.status == S.REFUNDING.value).values(**values))
        await _published_if_changed(s, p.id, S.REFUNDED)
