"""Bill payment (生活缴费): register billers, inquire bills, pay a bill through the normal order
flow, and show the payer its state, receipt and history.

Paying is: check the bill with the biller (it exists, is unpaid, the amount is the bill's),
take the bill with a row whose unique `live_key` no second payment can share, then create an
order for the biller merchant (payments.service). Once the money is in (`writeoffs`), the
biller writes the bill off; past the deadline without a write-off, the payment is refunded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from fulema.billing.billers import Bill, BillerAdapter, BillerRegistry, UnknownAccount
from fulema.billing.domain import BillPaymentStatus, check_bill_amount, live_key
from fulema.billing.models import Biller, BillPayment
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.merchants import service as merchants
from fulema.payments import service as payments
from fulema.payments.schemas import OrderOut

CATEGORIES = ("water", "electricity", "gas", "telecom", "tuition", "property")


@dataclass(frozen=True)
class BillerView:
    code: str
    name: str
    category: str
    merchant_id: str
    active: bool


@dataclass(frozen=True)
class BillPaymentView:
    payment_id: str
    biller_code: str
    bill_id: str
    account_no: str
    period: str
    amount: int
    status: str
    order_id: str | None
    channel: str
    writeoff_attempts: int
    receipt_no: str | None
    last_error: str | None
    paid_at: datetime | None
    written_off_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime


def biller_view(b: Biller) -> BillerView:
    return BillerView(code=b.code, name=b.name, category=b.category, merchant_id=b.merchant_id,
                      active=b.active)


def payment_view(p: BillPayment) -> BillPaymentView:
    return BillPaymentView(
        payment_id=p.id, biller_code=p.biller_code, bill_id=p.bill_id, account_no=p.account_no,
        period=p.period, amount=p.amount.fen, status=p.status, order_id=p.order_id,
        channel=p.channel, writeoff_attempts=p.writeoff_attempts, receipt_no=p.receipt_no,
        last_error=p.last_error, paid_at=p.paid_at, written_off_at=p.written_off_at,
        refunded_at=p.refunded_at, created_at=p.created_at)


async def register_biller(db: Database, *, code: str, name: str, category: str,
                          merchant_id: str, adapter: str = "sandbox") -> BillerView:
    """A biller is a merchant (settled as one) with a biller adapter."""
    if category not in CATEGORIES:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"category: one of {', '.join(CATEGORIES)}")
    await merchants.get_merchant(db, merchant_id=merchant_id)  # MERCHANT_NOT_FOUND
    try:
        async with db.transaction() as s:
            row = Biller(code=code, name=name, category=category, merchant_id=merchant_id,
                         adapter=adapter, active=True, created_at=clock.now())
            s.add(row)
    except IntegrityError as exc:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"biller {code} exists") from exc
    return biller_view(row)


async def list_billers(db: Database) -> list[BillerView]:
    async with db.transaction() as s:
        return [biller_view(b) for b in await s.scalars(
            select(Biller).where(Biller.active.is_(True)).order_by(Biller.code))]


async def biller_row(db: Database, code: str) -> Biller:
    async with db.transaction() as s:
        b = await s.get(Biller, code)
    if b is None or not b.active:
        raise FulemaError(ErrorCode.BILLER_NOT_FOUND, f"no biller {code}")
    return b


async def inquire(db: Database, billers: BillerRegistry, *, biller_code: str,
                  account_no: str) -> list[Bill]:
    b = await biller_row(db, biller_code)
    return await _inquire(billers.get(b.code, b.adapter), account_no)


async def _inquire(adapter: BillerAdapter, account_no: str) -> list[Bill]:
    try:
        return await adapter.inquire(account_no)
    except UnknownAccount as exc:
        raise FulemaError(ErrorCode.BILL_NOT_FOUND, "the biller knows no such account") from exc


async def pay_bill(deps: payments.Deps, billers: BillerRegistry, *, biller_code: str,
                   account_no: str, bill_id: str, amount: Money, channel: ChannelName,
                   way_code: WayCode = WayCode.QR_DYNAMIC, payer_id: str | None = None
                   ) -> tuple[BillPaymentView, OrderOut]:
    """Take the bill and open an order for it. The same bill while a payment holds it:
    that payment again if it is still waiting for the payer (a retried request), else
    BILL_ALREADY_PAID."""
    b = await biller_row(deps.db, biller_code)
    bills = {x.bill_id: x for x in await _inquire(billers.get(b.code, b.adapter), account_no)}
    bill = bills.get(bill_id)
    if bill is None:
        if await _holder(deps.db, b.code, bill_id) is not None:
            raise FulemaError(ErrorCode.BILL_ALREADY_PAID, f"bill {bill_id} is paid")
        raise FulemaError(ErrorCode.BILL_NOT_FOUND, f"no unpaid bill {bill_id} on this account")
    check_bill_amount(bill.amount_fen, amount.fen)
    app = await merchants.default_app_for_merchant(deps.db, merchant_id=b.merchant_id)
    if app is None:
        raise FulemaError(ErrorCode.BILLER_NOT_FOUND, f"biller {b.code} has no API app")
    now = clock.now()
    payment = BillPayment(
        id=new_id("bpy"), biller_code=b.code, bill_id=bill.bill_id, account_no=account_no,
        period=bill.period, amount=amount, status=BillPaymentStatus.CREATED.value,
        live_key=live_key(b.code, bill.bill_id, BillPaymentStatus.CREATED),
        merchant_id=b.merchant_id, order_id=None, channel=channel.value, writeoff_attempts=0,
        next_writeoff_at=None, writeoff_deadline=None, receipt_no=None, last_error=None,
        refund_id=None, paid_at=None, written_off_at=None, refunded_at=None, created_at=now,
        updated_at=now)
    try:
        async with deps.db.transaction() as s:
            s.add(payment)
    except IntegrityError as exc:
        held = await _holder(deps.db, b.code, bill.bill_id)
        if held is not None and held.status == BillPaymentStatus.CREATED and held.order_id:
            order = await payments.order_by_id(deps, order_id=held.order_id)
            return payment_view(held), order
        raise FulemaError(ErrorCode.BILL_ALREADY_PAID,
                          f"bill {bill.bill_id} is paid or being paid") from exc
    try:
        order = await payments.create_order(
            deps, merchant_id=b.merchant_id, app_id=app.app_id, new=payments.NewOrder(
                out_trade_no=payment.id, amount=amount, subject=f"{b.name} {bill.period}",
                way_code=way_code, channel=channel, payer_id=payer_id,
                attach=f"bill:{payment.id}"))
    except FulemaError:
        await _close(deps.db, payment.id)  # the bill is free again
        raise
    async with deps.db.transaction() as s:
        await s.execute(update(BillPayment).where(BillPayment.id == payment.id)
                        .values(order_id=order.order_id, updated_at=clock.now()))
    payment.order_id = order.order_id
    return payment_view(payment), order


async def _holder(db: Database, biller_code: str, bill_id: str) -> BillPayment | None:
    async with db.transaction() as s:
        return await s.scalar(select(BillPayment).where(
            BillPayment.live_key == f"{biller_code}:{bill_id}"))


async def _close(db: Database, payment_id: str) -> None:
    async with db.transaction() as s:
        await s.execute(update(BillPayment).where(
            BillPayment.id == payment_id, BillPayment.status == BillPaymentStatus.CREATED.value)
            .values(status=BillPaymentStatus.CLOSED.value, live_key=None, updated_at=clock.now()))


async def get_payment(db: Database, *, payment_id: str) -> BillPaymentView:
    async with db.transaction() as s:
        p = await s.get(BillPayment, payment_id)
    if p is None:
        raise FulemaError(ErrorCode.BILL_PAYMENT_NOT_FOUND, f"no bill payment {payment_id}")
    return payment_view(p)


async def history(db: Database, *, biller_code: str, account_no: str,
                  limit: int = 50) -> list[BillPaymentView]:
    """The account's bill payments, newest first (what the payer sees: the state of each)."""
    await biller_row(db, biller_code)
    async with db.transaction() as s:
        return [payment_view(p) for p in await s.scalars(
            select(BillPayment).where(BillPayment.biller_code == biller_code,
                                      BillPayment.account_no == account_no)
            .order_by(BillPayment.created_at.desc(), BillPayment.id.desc()).limit(limit))]
