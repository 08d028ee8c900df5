"""Coupons: templates, and the coupons they issue to payers (claimed by the payer through the
merchant, or granted by an operator), each AVAILABLE -> LOCKED -> USED, or EXPIRED / REVOKED.

A claim or grant locks its template's row: the quantity and the per-payer and per-day limits
are counted and the issued count raised in that one transaction, so concurrent claims can
never issue more than allowed."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.marketing import domain
from fulema.marketing.campaigns import rule_columns
from fulema.marketing.models import Coupon, CouponTemplate
from fulema.marketing.schemas import (
    CouponOut,
    CouponTemplateIn,
    CouponTemplateOut,
    GrantRuleIn,
    GrantRuleOut,
)

log = structlog.get_logger(__name__)

AVAILABLE, LOCKED, USED, EXPIRED, REVOKED = "AVAILABLE", "LOCKED", "USED", "EXPIRED", "REVOKED"
GRANT_EVENTS = ("payment.succeeded",)


def template_view(t: CouponTemplate) -> CouponTemplateOut:
    return CouponTemplateOut(
        template_id=t.id, name=t.name, funder=t.funder, status=t.status,
        discount_type=t.discount_type, threshold=t.threshold.fen, off=t.off.fen,
        percent_bps=t.percent_bps, cap=t.cap.fen if t.cap else None,
        merchant_ids=t.merchant_ids, channels=t.channels, exclusive=t.exclusive,
        valid_days=t.valid_days, per_payer_limit=t.per_payer_limit,
        per_day_limit=t.per_day_limit, quantity=t.quantity, issued=t.issued,
        grant=GrantRuleOut(on=t.grant_event, min_amount=(t.grant_min_amount or Money(1)).fen,
                           merchant_ids=t.grant_merchant_ids) if t.grant_event else None,
        created_at=t.created_at)


def coupon_view(c: Coupon) -> CouponOut:
    return CouponOut(coupon_id=c.id, template_id=c.template_id, state=c.state,
                     valid_from=c.valid_from, expires_at=c.expires_at, order_id=c.order_id)


TEMPLATES_MEMO = "marketing.template_scopes"  # the quote's per-process memo of template scopes


async def template_scopes(s: AsyncSession) -> list[domain.Scope]:
    """Every template's merchant and channel scope (the quote skips the payer's coupons where
    none covers the order)."""
    rows = (await s.execute(select(CouponTemplate.merchant_ids, CouponTemplate.channels))).all()
    return [domain.Scope(merchant_ids=tuple(m) if m else None, channels=tuple(c) if c else None)
            for m, c in rows]


def scope_of(t: CouponTemplate) -> domain.Scope:
    return domain.Scope(merchant_ids=tuple(t.merchant_ids) if t.merchant_ids else None,
                        channels=tuple(t.channels) if t.channels else None)


def check_grant_rule(rule: GrantRuleIn, *, template_merchants: list[str] | None,
                     max_order_fen: int) -> None:
    """COUPON_GRANT_RULE_INVALID unless the rule can be applied as written: a known event, a
    minimum a real order can reach, and merchants the template's coupons are good at (a
    merchant-funded template grants on its own merchant's payments only)."""
    bad = ErrorCode.COUPON_GRANT_RULE_INVALID
    if rule.on not in GRANT_EVENTS:
        raise FulemaError(bad, f"grants happen on {', '.join(GRANT_EVENTS)} only")
    if not 1 <= rule.min_amount <= max_order_fen:
        raise FulemaError(bad, f"min_amount must be 1 to {max_order_fen} fen")
    if rule.merchant_ids is not None:
        if not rule.merchant_ids or any(not m for m in rule.merchant_ids):
            raise FulemaError(bad, "merchant_ids must name merchants, or be null for the "
                                   "template's own scope")
        if template_merchants is not None and not set(rule.merchant_ids) <= set(
                template_merchants):
            raise FulemaError(bad, "merchant_ids must be within the template's merchants")


async def create_template(db: Database, *, actor: str, body: CouponTemplateIn,
                          max_order_fen: int = 10**10) -> CouponTemplateOut:
    if body.discount_type == "RANDOM_OFF":
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "coupons are AMOUNT_OFF, PERCENT_OFF or "
                                                      "INSTANT_OFF")
    if body.funder == "merchant" and not body.owner_merchant_id:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "a merchant-funded template needs owner_merchant_id")
    merchant_ids = [body.owner_merchant_id or ""] if body.funder == "merchant" else (
        body.merchant_ids)
    rule = body.grant
    if rule is not None:
        check_grant_rule(rule, template_merchants=merchant_ids, max_order_fen=max_order_fen)
    row = CouponTemplate(
        id=new_id("ctp"), name=body.name, funder=body.funder,
        owner_merchant_id=body.owner_merchant_id, status="ACTIVE", merchant_ids=merchant_ids,
        channels=[c.value for c in body.channels] if body.channels is not None else None,
        exclusive=body.exclusive, valid_days=body.valid_days,
        per_payer_limit=body.per_payer_limit, per_day_limit=body.per_day_limit,
        quantity=body.quantity, issued=0, created_by=actor, created_at=clock.now(),
        grant_event=rule.on if rule else None,
        grant_min_amount=Money(rule.min_amount) if rule else None,
        grant_merchant_ids=rule.merchant_ids if rule else None,
        **rule_columns(body))
    async with db.transaction() as s:
        s.add(row)
        await s.flush()
        await audit.record(s, actor=actor, action="coupon_template.create",
                           target_type="coupon_template", target_id=row.id,
                           detail={"name": body.name, "quantity": body.quantity,
                                   "grant": rule.model_dump() if rule else None})
    db.memo.pop(TEMPLATES_MEMO, None)  # this process quotes its coupons at once
    return template_view(row)


async def issue(db: Database, *, template_id: str, payer_key: str, via: str,
                actor: str | None = None, merchant_id: str | None = None) -> CouponOut:
    """One coupon of the template for the payer (a claim through `merchant_id`, or an
    operator's grant)."""
    async with db.transaction() as s:
        t = await s.get(CouponTemplate, template_id, with_for_update=True)
        if t is None or t.status != "ACTIVE":
            raise FulemaError(ErrorCode.COUPON_TEMPLATE_NOT_FOUND)
        if merchant_id is not None and t.merchant_ids is not None and (
                merchant_id not in t.merchant_ids):
            raise FulemaError(ErrorCode.COUPON_NOT_APPLICABLE,
                              "the template's coupons are not for this merchant")
        c = await _issue_in(s, t, payer_key=payer_key, via=via, now=clock.now())
        if actor is not None:
            await s.flush()
            await audit.record(s, actor=actor, action="coupon.grant", target_type="coupon",
                               target_id=c.id, detail={"template_id": t.id})
        return coupon_view(c)


async def _issue_in(s: AsyncSession, t: CouponTemplate, *, payer_key: str, via: str,
                    now: datetime, source_order_id: str | None = None) -> Coupon:
    """Issue one coupon of `t` (its row locked by the caller) in the caller's transaction,
    COUPON_LIMIT_REACHED (nothing written) when the quantity or a payer limit is used up."""
    day = now.strftime("%Y-%m-%d")
    if t.issued >= t.quantity:
        raise FulemaError(ErrorCode.COUPON_LIMIT_REACHED, "no coupons of this template left")
    mine = (await s.execute(select(func.count()).select_from(Coupon).where(
        Coupon.template_id == t.id, Coupon.payer_key == payer_key))).scalar_one()
    if mine >= t.per_payer_limit:
        raise FulemaError(ErrorCode.COUPON_LIMIT_REACHED,
                          f"at most {t.per_payer_limit} per payer")
    today = (await s.execute(select(func.count()).select_from(Coupon).where(
        Coupon.template_id == t.id, Coupon.payer_key == payer_key,
        Coupon.claimed_day == day))).scalar_one()
    if today >= t.per_day_limit:
        raise FulemaError(ErrorCode.COUPON_LIMIT_REACHED,
                          f"at most {t.per_day_limit} per payer per day")
    t.issued += 1
    c = Coupon(id=new_id("cpn"), template_id=t.id, payer_key=payer_key, state=AVAILABLE,
               via=via, valid_from=now, expires_at=now + timedelta(days=t.valid_days),
               order_id=None, claimed_day=day, source_order_id=source_order_id,
               created_at=now, updated_at=now)
    s.add(c)
    return c


async def granting_templates(s: AsyncSession) -> list[str]:
    """The ids of the active templates that grant on `payment.succeeded`, in id order (the
    order their rows are locked in): usually none, and then a paid order grants nothing."""
    return list((await s.scalars(select(CouponTemplate.id).where(
        CouponTemplate.grant_event == "payment.succeeded", CouponTemplate.status == "ACTIVE")
        .order_by(CouponTemplate.id))).all())


async def grant_on_payment(s: AsyncSession, *, order_id: str, merchant_id: str, channel: str,
                           amount: Money, payer_key: str | None,
                           template_ids: list[str] | None = None) -> list[str]:
    """The coupons a paid order earns its payer from templates that grant on
    `payment.succeeded`, in the caller's transaction (the consumer's, with its receipt).
    `template_ids`: `granting_templates`, read once for a round of payments.

    Each matching template's row is locked (as a claim locks it), so grants and claims count
    the limits one at a time; a template whose quantity or payer limits are used up, or that
    already granted for this order, is skipped (logged), never an error that would stall the
    consumer. Returns the ids of the coupons issued."""
    if payer_key is None:
        return []
    now = clock.now()
    ids = template_ids if template_ids is not None else await granting_templates(s)
    issued: list[str] = []
    for template_id in ids:
        t = await s.get(CouponTemplate, template_id, with_for_update=True,
                        populate_existing=True)
        if t is None or t.status != "ACTIVE" or not _grant_applies(
                t, merchant_id=merchant_id, channel=channel, amount=amount):
            continue
        if (await s.scalar(select(Coupon.id).where(
                Coupon.template_id == t.id, Coupon.source_order_id == order_id))) is not None:
            continue  # granted for this order already (an operator replay, a second consumer)
        try:
            c = await _issue_in(s, t, payer_key=payer_key, via="EVENT", now=now,
                                source_order_id=order_id)
        except FulemaError as exc:
            log.info("marketing.grant_skipped", template_id=t.id, order_id=order_id,
                     code=exc.code.value)
            continue
        issued.append(c.id)
    return issued


def _grant_applies(t: CouponTemplate, *, merchant_id: str, channel: str, amount: Money
                   ) -> bool:
    merchants = t.grant_merchant_ids if t.grant_merchant_ids is not None else t.merchant_ids
    if merchants is not None and merchant_id not in merchants:
        return False
    if t.channels is not None and channel not in t.channels:
        return False
    return amount >= (t.grant_min_amount or Money(1))


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
