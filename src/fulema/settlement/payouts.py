"""Payouts: sending a settled batch's net to the merchant's account, exactly once.

Never paid twice, by three locks on the door:
- each attempt has an idempotency key (`<payout>-<attempt>`) that the bank executes at most
  once, so the same attempt sent again (a timeout, a second worker) cannot pay again;
- a new attempt (a new key) is made only after the bank said the previous one FAILED; an
  unknown outcome is asked about with the same key, and a request the bank never received
  (NOT_FOUND) is sent again with the same key;
- one worker at a time holds a payout (a conditional UPDATE claim), and its answer is applied
  under the row's lock only while the payout is not final and the key is still current, so a
  late or duplicated answer changes nothing; the ledger entry is unique per payout.

A payout that fails `FULEMA_PAYOUT_MAX_ATTEMPTS` times goes back to the merchant's balance
(a reversing ledger entry; the next settlement run takes it again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import publish
from fulema.ledger import service as ledger
from fulema.merchants import service as merchants
from fulema.settlement import domain
from fulema.settlement.bank import PayoutAdapter, TransferResult, TransferState
from fulema.settlement.domain import FINAL, PayoutStatus
from fulema.settlement.models import Payout

log = structlog.get_logger(__name__)
CLAIM_SECONDS = 120
UNKNOWN_RETRY_SECONDS = 60
PAID_TOPIC = "settlement.paid"


@dataclass(frozen=True)
class PayoutView:
    payout_id: str
    batch_id: str
    merchant_id: str
    amount: int
    status: str
    attempt: int
    account_masked: str | None
    bank_ref: str | None
    last_error: str | None
    updated_at: datetime


def payout_view(p: Payout) -> PayoutView:
    return PayoutView(payout_id=p.id, batch_id=p.batch_id, merchant_id=p.merchant_id,
                      amount=p.amount, status=p.status, attempt=p.attempt,
                      account_masked=p.account_masked, bank_ref=p.bank_ref,
                      last_error=p.last_error, updated_at=p.updated_at)


async def process_payouts(db: Database, settings: Settings, bank: PayoutAdapter, *,
                          limit: int = 50) -> int:
    """Send or ask about every payout that is due. Returns how many were handled."""
    now = clock.now()
    async with db.transaction() as s:
        ids = (await s.scalars(select(Payout.id).where(
            Payout.status.in_([PayoutStatus.PENDING.value, PayoutStatus.UNKNOWN.value]),
            or_(Payout.next_try_at.is_(None), Payout.next_try_at <= now))
            .order_by(Payout.next_try_at).limit(limit))).all()
    handled = 0
    for payout_id in ids:
        if await process_one(db, settings, bank, payout_id=payout_id):
            handled += 1
    return handled


async def _claim(db: Database, payout_id: str) -> Payout | None:
    now = clock.now()
    async with db.transaction() as s:
        won = await s.execute(update(Payout).where(
            Payout.id == payout_id,
            Payout.status.in_([PayoutStatus.PENDING.value, PayoutStatus.UNKNOWN.value]),
            or_(Payout.claimed_until.is_(None), Payout.claimed_until < now),
        ).values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False))
        if won.rowcount != 1:  # type: ignore[attr-defined]
            return None
        payout = await s.get(Payout, payout_id)
        assert payout is not None
        s.expunge(payout)
        return payout


async def process_one(db: Database, settings: Settings, bank: PayoutAdapter, *,
                      payout_id: str) -> bool:
    payout = await _claim(db, payout_id)
    if payout is None:
        return False
    detail = await merchants.get_merchant(db, merchant_id=payout.merchant_id)
    m = detail.merchant
    hold = domain.hold_reason(merchant_status=m.status,
                              settlement_hold_reason=m.settlement_hold_reason)
    key = domain.request_id(payout.id, payout.attempt)
    if hold and payout.status == PayoutStatus.PENDING.value:
        # Held after the batch settled and before the money left: wait, do not send.
        await _release(db, payout.id, error=f"held: {hold}"[:128],
                       retry=settings.payout_retry_seconds)
        return True
    if payout.status == PayoutStatus.UNKNOWN.value:
        result = await bank.query(request_id=key)
        if result.state is TransferState.NOT_FOUND:  # never arrived: the same key again
            result = await bank.transfer(request_id=key, account=m.settlement_account,
                                         account_name=m.settlement_account_name,
                                         fen=payout.amount)
    else:
        await _mark_sent(db, payout.id, key)
        result = await bank.transfer(request_id=key, account=m.settlement_account,
                                     account_name=m.settlement_account_name, fen=payout.amount)
    await apply_answer(db, settings, payout_id=payout.id, request_id=key, result=result)
    return True


async def _mark_sent(db: Database, payout_id: str, key: str) -> None:
    """Before the request leaves: from here on the outcome is UNKNOWN until the bank says,
    so a crash mid-call is asked about, never sent as a new attempt."""
    async with db.transaction() as s:
        await s.execute(update(Payout).where(Payout.id == payout_id).values(
            status=PayoutStatus.UNKNOWN.value, request_id=key, updated_at=clock.now())
            .execution_options(synchronize_session=False))


async def _release(db: Database, payout_id: str, *, error: str, retry: int) -> None:
    async with db.transaction() as s:
        await s.execute(update(Payout).where(Payout.id == payout_id).values(
            claimed_until=None, last_error=error,
            next_try_at=clock.now() + timedelta(seconds=retry), updated_at=clock.now())
            .execution_options(synchronize_session=False))


async def apply_answer(db: Database, settings: Settings, *, payout_id: str, request_id: str,
                       result: TransferResult) -> PayoutStatus:
    """Apply the bank's answer about attempt `request_id`, idempotently."""
    async with db.transaction() as s:
        p = await s.get(Payout, payout_id, with_for_update=True)
        if p is None:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, f"no payout {payout_id}")
        status = PayoutStatus(p.status)
        now = clock.now()
        if status in FINAL or request_id != p.request_id:
            if result.state is TransferState.SUCCESS and request_id != p.request_id:
                log.error("payout.stale_success", payout_id=p.id, request_id=request_id)
            p.claimed_until = None
            return status
        p.claimed_until, p.updated_at = None, now
        if result.state is TransferState.SUCCESS:
            p.status, p.bank_ref, p.last_error, p.next_try_at = (
                PayoutStatus.SUCCEEDED.value, result.bank_ref, None, None)
            await ledger.post_entry(s, source_key=f"payout:{p.id}", kind="payout",
                                    business_ref=p.id, merchant_id=p.merchant_id,
                                    trade_date=ledger.business_date(now, settings.settlement_cutoff),
                                    lines=ledger.payout_lines(p.amount))
            # With the payout's success, in its transaction (outbox): the merchant hears
            # "结算款 xx 元已到账" by SMS, push or notice as it subscribed (messaging).
            publish(s, PAID_TOPIC, {
                "payout_id": p.id, "batch_id": p.batch_id, "merchant_id": p.merchant_id,
                "amount": int(p.amount), "account_masked": p.account_masked,
                "bank_ref": p.bank_ref, "paid_at": now.isoformat()})
        elif result.state is TransferState.FAILED:
            p.last_error = (result.reason or "FAILED")[:128]
            if p.attempt >= settings.payout_max_attempts:
                p.status, p.next_try_at = PayoutStatus.RETURNED.value, None
                await ledger.post_entry(
                    s, source_key=f"payout-returned:{p.id}", kind="payout_returned",
                    business_ref=p.id, merchant_id=p.merchant_id,
                    trade_date=ledger.business_date(now, settings.settlement_cutoff),
                    lines=ledger.payout_returned_lines(p.merchant_id, p.amount))
            else:
                p.status, p.attempt = PayoutStatus.PENDING.value, p.attempt + 1
                p.next_try_at = now + timedelta(seconds=settings.payout_retry_seconds)
        else:  # PROCESSING, UNKNOWN, NOT_FOUND after a resend: ask again later, same key
            p.status = PayoutStatus.UNKNOWN.value
            p.next_try_at = now + timedelta(seconds=UNKNOWN_RETRY_SECONDS)
        return PayoutStatus(p.status)


async def list_payouts(db: Database, *, merchant_id: str | None = None,
                       status: str | None = None, limit: int = 50) -> list[PayoutView]:
    if not 1 <= limit <= 200:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "limit: 1..200")
    q = select(Payout).order_by(Payout.created_at.desc(), Payout.id.desc()).limit(limit)
    if merchant_id:
        q = q.where(Payout.merchant_id == merchant_id)
    if status:
        q = q.where(Payout.status == status)
    async with db.transaction() as s:
        return [payout_view(p) for p in (await s.scalars(q)).all()]
