"""A merchant's lifecycle (进件, review, activation, freeze, close) and its event log.

Every change to a merchant, here or in the sibling modules (stores, apps, fees, plates), goes
through `record`: the audit row and the outbox event in the caller's transaction, numbered by
the merchant's version under a row lock. This module owns that lock and that log, so the other
merchant modules import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import publish
from fulema.core.ids import new_id
from fulema.merchants import domain
from fulema.merchants.domain import MerchantAction, MerchantStatus
from fulema.merchants.models import Merchant, MerchantEvent


@dataclass(frozen=True)
class MerchantView:
    id: str
    name: str
    short_name: str
    licence_no: str
    legal_person: str
    settlement_account: str
    settlement_account_name: str
    contact_name: str
    contact_phone: str
    mcc: str
    status: str
    reject_reason: str | None
    freeze_reason: str | None
    settlement_hold_reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class EventView:
    seq: int
    action: str
    from_status: str | None
    to_status: str
    reason: str | None
    operator: str
    at: datetime


async def apply_merchant(db: Database, *, name: str, short_name: str, licence_no: str,
                         legal_person: str, settlement_account: str, settlement_account_name: str,
                         contact_name: str, contact_phone: str, mcc: str,
                         operator: str) -> MerchantView:
    """商户进件: a new merchant in APPLIED. One merchant per licence number, also under races."""
    licence = domain.normalise_licence(licence_no)
    domain.check_formats(contact_phone=contact_phone, mcc=mcc, settlement_account=settlement_account)
    now = clock.now()
    m = Merchant(id=new_id("mch"), name=name, short_name=short_name, licence_no=licence,
                 legal_person=legal_person, settlement_account=settlement_account,
                 settlement_account_name=settlement_account_name, contact_name=contact_name,
                 contact_phone=contact_phone, mcc=mcc, status=MerchantStatus.APPLIED.value,
                 version=0, created_at=now, updated_at=now)
    try:
        async with db.transaction() as s:
            await refuse_taken_licence(s, licence)
            s.add(m)
            await s.flush()  # the parent row first: no relationship() orders the inserts
            await record(s, m, "apply", None, None, operator)
    except IntegrityError:  # a concurrent apply with this licence committed first?
        await raise_if_licence_taken(db, licence)
        raise
    return merchant_view(m)


async def approve(db: Database, *, merchant_id: str, operator: str,
                  reason: str | None = None) -> MerchantView:
    return await _transition(db, merchant_id, MerchantAction.APPROVE, operator, reason)


async def reject(db: Database, *, merchant_id: str, reason: str, operator: str) -> MerchantView:
    return await _transition(db, merchant_id, MerchantAction.REJECT, operator, reason)


async def activate(db: Database, *, merchant_id: str, operator: str,
                   reason: str | None = None) -> MerchantView:
    return await _transition(db, merchant_id, MerchantAction.ACTIVATE, operator, reason)


async def freeze(db: Database, *, merchant_id: str, reason: str, operator: str) -> MerchantView:
    return await _transition(db, merchant_id, MerchantAction.FREEZE, operator, reason)


async def unfreeze(db: Database, *, merchant_id: str, operator: str,
                   reason: str | None = None) -> MerchantView:
    return await _transition(db, merchant_id, MerchantAction.UNFREEZE, operator, reason)


async def close(db: Database, *, merchant_id: str, operator: str,
                reason: str | None = None) -> MerchantView:
    return await _transition(db, merchant_id, MerchantAction.CLOSE, operator, reason)


async def hold_settlement(db: Database, *, merchant_id: str, reason: str,
                          operator: str) -> MerchantView:
    """Holds the merchant's settlement (payments go on, payouts wait) until released: what risk
    does while a case is investigated; settlement honours `settlement_hold_reason`."""
    text = domain.check_reason(MerchantAction.FREEZE, reason)  # a hold needs a reason too
    async with db.transaction() as s:
        m = await lock(s, merchant_id)
        m.settlement_hold_reason = text
        await record(s, m, "settlement_hold", m.status, text, operator)
        await s.flush()
        return merchant_view(m)


async def release_settlement(db: Database, *, merchant_id: str, operator: str,
                             reason: str | None = None) -> MerchantView:
    async with db.transaction() as s:
        m = await lock(s, merchant_id)
        m.settlement_hold_reason = None
        await record(s, m, "settlement_release", m.status, reason, operator)
        await s.flush()
        return merchant_view(m)


async def resubmit(db: Database, *, merchant_id: str, operator: str, name: str | None = None,
                   short_name: str | None = None, licence_no: str | None = None,
                   legal_person: str | None = None, settlement_account: str | None = None,
                   settlement_account_name: str | None = None, contact_name: str | None = None,
                   contact_phone: str | None = None, mcc: str | None = None) -> MerchantView:
    """A REJECTED application, corrected (only the fields given change), back to APPLIED."""
    licence = domain.normalise_licence(licence_no) if licence_no is not None else None
    domain.check_formats(contact_phone=contact_phone, mcc=mcc, settlement_account=settlement_account)
    corrections = {k: v for k, v in {
        "name": name, "short_name": short_name, "licence_no": licence, "legal_person": legal_person,
        "settlement_account": settlement_account, "settlement_account_name": settlement_account_name,
        "contact_name": contact_name, "contact_phone": contact_phone, "mcc": mcc,
    }.items() if v is not None}
    try:
        return await _transition(db, merchant_id, MerchantAction.RESUBMIT, operator,
                                 corrections=corrections)
    except IntegrityError:
        if licence is not None:
            await raise_if_licence_taken(db, licence)
        raise


def mask_account(account: str) -> str:
    """`6222****1234`: enough for a person to recognise an account, too little to use it."""
    return f"{account[:4]}****{account[-4:]}" if len(account) > 8 else "****"


async def change_settlement_account_in(s: AsyncSession, *, merchant_id: str,
                                       settlement_account: str, settlement_account_name: str,
                                       operator: str, reason: str | None = None) -> MerchantView:
    """Where the merchant's money goes, changed in the caller's transaction: a four-eyes action
    (`merchants.four_eyes`), so it runs in the approver's. Any state but CLOSED."""
    domain.check_formats(settlement_account=settlement_account)
    name = settlement_account_name.strip()
    if not name or len(name) > 64:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "settlement_account_name: 1-64 characters")
    m = await lock_open(s, merchant_id, "change the settlement account")
    before = mask_account(m.settlement_account)
    m.settlement_account, m.settlement_account_name = settlement_account, name
    after = mask_account(settlement_account)
    await record(s, m, "change_settlement_account", m.status, f"{before} -> {after}", operator,
                 audit_detail={"from": before, "to": after, "reason": reason})
    await s.flush()
    return merchant_view(m)


async def change_settlement_account(db: Database, *, merchant_id: str, settlement_account: str,
                                    settlement_account_name: str, operator: str,
                                    reason: str | None = None) -> MerchantView:
    async with db.transaction() as s:
        return await change_settlement_account_in(
            s, merchant_id=merchant_id, settlement_account=settlement_account,
            settlement_account_name=settlement_account_name, operator=operator, reason=reason)


async def get_merchant_status(db: Database, *, merchant_id: str) -> MerchantStatus:
    """The merchant's state alone (MERCHANT_NOT_FOUND if none): to refuse a pointless request
    before it waits for a second operator."""
    async with db.transaction() as s:
        status = await s.scalar(select(Merchant.status).where(Merchant.id == merchant_id))
    if status is None:
        raise FulemaError(ErrorCode.MERCHANT_NOT_FOUND, f"no merchant {merchant_id}")
    return MerchantStatus(status)


async def list_events(db: Database, *, merchant_id: str) -> list[EventView]:
    """The merchant's audit trail, in the order it happened."""
    async with db.transaction() as s:
        await merchant_row(s, merchant_id)
        rows = await s.scalars(select(MerchantEvent).where(MerchantEvent.merchant_id == merchant_id)
                               .order_by(MerchantEvent.seq))
        return [EventView(seq=e.seq, action=e.action, from_status=e.from_status,
                          to_status=e.to_status, reason=e.reason, operator=e.operator, at=e.at)
                for e in rows]


async def _transition(db: Database, merchant_id: str, action: MerchantAction, operator: str,
                      reason: str | None = None, *,
                      corrections: dict[str, str] | None = None) -> MerchantView:
    async with db.transaction() as s:
        return await transition_in(s, merchant_id, action, operator, reason,
                                   corrections=corrections)


async def transition_in(s: AsyncSession, merchant_id: str, action: MerchantAction,
                        operator: str, reason: str | None = None, *,
                        corrections: dict[str, str] | None = None) -> MerchantView:
    """One lifecycle move in the caller's transaction (four eyes runs it in the approver's)."""
    reason = domain.check_reason(action, reason)
    m = await lock(s, merchant_id)
    before = MerchantStatus(m.status)
    after = domain.next_status(before, action)
    if corrections and corrections.get("licence_no", m.licence_no) != m.licence_no:
        await refuse_taken_licence(s, corrections["licence_no"])
    for field, value in (corrections or {}).items():
        setattr(m, field, value)
    if action is MerchantAction.REJECT:
        m.reject_reason = reason
    elif action is MerchantAction.RESUBMIT:
        m.reject_reason = None
    elif action is MerchantAction.FREEZE:
        m.freeze_reason = reason
    elif action is MerchantAction.UNFREEZE:
        m.freeze_reason = None
    m.status = after.value
    # The corrected fields by name only: their values are personal data.
    await record(s, m, action.value, before.value, reason, operator,
                 audit_detail={"reason": reason, "corrected": sorted(corrections)}
                 if corrections else None)
    await s.flush()
    return merchant_view(m)


async def record(s: AsyncSession, m: Merchant, action: str, from_status: str | None,
                 reason: str | None, operator: str, *, extra: dict[str, Any] | None = None,
                 audit_detail: dict[str, Any] | None = None) -> None:
    """The merchant's event row, the outbox event and the platform's audit record (with the
    operator's own name) for one change, in the caller's transaction.

    `version` numbers the merchant's events; the merchant row is locked (or new) here, and a
    unique (merchant_id, seq) turns a lost lock into an error rather than a forked history.
    `audit_detail` replaces the reason in the audit record where the reason could carry
    personal data (the trail holds none).
    """
    now = clock.now()
    m.version += 1
    m.updated_at = now
    s.add(MerchantEvent(id=new_id("mev"), merchant_id=m.id, seq=m.version, action=action,
                        from_status=from_status, to_status=m.status, reason=reason,
                        operator=operator, at=now))
    publish(s, f"merchant.{action}", {
        "merchant_id": m.id, "action": action, "from_status": from_status,
        "to_status": m.status, "reason": reason, "operator": operator, "seq": m.version,
        **(extra or {})})
    detail = audit_detail if audit_detail is not None else {"reason": reason, **(extra or {})}
    await audit.record(s, actor=operator, action=f"merchant.{action}", target_type="merchant",
                       target_id=m.id, detail={"from_status": from_status,
                                               "to_status": m.status, "seq": m.version, **detail})


async def merchant_row(s: AsyncSession, merchant_id: str) -> Merchant:
    m = await s.get(Merchant, merchant_id)
    if m is None:
        raise FulemaError(ErrorCode.MERCHANT_NOT_FOUND, f"no merchant {merchant_id}")
    return m


async def lock(s: AsyncSession, merchant_id: str) -> Merchant:
    m = await s.scalar(select(Merchant).where(Merchant.id == merchant_id).with_for_update())
    if m is None:
        raise FulemaError(ErrorCode.MERCHANT_NOT_FOUND, f"no merchant {merchant_id}")
    return m


async def lock_open(s: AsyncSession, merchant_id: str, what: str) -> Merchant:
    m = await lock(s, merchant_id)
    domain.check_open(MerchantStatus(m.status), what)
    return m


async def refuse_taken_licence(s: AsyncSession, licence: str) -> None:
    if await s.scalar(select(Merchant.id).where(Merchant.licence_no == licence)):
        raise _duplicate_licence(licence)


async def raise_if_licence_taken(db: Database, licence: str) -> None:
    """After a unique violation, DUPLICATE_LICENCE if the licence is the reason (checked by
    reading, since each database words its constraint errors differently)."""
    async with db.transaction() as s:
        await refuse_taken_licence(s, licence)


def _duplicate_licence(licence: str) -> FulemaError:
    return FulemaError(ErrorCode.DUPLICATE_LICENCE, f"a merchant with licence {licence} exists")


def merchant_view(m: Merchant) -> MerchantView:
    return MerchantView(
        id=m.id, name=m.name, short_name=m.short_name, licence_no=m.licence_no,
        legal_person=m.legal_person, settlement_account=m.settlement_account,
        settlement_account_name=m.settlement_account_name, contact_name=m.contact_name,
        contact_phone=m.contact_phone, mcc=m.mcc, status=m.status, reject_reason=m.reject_reason,
        freeze_reason=m.freeze_reason, settlement_hold_reason=m.settlement_hold_reason,
        created_at=m.created_at, updated_at=m.updated_at)
