"""Onboarding use cases, one transaction each: which registrations a merchant needs, what the
channels said of them, the operators' corrections, and the one question payments asks (is this
merchant registered at this channel, and under which sub-merchant id?).

Nothing here talks to a channel: `onboarding.jobs` sends and asks (outside any transaction),
then records the answer here under the row's lock, checking the row is still where it was
when the question was asked (an operator may have acted in between).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Select, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.channels.onboarding import Application, MerchantProfile, ReviewResult
from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import publish
from fulema.core.ids import new_id
from fulema.core.masking import mask_phone
from fulema.merchants import service as merchants
from fulema.onboarding import domain
from fulema.onboarding.domain import Observed, RegistrationState
from fulema.onboarding.models import Registration, Supplement

S = RegistrationState


class RegistrationView(BaseModel):
    """A registration as operators and the merchant see it (no personal data in it)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    merchant_id: str
    channel: str
    version: int
    state: RegistrationState
    sub_merchant_id: str | None
    reason: str | None
    action_url: str | None
    missing: list[str] | None
    last_error: str | None
    attempts: int
    submitted_at: datetime | None
    activated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SupplementView(BaseModel):
    merchant_id: str
    contact_email: str | None  # masked
    service_phone: str | None
    settlement_bank: str | None
    address_code: str | None
    wechat_sub_appid: str | None
    updated_by: str
    updated_at: datetime


def view(r: Registration) -> RegistrationView:
    return RegistrationView.model_validate(r)


def _mask_email(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None if not email else "****"
    user, _, host = email.partition("@")
    return f"{user[:1]}****@{host}"


# -- the profile the channels are told -------------------------------------------------------

async def profile_of(s: AsyncSession, merchant_id: str) -> tuple[MerchantProfile, str]:
    """The merchant's profile as sent to the channels, and the merchant's status."""
    facts = await merchants.registration_facts(s, merchant_id=merchant_id)
    extra = await s.get(Supplement, merchant_id)
    return MerchantProfile(
        name=facts.name, short_name=facts.short_name, licence_no=facts.licence_no,
        legal_person=facts.legal_person, contact_name=facts.contact_name,
        contact_phone=facts.contact_phone, mcc=facts.mcc,
        settlement_account=facts.settlement_account,
        settlement_account_name=facts.settlement_account_name,
        store_name=facts.store_name, store_address=facts.store_address,
        contact_email=extra.contact_email if extra else None,
        service_phone=extra.service_phone if extra else None,
        settlement_bank=extra.settlement_bank if extra else None,
        address_code=extra.address_code if extra else None), facts.status


def fingerprint(profile: MerchantProfile) -> str:
    """SHA-256 over the profile: a different value means the channel must be told again."""
    text = json.dumps(profile.as_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# -- which registrations a merchant needs ----------------------------------------------------

async def _latest(s: AsyncSession, merchant_id: str, channel: str) -> Registration | None:
    return await s.scalar(select(Registration).where(
        Registration.merchant_id == merchant_id, Registration.channel == channel)
        .order_by(Registration.version.desc()).limit(1).with_for_update())


def _new(merchant_id: str, channel: str, version: int, fp: str) -> Registration:
    now = clock.now()
    return Registration(id=new_id("reg"), merchant_id=merchant_id, channel=channel,
                        version=version, state=S.PENDING.value, fingerprint=fp, attempts=0,
                        next_check_at=now, created_at=now, updated_at=now)


async def sync_merchant(s: AsyncSession, *, merchant_id: str, channels: Iterable[str],
                        force: bool = False) -> list[Registration]:
    """The registrations the merchant's current profile needs, in the caller's transaction:
    idempotent (the same profile twice makes nothing new). A channel it has never been
    registered at gets version 1; a changed profile (name, licence, account, store...) gets a
    new version unless one not yet sent can simply carry it; `force` (an operator's resubmit)
    makes a new version even for the same profile. Only an ACTIVE merchant is registered."""
    profile, status = await profile_of(s, merchant_id)
    if status != "ACTIVE":
        return []
    fp = fingerprint(profile)
    made: list[Registration] = []
    for channel in channels:
        latest = await _latest(s, merchant_id, channel)
        if latest is not None and latest.state == S.PENDING.value:
            if latest.fingerprint != fp:
                latest.fingerprint, latest.missing, latest.next_check_at = fp, None, clock.now()
                latest.updated_at = clock.now()
            continue
        if latest is not None and latest.fingerprint == fp and not force:
            continue
        if latest is not None and force and latest.state != S.REJECTED.value:
            raise FulemaError(ErrorCode.REGISTRATION_STATE_INVALID,
                              f"only a REJECTED registration is resubmitted; this one is "
                              f"{latest.state}")
        row = _new(merchant_id, channel, (latest.version if latest else 0) + 1, fp)
        s.add(row)
        made.append(row)
        _changed(s, row, None)
    await s.flush()
    return made


def _changed(s: AsyncSession, r: Registration, before: str | None) -> None:
    publish(s, "onboarding.state_changed", {
        "registration_id": r.id, "merchant_id": r.merchant_id, "channel": r.channel,
        "version": r.version, "from_state": before, "to_state": r.state,
        "sub_merchant_id": r.sub_merchant_id})


# -- what the jobs send and what the channels said -------------------------------------------

@dataclass(frozen=True)
class Due:
    registration_id: str
    channel: str
    state: RegistrationState
    channel_ref: str | None
    application: Application


async def due(db: Database, *, limit: int = 50, force: bool = False) -> list[str]:
    """Registrations to send (PENDING) or ask about (with the channel), whose time has come;
    `force` (an operator's "poll now"): every one with the channel, whatever its time."""
    now = clock.now()
    with_channel = [x.value for x in domain.IN_REVIEW]
    when = Registration.next_check_at <= now
    async with db.transaction() as s:
        rows = await s.scalars(select(Registration.id).where(
            (Registration.state.in_(with_channel) | when) if force else when,
            Registration.state.in_([x.value for x in domain.OPEN]))
            .order_by(Registration.next_check_at, Registration.id).limit(limit))
        return list(rows)


async def prepare(db: Database, *, registration_id: str, required: frozenset[str]
                  ) -> Due | None:
    """The application to send or ask about; None (and the missing fields recorded) when the
    merchant lacks a field the channel needs: nothing is sent then."""
    async with db.transaction() as s:
        r = await _row(s, registration_id, lock=True)
        profile, _ = await profile_of(s, r.merchant_id)
        state = S(r.state)
        if state == S.PENDING:
            missing = profile.missing(required)
            if missing:
                r.missing, r.last_error = missing, ErrorCode.ONBOARDING_FIELDS_MISSING.value
                r.next_check_at, r.updated_at = None, clock.now()  # until the profile changes
                return None
            r.missing = None
        return Due(r.id, r.channel, state, r.channel_ref,
                   Application(application_no=r.id, merchant_id=r.merchant_id, profile=profile))


async def record(db: Database, settings: Settings, *, registration_id: str,
                 asked_in: RegistrationState, result: ReviewResult | None,
                 refusal: tuple[str, str] | None = None, unavailable: str | None = None) -> None:
    """What the channel answered (a review result, an outright refusal, or nothing): the
    state it leads to, under the row's lock, and only if the row is still where it was."""
    async with db.transaction() as s:
        r = await _row(s, registration_id, lock=True)
        if r.state != asked_in.value:
            return  # an operator (or another round) moved it meanwhile: ask again later
        now = clock.now()
        r.updated_at = now
        r.next_check_at = now + timedelta(seconds=settings.onboarding_poll_seconds)
        if unavailable is not None:
            r.attempts += 1
            r.last_error = unavailable[:256]
            return
        before = r.state
        if refusal is not None:
            r.state, r.reason, r.last_error = S.REJECTED.value, f"{refusal[0]}: {refusal[1]}"[:512], None
            r.next_check_at = None
            _changed(s, r, before)
            return
        assert result is not None
        r.last_error = None
        if asked_in == S.PENDING:
            r.attempts += 1
            r.submitted_at = now
            r.state = S.SUBMITTED.value
        r.channel_ref = result.channel_ref or r.channel_ref
        seen = Observed(result.status.value)
        # An accepted application is SUBMITTED; the next question tells its review state.
        target = None if asked_in == S.PENDING and seen == Observed.REVIEWING \
            else domain.after_observation(S(r.state), seen)
        if target is not None:
            r.state = target.value
            r.reason = result.reason[:512] if result.reason else None
            r.action_url = result.action_url
            if target == S.ACTIVE:
                r.sub_merchant_id = result.sub_merchant_id
                r.activated_at, r.next_check_at = now, None
                await _supersede(s, r)
            elif target == S.REJECTED:
                r.next_check_at = None
        if r.state != before:
            _changed(s, r, before)


async def _supersede(s: AsyncSession, r: Registration) -> None:
    """One ACTIVE version per merchant x channel: the newest. Older ACTIVE or SUSPENDED ones
    are SUPERSEDED; a late approval of an older version supersedes itself."""
    others = await s.scalars(select(Registration).where(
        Registration.merchant_id == r.merchant_id, Registration.channel == r.channel,
        Registration.id != r.id,
        Registration.state.in_([S.ACTIVE.value, S.SUSPENDED.value])).with_for_update())
    for o in others:
        older = o if o.version < r.version else r
        if older.state == S.SUPERSEDED.value:
            continue
        before = older.state
        older.state = domain.move(S(older.state), S.SUPERSEDED).value
        older.updated_at = clock.now()
        _changed(s, older, before)


# -- operators -------------------------------------------------------------------------------

async def _row(s: AsyncSession, registration_id: str, *, lock: bool = False) -> Registration:
    stmt = select(Registration).where(Registration.id == registration_id)
    r = await s.scalar(stmt.with_for_update() if lock else stmt)
    if r is None:
        raise FulemaError(ErrorCode.REGISTRATION_NOT_FOUND, f"no registration {registration_id}")
    return r


async def check_fields(db: Database, *, merchant_id: str,
                       required: dict[str, frozenset[str]]) -> dict[str, list[str]]:
    """Per channel, the fields the merchant lacks (empty: ready to send)."""
    async with db.transaction() as s:
        profile, _ = await profile_of(s, merchant_id)
    return {channel: profile.missing(fields) for channel, fields in required.items()}


async def register(db: Database, *, merchant_id: str, channel: str, required: frozenset[str],
                   actor: str) -> list[RegistrationView]:
    """An operator asks for the merchant's registration at a channel now: refused with
    ONBOARDING_FIELDS_MISSING (listing them; nothing recorded, nothing sent) when the merchant
    lacks a field the channel needs, MERCHANT_NOT_ACTIVE before activation."""
    async with db.transaction() as s:
        profile, status = await profile_of(s, merchant_id)
        if status != "ACTIVE":
            raise FulemaError(ErrorCode.MERCHANT_NOT_ACTIVE,
                              "a merchant is registered at the channels once it is active")
        missing = profile.missing(required)
        if missing:
            raise FulemaError(ErrorCode.ONBOARDING_FIELDS_MISSING,
                              f"{channel} needs: {', '.join(missing)}", missing=missing,
                              channel=channel)
        await sync_merchant(s, merchant_id=merchant_id, channels=[channel])
        await audit.record(s, actor=actor, action="onboarding.register", target_type="merchant",
                           target_id=merchant_id, detail={"channel": channel})
        rows = await s.scalars(select(Registration).where(
            Registration.merchant_id == merchant_id, Registration.channel == channel)
            .order_by(Registration.version))
        return [view(r) for r in rows]


async def resubmit(db: Database, *, registration_id: str, actor: str) -> RegistrationView:
    """A REJECTED registration, corrected (or not), as a new version: REGISTRATION_STATE_INVALID
    for any other state, or when a newer version already exists."""
    async with db.transaction() as s:
        r = await _row(s, registration_id)
        latest = await _latest(s, r.merchant_id, r.channel)
        if latest is None or latest.id != r.id or r.state != S.REJECTED.value:
            raise FulemaError(ErrorCode.REGISTRATION_STATE_INVALID,
                              "only the latest registration, when REJECTED, is resubmitted")
        made = await sync_merchant(s, merchant_id=r.merchant_id, channels=[r.channel],
                                   force=True)
        if not made:
            raise FulemaError(ErrorCode.MERCHANT_NOT_ACTIVE, "the merchant is not active")
        await audit.record(s, actor=actor, action="onboarding.resubmit",
                           target_type="registration", target_id=r.id,
                           detail={"new_registration": made[0].id, "channel": r.channel})
        return view(made[0])


async def suspend(db: Database, *, registration_id: str, actor: str, reason: str,
                  resume: bool = False) -> RegistrationView:
    """The bank stops (or resumes) the merchant's payments on one channel."""
    async with db.transaction() as s:
        r = await _row(s, registration_id, lock=True)
        before = r.state
        r.state = domain.move(S(r.state), S.ACTIVE if resume else S.SUSPENDED).value
        r.reason = None if resume else reason
        r.updated_at = clock.now()
        _changed(s, r, before)
        await audit.record(s, actor=actor, action="onboarding.resume" if resume
                           else "onboarding.suspend", target_type="registration",
                           target_id=r.id, detail={"reason": reason, "channel": r.channel})
        return view(r)


async def set_supplement(db: Database, *, merchant_id: str, actor: str,
                         values: dict[str, str | None]) -> SupplementView:
    """The channel fields the merchant profile lacks; a change re-registers where needed
    (the next round of the onboarding job sees the new fingerprint via `sync_merchant`)."""
    async with db.transaction() as s:
        await merchants.registration_facts(s, merchant_id=merchant_id)  # MERCHANT_NOT_FOUND
        row = await s.get(Supplement, merchant_id, with_for_update=True)
        if row is None:
            row = Supplement(merchant_id=merchant_id, updated_by=actor, updated_at=clock.now())
            s.add(row)
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_by, row.updated_at = actor, clock.now()
        await audit.record(s, actor=actor, action="onboarding.supplement", target_type="merchant",
                           target_id=merchant_id, detail={"fields": sorted(values)})
        publish(s, "onboarding.profile_changed", {"merchant_id": merchant_id})
        await s.flush()
        return SupplementView(merchant_id=merchant_id,
                              contact_email=_mask_email(row.contact_email),
                              service_phone=mask_phone(row.service_phone),
                              settlement_bank=row.settlement_bank,
                              address_code=row.address_code,
                              wechat_sub_appid=row.wechat_sub_appid, updated_by=row.updated_by,
                              updated_at=row.updated_at)


# -- reads -----------------------------------------------------------------------------------

async def list_registrations(db: Database, *, merchant_id: str,
                             current_only: bool = False) -> list[RegistrationView]:
    async with db.transaction() as s:
        rows = list(await s.scalars(select(Registration).where(
            Registration.merchant_id == merchant_id)
            .order_by(Registration.channel, Registration.version)))
    if current_only:
        latest: dict[str, Registration] = {}
        for r in rows:
            latest[r.channel] = r
        rows = list(latest.values())
    return [view(r) for r in rows]


async def get_registration(db: Database, *, registration_id: str) -> RegistrationView:
    async with db.transaction() as s:
        return view(await _row(s, registration_id))


async def active_sub_merchant(s: AsyncSession, *, merchant_id: str, channel: str) -> str | None:
    """The sub-merchant id the merchant takes payments under at this channel, or None."""
    return await s.scalar(select(Registration.sub_merchant_id).where(
        Registration.merchant_id == merchant_id, Registration.channel == channel,
        Registration.state == S.ACTIVE.value).order_by(Registration.version.desc()).limit(1))


async def check_can_take(s: AsyncSession, settings: Settings, *, merchant_id: str,
                         channel: str) -> str | None:
    """Payments asks before it records an order: with onboarding required, CHANNEL_NOT_REGISTERED
    unless the merchant's registration at the channel is ACTIVE. Answers the sub-merchant id
    the order goes out under (the channel's partner form), required or not: None when the
    merchant has no ACTIVE registration there (the direct form, single-merchant mode)."""
    sub = await active_sub_merchant(s, merchant_id=merchant_id, channel=channel)
    return _refuse_unless_registered(settings, sub=sub, channel=channel)


def _refuse_unless_registered(settings: Settings, *, sub: str | None, channel: str) -> str | None:
    return _refuse_unless_registered_to(settings.onboarding_required, sub=sub, channel=channel)


def _refuse_unless_registered_to(required: bool, *, sub: str | None, channel: str) -> str | None:
    if sub is None and required:
        raise FulemaError(ErrorCode.CHANNEL_NOT_REGISTERED,
                          f"the merchant is not registered (or is suspended) at {channel}")
    return sub


# `active_sub_merchant` as a scalar subquery riding on the merchants context's pay-in check
# (its own SELECT of the merchant's status): built once, both questions in one round trip.
_PAY_IN_AND_SUB = merchants.pay_in_check_with(
    select(Registration.sub_merchant_id).where(
        Registration.merchant_id == bindparam("b_ob_mid"),
        Registration.channel == bindparam("b_ob_channel"),
        Registration.state == S.ACTIVE.value)
    .order_by(Registration.version.desc()).limit(1).scalar_subquery())


async def check_pay_in(s: AsyncSession, settings: Settings, *, merchant_id: str,
                       channel: str) -> tuple[merchants.MerchantSnapshot, str | None]:
    """`merchants.check_can_pay_in` then `check_can_take`, in one statement: what payments
    asks on every order create. The same refusals in the same order (the merchant's first:
    MERCHANT_NOT_FOUND / _NOT_ACTIVE / _FROZEN / _CLOSED, then CHANNEL_NOT_REGISTERED)."""
    merchant, sub = await merchants.check_can_pay_in_with(
        s, _PAY_IN_AND_SUB, merchant_id=merchant_id,
        params={"b_ob_mid": merchant_id, "b_ob_channel": channel})
    return merchant, _refuse_unless_registered(settings, sub=sub, channel=channel)


@dataclass(frozen=True)
class PayInGate:
    """`check_pay_in` for a statement that writes only when the merchant passes it (payments'
    one-statement order create on PostgreSQL): `rows` is the check's SELECT (the merchant's
    columns and `extra`, the ACTIVE registration's sub-merchant id), bound by `params`, for the
    caller to make a CTE of; `passes` is the SQL form of the check over that CTE, to filter its
    writes on; `check` answers from the row the statement returned, with the same refusals in
    the same order as `check_pay_in`. The two agree by construction: both are made here from
    `merchants.pays_in` / `payment_refusal` and the same `onboarding_required`."""

    rows: Select[Any]
    params: dict[str, Any]
    required: bool
    merchant_id: str
    channel: str

    def passes(self, g: Any) -> ColumnElement[bool]:
        active = merchants.pays_in(g.c.status)
        return and_(active, g.c.extra.is_not(None)) if self.required else active

    def check(self, row: Any) -> tuple[merchants.MerchantSnapshot, str | None]:
        merchant = merchants.pay_in_row(row, merchant_id=self.merchant_id)
        return merchant, _refuse_unless_registered_to(self.required, sub=row.extra,
                                                      channel=self.channel)


def pay_in_gate(settings: Settings, *, merchant_id: str, channel: str) -> PayInGate:
    return PayInGate(rows=_PAY_IN_AND_SUB, required=settings.onboarding_required,
                     params={"b_mid": merchant_id, "b_ob_mid": merchant_id,
                             "b_ob_channel": channel},
                     merchant_id=merchant_id, channel=channel)


async def merchant_app_id(db: Database, *, merchant_id: str, channel: str) -> str | None:
    """The merchant's own app at the channel (WeChat `sub_appid`), or None: the orders its own
    app makes carry it, with the payer's id under that app (docs/onboarding.md)."""
    if channel != "wechat":
        return None
    async with db.transaction() as s:
        return await s.scalar(select(Supplement.wechat_sub_appid).where(
            Supplement.merchant_id == merchant_id))


async def channels_taking(s: AsyncSession, settings: Settings, *, merchant_id: str,
                          channels: Iterable[str]) -> list[str]:
    """Of `channels`, those the merchant may take payments on (the cashier offers only these)."""
    wanted = list(channels)
    if not settings.onboarding_required:
        return wanted
    active = set(await s.scalars(select(Registration.channel).where(
        Registration.merchant_id == merchant_id, Registration.state == S.ACTIVE.value)))
    return [c for c in wanted if c in active]


async def offered_channels(db: Database, settings: Settings, *, merchant_id: str,
                           channels: Iterable[str]) -> list[str]:
    """`channels_taking` in a transaction of its own: what the cashier offers a payer."""
    wanted = list(channels)
    if not settings.onboarding_required:
        return wanted
    async with db.transaction() as s:
        return await channels_taking(s, settings, merchant_id=merchant_id, channels=wanted)


async def merchant_of_sub(s: AsyncSession, *, channel: str, sub_merchant_id: str) -> str | None:
    """The merchant a channel's sub-merchant id belongs to (callbacks are routed by it)."""
    return await s.scalar(select(Registration.merchant_id).where(
        Registration.channel == channel, Registration.sub_merchant_id == sub_merchant_id)
        .limit(1))


async def count_by_state(db: Database) -> dict[str, int]:
    async with db.transaction() as s:
        rows = await s.execute(select(Registration.state, func.count()).group_by(
            Registration.state))
        return {str(state): int(n) for state, n in rows.all()}
