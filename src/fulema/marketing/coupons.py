"""Coupons: templates, and the coupons they issue to payers (claimed by the payer through the
merchant, or granted by an operator), each AVAILABLE -> LOCKED -> USED, or EXPIRED / REVOKED.

A claim or grant locks its template's row: the quantity and the per-payer and per-day limits
are counted and the issued count raised in that one transaction, so concurrent claims can
never issue more than allowed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.marketing import domain
from fulema.marketing.campaigns import rule_columns
from fulema.marketing.models import Coupon, CouponTemplate
from fulema.marketing.schemas import CouponOut, CouponTemplateIn, CouponTemplateOut

AVAILABLE, LOCKED, USED, EXPIRED, REVOKED = "AVAILABLE", "LOCKED", "USED", "EXPIRED", "REVOKED"


def template_view(t: CouponTemplate) -> CouponTemplateOut:
    return CouponTemplateOut(
        template_id=t.id, name=t.name, funder=t.funder, status=t.status,
        discount_type=t.discount_type, threshold=t.threshold.fen, off=t.off.fen,
        percent_bps=t.percent_bps, cap=t.cap.fen if t.cap else None,
        merchant_ids=t.merchant_ids, channels=t.channels, exclusive=t.exclusive,
        valid_days=t.valid_days, per_payer_limit=t.per_payer_limit,
        per_day_limit=t.per_day_limit, quantity=t.quantity, issued=t.issued,
        created_at=t.created_at)


def coupon_view(c: Coupon) -> CouponOut:
    return CouponOut(coupon_id=c.id, template_id=c.template_id, state=c.state,
                     valid_from=c.valid_from, expires_at=c.expires_at, order_id=c.order_id)


def scope_of(t: CouponTemplate) -> domain.Scope:
    return domain.Scope(merchant_ids=tuple(t.merchant_ids) if t.merchant_ids else None,
                        channels=tuple(t.channels) if t.channels else None)


async def create_template(db: Database, *, actor: str, body: CouponTemplateIn
                          ) -> CouponTemplateOut:
    if body.discount_type == "RANDOM_OFF":
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "coupons are AMOUNT_OFF, PERCENT_OFF or "
                                                      "INSTANT_OFF")
    if body.funder == "merchant" and not body.owner_merchant_id:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "a merchant-funded template needs owner_merchant_id")
    merchant_ids = [body.owner_merchant_id or ""] if body.funder == "merchant" else (
        body.merchant_ids)
    row = CouponTemplate(
        id=new_id("ctp"), name=body.name, funder=body.funder,
        owner_merchant_id=body.owner_merchant_id, status="ACTIVE", merchant_ids=merchant_ids,
        channels=[c.value for c in body.channels] if body.channels is not None else None,
        exclusive=body.exclusive, valid_days=body.valid_days,
        per_payer_limit=body.per_payer_limit, per_day_limit=body.per_day_limit,
        quantity=body.quantity, issued=0, created_by=actor, created_at=clock.now(),
        **rule_columns(body))
    async with db.transaction() as s:
        s.add(row)
        await s.flush()
        await audit.record(s, actor=actor, action="coupon_template.create",
                           target_type="coupon_template", target_id=row.id,
                           detail={"name": body.name, "quantity": body.quantity})
    return template_view(row)


async def issue(db: Database, *, template_id: str, payer_key: str, via: str,
                actor: str | None = None, merchant_id: str | None = None) -> CouponOut:
    """One coupon of the template for the payer (a claim through `merchant_id`, or an
    operator's grant)."""
    now = clock.now()
    day = now.strftime("%Y-%m-%d")
    async with db.transaction() as s:
        t = await s.get(CouponTemplate, template_id, with_for_update=True)
        if t is None or t.status != "ACTIVE":
            raise FulemaError(ErrorCode.COUPON_TEMPLATE_NOT_FOUND)
        if merchant_id is not None and t.merchant_ids is not None and (
                merchant_id not in t.merchant_ids):
            raise FulemaError(ErrorCode.COUPON_NOT_APPLICABLE,
                              "the template's coupons are not for this merchant")
        if t.issued >= t.quantity:
            raise FulemaError(ErrorCode.COUPON_LIMIT_REACHED, "no coupons of this template left")
        mine = (await s.execute(select(func.count()).select_from(Coupon).where(
            Coupon.template_id == template_id, Coupon.payer_key == payer_key))).scalar_one()
        if mine >= t.per_payer_limit:
            raise FulemaError(ErrorCode.COUPON_LIMIT_REACHED,
                              f"at most {t.per_payer_limit} per payer")
        today = (await s.execute(select(func.count()).select_from(Coupon).where(
            Coupon.template_id == template_id, Coupon.payer_key == payer_key,
            Coupon.claimed_day == day))).scalar_one()
        if today >= t.per_day_limit:
            raise FulemaError(ErrorCode.COUPON_LIMIT_REACHED,
                              f"at most {t.per_day_limit} per payer per day")
        t.issued += 1
        c = Coupon(id=new_id("cpn"), template_id=t.id, payer_key=payer_key, state=AVAILABLE,
                   via=via, valid_from=now, expires_at=now + timedelta(days=t.valid_days),
                   order_id=None, claimed_day=day, created_at=now, updated_at=now)
        s.add(c)
        if actor is not None:
            await s.flush()
            await audit.record(s, actor=actor, action="coupon.grant", target_type="coupon",
                               target_id=c.id, detail={"template_id": t.id})
        return coupon_view(c)


async def list_for_payer(db: Database, *, payer_key: str) -> list[CouponOut]:
    async with db.transaction() as s:
        rows = (await s.scalars(select(Coupon).where(Coupon.payer_key == payer_key)
                                .order_by(Coupon.created_at))).all()
        return [coupon_view(c) for c in rows]


async def revoke(db: Database, *, actor: str, coupon_id: str) -> CouponOut:
    async with db.transaction() as s:
        c = await s.get(Coupon, coupon_id, with_for_update=True)
        if c is None:
            raise FulemaError(ErrorCode.COUPON_NOT_FOUND)
        if c.state != AVAILABLE:
            raise FulemaError(ErrorCode.ILLEGAL_STATE_TRANSITION, f"a {c.state} coupon "
                                                                  "cannot be revoked")
        c.state, c.updated_at = REVOKED, clock.now()
        await audit.record(s, actor=actor, action="coupon.revoke", target_type="coupon",
                           target_id=c.id, detail={"template_id": c.template_id})
        return coupon_view(c)


async def usable(s: AsyncSession, *, payer_key: str, now: datetime
                 ) -> list[tuple[Coupon, CouponTemplate]]:
    rows = (await s.execute(select(Coupon, CouponTemplate).join(
        CouponTemplate, CouponTemplate.id == Coupon.template_id).where(
        Coupon.payer_key == payer_key, Coupon.state == AVAILABLE, Coupon.expires_at > now,
        Coupon.valid_from <= now).order_by(Coupon.expires_at, Coupon.id))).all()
    return [(c, t) for c, t in rows]


def refusal(c: Coupon | None, t: CouponTemplate | None, *, payer_key: str | None,
            merchant_id: str, channel: str, now: datetime) -> ErrorCode | None:
    """Why the payer cannot use this coupon on this order, or None."""
    if c is None or t is None:
        return ErrorCode.COUPON_NOT_FOUND
    if payer_key is None:
        return ErrorCode.PAYER_REQUIRED_FOR_DISCOUNT
    if c.payer_key != payer_key:
        return ErrorCode.COUPON_NOT_OWNED
    if not scope_of(t).covers(merchant_id=merchant_id, mcc=None, store_id=None,
                              channel=channel):
        return ErrorCode.COUPON_NOT_APPLICABLE
    if c.state == EXPIRED or not c.valid_from <= now < c.expires_at:
        return ErrorCode.COUPON_EXPIRED
    if c.state != AVAILABLE:
        return ErrorCode.COUPON_NOT_AVAILABLE
    return None


async def expire_coupons(db: Database, *, limit: int = 1000) -> int:
    """The scheduled job: AVAILABLE coupons past their date become EXPIRED."""
    now = clock.now()
    async with db.transaction() as s:
        ids = list((await s.scalars(select(Coupon.id).where(
            Coupon.state == AVAILABLE, Coupon.expires_at <= now).limit(limit))).all())
        if not ids:
            return 0
        done = await s.execute(update(Coupon).where(
            Coupon.id.in_(ids), Coupon.state == AVAILABLE).values(state=EXPIRED, updated_at=now))
        return int(done.rowcount)  # type: ignore[attr-defined]
