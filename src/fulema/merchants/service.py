"""Merchant use cases. Each opens one transaction; each change writes its audit row and its
outbox event in that same transaction, so neither can exist without the other.

Other contexts call only the "payments-facing" functions at the bottom of the public section
(`get_app_credential`, `check_can_pay`, `get_plate`, `get_store`, `fee_rate_bps`, ...) and get
frozen dataclasses, never ORM rows.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from sqlalchemy import bindparam, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import crypto
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import publish
from fulema.core.ids import new_id
from fulema.merchants import domain
from fulema.merchants.domain import MerchantAction, MerchantStatus, PlateStatus, TerminalKind
from fulema.merchants.models import (
    AppCredentialRow,
    FeeRate,
    Merchant,
    MerchantEvent,
    Plate,
    Store,
    Terminal,
)

# --- what callers get back -------------------------------------------------------------------


@dataclass(frozen=True)
class AppCredential:
    """What the gateway needs to verify a merchant's request and sign its notifications."""

    app_id: str
    merchant_id: str
    secret: str
    rsa_public_key_pem: str | None
    notify_url: str | None
    active: bool


@dataclass(frozen=True)
class MerchantSnapshot:
    id: str
    name: str
    short_name: str
    status: str
    mcc: str


@dataclass(frozen=True)
class PlateInfo:
    code: str
    merchant_id: str
    merchant_name: str
    store_id: str
    store_name: str


@dataclass(frozen=True)
class StoreInfo:
    id: str
    merchant_id: str
    name: str
    address: str
    active: bool


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
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MerchantPage:
    data: tuple[MerchantView, ...]
    has_more: bool


@dataclass(frozen=True)
class TerminalInfo:
    id: str
    merchant_id: str
    store_id: str
    kind: str
    serial_no: str
    speaker_id: str | None
    active: bool


@dataclass(frozen=True)
class AppView:
    """An app as operators see it after creation: everything but the secret."""

    app_id: str
    merchant_id: str
    name: str
    rsa_public_key_pem: str | None
    notify_url: str | None
    active: bool
    secret_rotated_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class IssuedSecret:
    """Returned by create and rotate only: the one time the secret leaves the platform."""

    app: AppView
    secret: str


@dataclass(frozen=True)
class FeeRateView:
    channel: str
    bps: int
    is_default: bool


@dataclass(frozen=True)
class PlateView:
    code: str
    merchant_id: str
    store_id: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class EventView:
    seq: int
    action: str
    from_status: str | None
    to_status: str
    reason: str | None
    operator: str
    at: datetime


@dataclass(frozen=True)
class MerchantDetail:
    merchant: MerchantView
    stores: tuple[StoreInfo, ...]
    terminals: tuple[TerminalInfo, ...]
    apps: tuple[AppView, ...]
    fee_rates: tuple[FeeRateView, ...]
    plates: tuple[PlateView, ...]


@dataclass(frozen=True)
class DemoMerchant:
    merchant_id: str
    store_id: str
    cashier_terminal_id: str
    speaker_terminal_id: str
    app_id: str
    secret: str
    plate_code: str
    plate_url: str


# --- lifecycle -------------------------------------------------------------------------------


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
            await _refuse_taken_licence(s, licence)
            s.add(m)
            await s.flush()  # the parent row first: no relationship() orders the inserts
            _record(s, m, "apply", None, None, operator)
    except IntegrityError:  # a concurrent apply with this licence committed first?
        await _raise_if_licence_taken(db, licence)
        raise
    return _merchant_view(m)


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
            await _raise_if_licence_taken(db, licence)
        raise


# --- stores and terminals --------------------------------------------------------------------


async def add_store(db: Database, *, merchant_id: str, name: str, address: str,
                    operator: str) -> StoreInfo:
    async with db.transaction() as s:
        m = await _lock_open(s, merchant_id, "add a store")
        now = clock.now()
        store = Store(id=new_id("sto"), merchant_id=m.id, name=name, address=address, active=True,
                      created_at=now, updated_at=now)
        s.add(store)
        _record(s, m, "add_store", m.status, f"{store.id} {name}", operator)
        return _store_info(store)


async def disable_store(db: Database, *, merchant_id: str, store_id: str,
                        operator: str) -> StoreInfo:
    """Stops the store: its terminals are unbound (devices can move) and its plates disabled."""
    async with db.transaction() as s:
        m = await _lock(s, merchant_id)
        store = await _store_row(s, m.id, store_id)
        if store.active:
            now = clock.now()
            store.active, store.updated_at = False, now
            for t in await s.scalars(select(Terminal).where(Terminal.store_id == store.id,
                                                            Terminal.active.is_(True))):
                _deactivate_terminal(t, now)
            for p in await s.scalars(select(Plate).where(Plate.store_id == store.id,
                                                         Plate.status == PlateStatus.ACTIVE.value)):
                p.status, p.updated_at = PlateStatus.DISABLED.value, now
            _record(s, m, "disable_store", m.status, store.id, operator)
        return _store_info(store)


async def add_terminal(db: Database, *, merchant_id: str, store_id: str, kind: TerminalKind,
                       serial_no: str, operator: str, speaker_id: str | None = None) -> TerminalInfo:
    """Binds a device to an active store. A serial (per kind) or speaker id is bound once."""
    kind = TerminalKind(kind)
    domain.check_terminal(kind, speaker_id)
    serial_key = f"{kind.value}:{serial_no}"
    clash = [Terminal.active_serial_key == serial_key]
    if speaker_id:
        clash.append(Terminal.active_speaker_id == speaker_id)
    try:
        async with db.transaction() as s:
            m = await _lock_open(s, merchant_id, "add a terminal")
            store = await _store_row(s, m.id, store_id, active=True)
            taken = await s.scalar(select(Terminal.id).where(or_(*clash)).limit(1))
            if taken:
                raise _duplicate_terminal()
            now = clock.now()
            t = Terminal(id=new_id("trm"), merchant_id=m.id, store_id=store.id, kind=kind.value,
                         serial_no=serial_no, speaker_id=speaker_id, active=True,
                         active_serial_key=serial_key, active_speaker_id=speaker_id,
                         created_at=now, updated_at=now)
            s.add(t)
            _record(s, m, "add_terminal", m.status, f"{t.id} {kind.value} {serial_no}", operator)
    except IntegrityError as exc:  # the same device bound concurrently?
        async with db.transaction() as s:
            if await s.scalar(select(Terminal.id).where(or_(*clash)).limit(1)):
                raise _duplicate_terminal() from exc
        raise
    return _terminal_info(t)


async def disable_terminal(db: Database, *, merchant_id: str, store_id: str, terminal_id: str,
                           operator: str) -> TerminalInfo:
    async with db.transaction() as s:
        m = await _lock(s, merchant_id)
        t = await s.get(Terminal, terminal_id)
        if t is None or t.merchant_id != m.id or t.store_id != store_id:
            raise FulemaError(ErrorCode.TERMINAL_NOT_FOUND, f"no terminal {terminal_id} in this store")
        if t.active:
            _deactivate_terminal(t, clock.now())
            _record(s, m, "disable_terminal", m.status, t.id, operator)
        return _terminal_info(t)


# --- API credentials -------------------------------------------------------------------------


async def create_app_credential(db: Database, *, merchant_id: str, operator: str,
                                name: str = "default", rsa_public_key_pem: str | None = None,
                                notify_url: str | None = None) -> IssuedSecret:
    """A new app with a fresh HMAC secret, returned here and never again."""
    pem = _check_public_key(rsa_public_key_pem)
    _check_notify_url(notify_url)
    async with db.transaction() as s:
        m = await _lock_open(s, merchant_id, "create an app")
        now = clock.now()
        secret = _new_secret()
        row = AppCredentialRow(app_id=f"app_{secrets.token_hex(10)}", merchant_id=m.id, name=name,
                               secret=secret, rsa_public_key_pem=pem, notify_url=notify_url,
                               active=True, secret_rotated_at=now, created_at=now, updated_at=now)
        s.add(row)
        _record(s, m, "create_app", m.status, row.app_id, operator)
        return IssuedSecret(app=_app_view(row), secret=secret)


async def rotate_secret(db: Database, *, merchant_id: str, app_id: str,
                        operator: str) -> IssuedSecret:
    """A new secret replaces the old one at once (no overlap: a leaked secret dies now)."""
    async with db.transaction() as s:
        m = await _lock_open(s, merchant_id, "rotate a secret")
        row = await _app_row(s, m.id, app_id)
        if not row.active:
            raise FulemaError(ErrorCode.ILLEGAL_STATE_TRANSITION,
                              f"cannot rotate the secret of app {app_id}: it is disabled")
        now = clock.now()
        row.secret, row.secret_rotated_at, row.updated_at = _new_secret(), now, now
        _record(s, m, "rotate_secret", m.status, app_id, operator)
        _forget_credential(db, row.app_id)
        return IssuedSecret(app=_app_view(row), secret=row.secret)


async def disable_app(db: Database, *, merchant_id: str, app_id: str, operator: str) -> AppView:
    async with db.transaction() as s:
        m = await _lock(s, merchant_id)
        row = await _app_row(s, m.id, app_id)
        if row.active:
            row.active, row.updated_at = False, clock.now()
            _record(s, m, "disable_app", m.status, app_id, operator)
        _forget_credential(db, row.app_id)
        return _app_view(row)


# --- fee rates -------------------------------------------------------------------------------


async def set_fee_rate(db: Database, *, merchant_id: str, channel: str, bps: int,
                       operator: str) -> FeeRateView:
    domain.check_fee(channel, bps)
    async with db.transaction() as s:
        m = await _lock_open(s, merchant_id, "set a fee rate")
        row = await s.get(FeeRate, (m.id, channel))
        old = row.bps if row else domain.DEFAULT_FEE_BPS[channel]
        if row is None:
            s.add(FeeRate(merchant_id=m.id, channel=channel, bps=bps, updated_at=clock.now()))
        else:
            row.bps, row.updated_at = bps, clock.now()
        _record(s, m, "set_fee_rate", m.status, f"{channel} {old} -> {bps} bps", operator,
                extra={"channel": channel, "bps": bps, "previous_bps": old})
        return FeeRateView(channel=channel, bps=bps, is_default=False)


# --- QR plates -------------------------------------------------------------------------------


async def create_plate(db: Database, *, merchant_id: str, store_id: str, operator: str,
                       code: str | None = None) -> PlateView:
    """A static aggregated code for an active store. `code` is for the demo plate only;
    operators get an unguessable one."""
    async with db.transaction() as s:
        m = await _lock_open(s, merchant_id, "create a plate")
        store = await _store_row(s, m.id, store_id, active=True)
        if code is None:
            code = _new_plate_code()
            while await s.get(Plate, code) is not None:  # ~2^-48 per try; cheap to be sure
                code = _new_plate_code()
        now = clock.now()
        plate = Plate(code=code, merchant_id=m.id, store_id=store.id,
                      status=PlateStatus.ACTIVE.value, created_at=now, updated_at=now)
        s.add(plate)
        _record(s, m, "create_plate", m.status, f"{code} {store.id}", operator)
        return _plate_view(plate)


async def disable_plate(db: Database, *, code: str, operator: str) -> PlateView:
    async with db.transaction() as s:
        plate = await s.get(Plate, code)
        if plate is None:
            raise FulemaError(ErrorCode.PLATE_NOT_FOUND, f"no plate {code}")
        m = await _lock(s, plate.merchant_id)
        if plate.status == PlateStatus.ACTIVE.value:
            plate.status, plate.updated_at = PlateStatus.DISABLED.value, clock.now()
            _record(s, m, "disable_plate", m.status, code, operator)
        return _plate_view(plate)


# --- reading ---------------------------------------------------------------------------------


async def get_merchant(db: Database, *, merchant_id: str) -> MerchantDetail:
    async with db.transaction() as s:
        m = await _merchant_row(s, merchant_id)
        stores = await s.scalars(select(Store).where(Store.merchant_id == m.id).order_by(Store.id))
        terminals = await s.scalars(select(Terminal).where(Terminal.merchant_id == m.id)
                                    .order_by(Terminal.id))
        apps = await s.scalars(select(AppCredentialRow).where(AppCredentialRow.merchant_id == m.id)
                               .order_by(AppCredentialRow.created_at, AppCredentialRow.app_id))
        rates = {r.channel: r.bps for r in await s.scalars(
            select(FeeRate).where(FeeRate.merchant_id == m.id))}
        plates = await s.scalars(select(Plate).where(Plate.merchant_id == m.id)
                                 .order_by(Plate.created_at, Plate.code))
        return MerchantDetail(
            merchant=_merchant_view(m),
            stores=tuple(_store_info(x) for x in stores),
            terminals=tuple(_terminal_info(x) for x in terminals),
            apps=tuple(_app_view(x) for x in apps),
            fee_rates=tuple(FeeRateView(channel=c, bps=rates.get(c, domain.DEFAULT_FEE_BPS[c]),
                                        is_default=c not in rates) for c in domain.FEE_CHANNELS),
            plates=tuple(_plate_view(x) for x in plates))


async def list_merchants(db: Database, *, limit: int = 20, starting_after: str | None = None,
                         status: MerchantStatus | None = None) -> MerchantPage:
    """Oldest first by id (ids are time-ordered); `starting_after` is the last id seen."""
    if not 1 <= limit <= 100:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "limit: 1..100")
    query = select(Merchant).order_by(Merchant.id).limit(limit + 1)
    if starting_after:
        query = query.where(Merchant.id > starting_after)
    if status is not None:
        query = query.where(Merchant.status == MerchantStatus(status).value)
    async with db.transaction() as s:
        rows = list(await s.scalars(query))
    return MerchantPage(data=tuple(_merchant_view(m) for m in rows[:limit]),
                        has_more=len(rows) > limit)


async def list_events(db: Database, *, merchant_id: str) -> list[EventView]:
    """The merchant's audit trail, in the order it happened."""
    async with db.transaction() as s:
        await _merchant_row(s, merchant_id)
        rows = await s.scalars(select(MerchantEvent).where(MerchantEvent.merchant_id == merchant_id)
                               .order_by(MerchantEvent.seq))
        return [EventView(seq=e.seq, action=e.action, from_status=e.from_status,
                          to_status=e.to_status, reason=e.reason, operator=e.operator, at=e.at)
                for e in rows]


# --- used by the payments context and the gateway ---------------------------------------------


# Every signed request needs the app's secret; reading it from the database each time was a
# whole transaction on the payment hot path. Credentials are cached per process for a few
# seconds: a rotation or disable in this process takes effect at once, in other processes
# within CREDENTIAL_CACHE_SECONDS (a rotated secret should stay valid that long anyway).
CREDENTIAL_CACHE_SECONDS = 10.0


def _credential_cache(db: Database) -> dict[str, tuple[float, AppCredential]]:
    cache: dict[str, tuple[float, AppCredential]] = db.memo.setdefault("merchants.credentials", {})
    return cache


def _forget_credential(db: Database, app_id: str) -> None:
    _credential_cache(db).pop(app_id, None)


async def get_app_credential(db: Database, *, app_id: str) -> AppCredential:
    """APP_NOT_FOUND if the app does not exist or is disabled."""
    _credentials = _credential_cache(db)
    cached = _credentials.get(app_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    async with db.transaction() as s:
        row = await s.get(AppCredentialRow, app_id)
    if row is None or not row.active:
        _forget_credential(db, app_id)
        raise FulemaError(ErrorCode.APP_NOT_FOUND)
    credential = _credential(row)
    if len(_credentials) > 100_000:
        _credentials.clear()
    _credentials[app_id] = (time.monotonic() + CREDENTIAL_CACHE_SECONDS, credential)
    return credential


async def default_app_for_merchant(db: Database, *, merchant_id: str) -> AppCredential | None:
    """The merchant's oldest active app (the cashier files plate orders under it), if any."""
    async with db.transaction() as s:
        row = await s.scalar(select(AppCredentialRow)
                             .where(AppCredentialRow.merchant_id == merchant_id,
                                    AppCredentialRow.active.is_(True))
                             .order_by(AppCredentialRow.created_at, AppCredentialRow.app_id)
                             .limit(1))
    return _credential(row) if row else None


async def check_merchant(db: Database, *, merchant_id: str) -> MerchantSnapshot:
    """The merchant as it is, whatever its status (MERCHANT_NOT_FOUND only)."""
    async with db.transaction() as s:
        m = await _merchant_row(s, merchant_id)
    return MerchantSnapshot(id=m.id, name=m.name, short_name=m.short_name, status=m.status,
                            mcc=m.mcc)


_PAY_IN_CHECK = (select(Merchant.id, Merchant.name, Merchant.short_name, Merchant.status,
                        Merchant.mcc).where(Merchant.id == bindparam("b_mid")))


async def check_can_pay_in(session: AsyncSession, *, merchant_id: str) -> MerchantSnapshot:
    """`check_can_pay` inside the caller's transaction: payments checks the merchant in the
    same unit of work that records the order, so a freeze is never raced and no extra
    transaction is spent."""
    # Five columns through Core, not an ORM entity: this runs on every order create, and an
    # identity-mapped Merchant costs more CPU than the round trip it rides on.
    row = (await session.execute(_PAY_IN_CHECK, {"b_mid": merchant_id})).first()
    if row is None:
        raise FulemaError(ErrorCode.MERCHANT_NOT_FOUND, f"no merchant {merchant_id}")
    snapshot = MerchantSnapshot(id=row.id, name=row.name, short_name=row.short_name,
                                status=row.status, mcc=row.mcc)
    return _refuse_unless_active(snapshot)


def _refuse_unless_active(snapshot: MerchantSnapshot) -> MerchantSnapshot:
    refusal = domain.payment_refusal(MerchantStatus(snapshot.status))
    if refusal is not None:
        raise FulemaError(refusal, f"{refusal.description} (status {snapshot.status})",
                          status=snapshot.status)
    return snapshot


async def check_can_pay(db: Database, *, merchant_id: str) -> MerchantSnapshot:
    """Only an ACTIVE merchant takes payments: MERCHANT_NOT_FOUND / MERCHANT_NOT_ACTIVE /
    MERCHANT_FROZEN / MERCHANT_CLOSED otherwise."""
    snapshot = await check_merchant(db, merchant_id=merchant_id)
    return _refuse_unless_active(snapshot)


async def get_plate(db: Database, *, code: str) -> PlateInfo:
    """PLATE_NOT_FOUND if missing, disabled, or its store is disabled."""
    async with db.transaction() as s:
        row = (await s.execute(
            select(Plate, Store, Merchant)
            .join(Store, Store.id == Plate.store_id)
            .join(Merchant, Merchant.id == Plate.merchant_id)
            .where(Plate.code == code))).first()
    if row is None:
        raise FulemaError(ErrorCode.PLATE_NOT_FOUND)
    plate, store, merchant = row
    if plate.status != PlateStatus.ACTIVE.value or not store.active:
        raise FulemaError(ErrorCode.PLATE_NOT_FOUND, f"plate {code} is disabled")
    return PlateInfo(code=plate.code, merchant_id=merchant.id, merchant_name=merchant.name,
                     store_id=store.id, store_name=store.name)


async def get_store(db: Database, *, merchant_id: str, store_id: str) -> StoreInfo:
    """STORE_NOT_FOUND if missing, another merchant's, or disabled."""
    async with db.transaction() as s:
        store = await s.get(Store, store_id)
    if store is None or store.merchant_id != merchant_id or not store.active:
        raise FulemaError(ErrorCode.STORE_NOT_FOUND, f"no active store {store_id} for this merchant")
    return _store_info(store)


async def fee_rate_bps(db: Database, *, merchant_id: str, channel: str) -> int:
    """The merchant's rate on `channel` in basis points (the channel default if not set)."""
    if channel not in domain.DEFAULT_FEE_BPS:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"channel: one of {', '.join(domain.FEE_CHANNELS)}")
    async with db.transaction() as s:
        row = (await s.execute(
            select(Merchant.id, FeeRate.bps)
            .outerjoin(FeeRate, (FeeRate.merchant_id == Merchant.id) & (FeeRate.channel == channel))
            .where(Merchant.id == merchant_id))).first()
    if row is None:
        raise FulemaError(ErrorCode.MERCHANT_NOT_FOUND)
    return int(row[1]) if row[1] is not None else domain.DEFAULT_FEE_BPS[channel]


# --- the demo merchant -----------------------------------------------------------------------

DEMO_LICENCE = "91330100MA2FULEMA5"
DEMO_APP_ID = "app_demo"
DEMO_SECRET = "demo-secret-change-me"  # noqa: S105 - published on purpose; refused outside dev
DEMO_PLATE = "DEMO000001"
DEMO_OPERATOR = "system:demo"


async def onboard_demo_merchant(db: Database, *, settings: Settings) -> DemoMerchant:
    """The ACTIVE demo merchant 付了码演示商户, created once (found by its licence afterwards).

    Its secret is published, so outside development this refuses to run.
    """
    if not settings.is_development:
        raise RuntimeError("the demo merchant's secret is public: set FULEMA_SEED_DEMO=false "
                           "outside development")
    existing = await _find_demo(db, settings)
    if existing is not None:
        return existing
    try:
        await _create_demo(db)
    except FulemaError as exc:  # another process seeded it between our look and our write
        if exc.code is not ErrorCode.DUPLICATE_LICENCE:
            raise
    found = await _find_demo(db, settings)
    assert found is not None
    return found


async def _create_demo(db: Database) -> None:
    now = clock.now()
    m = Merchant(id=new_id("mch"), name="付了码演示商户", short_name="付了码演示", licence_no=DEMO_LICENCE,
                 legal_person="张三", settlement_account="6230910000000000001",
                 settlement_account_name="付了码演示商户", contact_name="张三",
                 contact_phone="13800000000", mcc="5812", status=MerchantStatus.APPLIED.value,
                 version=0, created_at=now, updated_at=now)
    store = Store(id=new_id("sto"), merchant_id=m.id, name="演示门店", address="演示路 1 号",
                  active=True, created_at=now, updated_at=now)
    devices = [Terminal(id=new_id("trm"), merchant_id=m.id, store_id=store.id, kind=kind.value,
                        serial_no=serial, speaker_id=speaker, active=True,
                        active_serial_key=f"{kind.value}:{serial}", active_speaker_id=speaker,
                        created_at=now, updated_at=now)
               for kind, serial, speaker in ((TerminalKind.CASHIER, "DEMO-CASHIER-01", None),
                                             (TerminalKind.SPEAKER, "DEMO-SPEAKER-01", "spk_demo"))]
    app = AppCredentialRow(app_id=DEMO_APP_ID, merchant_id=m.id, name="demo", secret=DEMO_SECRET,
                           rsa_public_key_pem=None, notify_url=None, active=True,
                           secret_rotated_at=now, created_at=now, updated_at=now)
    fees = [FeeRate(merchant_id=m.id, channel=c, bps=bps, updated_at=now)
            for c, bps in domain.DEFAULT_FEE_BPS.items()]
    plate = Plate(code=DEMO_PLATE, merchant_id=m.id, store_id=store.id,
                  status=PlateStatus.ACTIVE.value, created_at=now, updated_at=now)
    try:
        async with db.transaction() as s:
            await _refuse_taken_licence(s, DEMO_LICENCE)
            for rows in ([m], [store], [*devices, app, *fees, plate]):
                s.add_all(rows)
                await s.flush()  # parents before children: no relationship() orders them
            _record(s, m, "apply", None, None, DEMO_OPERATOR)
            for action in (MerchantAction.APPROVE, MerchantAction.ACTIVATE):
                before = MerchantStatus(m.status)
                m.status = domain.next_status(before, action).value
                _record(s, m, action.value, before.value, "demo", DEMO_OPERATOR)
    except IntegrityError:
        await _raise_if_licence_taken(db, DEMO_LICENCE)
        raise


async def _find_demo(db: Database, settings: Settings) -> DemoMerchant | None:
    async with db.transaction() as s:
        m = await s.scalar(select(Merchant).where(Merchant.licence_no == DEMO_LICENCE))
        if m is None:
            return None
        app = await s.get(AppCredentialRow, DEMO_APP_ID)
        plate = await s.get(Plate, DEMO_PLATE)
        terminals = {t.kind: t for t in await s.scalars(
            select(Terminal).where(Terminal.merchant_id == m.id).order_by(Terminal.id))}
    if app is None or plate is None or set(terminals) < {"CASHIER", "SPEAKER"}:
        raise RuntimeError("the demo merchant exists but was changed; reset the database")
    return DemoMerchant(merchant_id=m.id, store_id=plate.store_id,
                        cashier_terminal_id=terminals["CASHIER"].id,
                        speaker_terminal_id=terminals["SPEAKER"].id, app_id=app.app_id,
                        secret=app.secret, plate_code=plate.code,
                        plate_url=f"{settings.public_base_url}/pay/q/{plate.code}")


# --- internals -------------------------------------------------------------------------------


async def _transition(db: Database, merchant_id: str, action: MerchantAction, operator: str,
                      reason: str | None = None, *,
                      corrections: dict[str, str] | None = None) -> MerchantView:
    reason = domain.check_reason(action, reason)
    async with db.transaction() as s:
        m = await _lock(s, merchant_id)
        before = MerchantStatus(m.status)
        after = domain.next_status(before, action)
        if corrections and corrections.get("licence_no", m.licence_no) != m.licence_no:
            await _refuse_taken_licence(s, corrections["licence_no"])
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
        _record(s, m, action.value, before.value, reason, operator)
        await s.flush()
        return _merchant_view(m)


def _record(s: AsyncSession, m: Merchant, action: str, from_status: str | None,
            reason: str | None, operator: str, *, extra: dict[str, Any] | None = None) -> None:
    """The audit row and the outbox event for one change, in the caller's transaction.

    `version` numbers the merchant's events; the merchant row is locked (or new) here, and a
    unique (merchant_id, seq) turns a lost lock into an error rather than a forked history.
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


async def _merchant_row(s: AsyncSession, merchant_id: str) -> Merchant:
    m = await s.get(Merchant, merchant_id)
    if m is None:
        raise FulemaError(ErrorCode.MERCHANT_NOT_FOUND, f"no merchant {merchant_id}")
    return m


async def _lock(s: AsyncSession, merchant_id: str) -> Merchant:
    m = await s.scalar(select(Merchant).where(Merchant.id == merchant_id).with_for_update())
    if m is None:
        raise FulemaError(ErrorCode.MERCHANT_NOT_FOUND, f"no merchant {merchant_id}")
    return m


async def _lock_open(s: AsyncSession, merchant_id: str, what: str) -> Merchant:
    m = await _lock(s, merchant_id)
    domain.check_open(MerchantStatus(m.status), what)
    return m


async def _store_row(s: AsyncSession, merchant_id: str, store_id: str, *,
                     active: bool = False) -> Store:
    store = await s.get(Store, store_id)
    if store is None or store.merchant_id != merchant_id or (active and not store.active):
        raise FulemaError(ErrorCode.STORE_NOT_FOUND,
                          f"no {'active ' if active else ''}store {store_id} for this merchant")
    return store


async def _app_row(s: AsyncSession, merchant_id: str, app_id: str) -> AppCredentialRow:
    row = await s.get(AppCredentialRow, app_id)
    if row is None or row.merchant_id != merchant_id:
        # NOT_FOUND, not APP_NOT_FOUND: that one is the gateway's 401 for a signed request.
        raise FulemaError(ErrorCode.NOT_FOUND, f"no app {app_id} for this merchant")
    return row


async def _refuse_taken_licence(s: AsyncSession, licence: str) -> None:
    if await s.scalar(select(Merchant.id).where(Merchant.licence_no == licence)):
        raise _duplicate_licence(licence)


async def _raise_if_licence_taken(db: Database, licence: str) -> None:
    """After a unique violation, DUPLICATE_LICENCE if the licence is the reason (checked by
    reading, since each database words its constraint errors differently)."""
    async with db.transaction() as s:
        await _refuse_taken_licence(s, licence)


def _duplicate_licence(licence: str) -> FulemaError:
    return FulemaError(ErrorCode.DUPLICATE_LICENCE, f"a merchant with licence {licence} exists")


def _duplicate_terminal() -> FulemaError:
    return FulemaError(ErrorCode.DUPLICATE_TERMINAL,
                       "this serial_no (for this kind) or speaker_id is bound to an active terminal")


def _deactivate_terminal(t: Terminal, now: datetime) -> None:
    t.active, t.active_serial_key, t.active_speaker_id, t.updated_at = False, None, None, now


def _check_public_key(pem: str | None) -> str | None:
    if pem is None or not pem.strip():
        return None
    try:
        key = crypto.load_public_key(pem.strip())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "rsa_public_key_pem: not a PEM RSA public key") from exc
    if key.key_size < 2048:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "rsa_public_key_pem: at least 2048 bits")
    return pem.strip() + "\n"


def _check_notify_url(url: str | None) -> None:
    if url is not None and not url.startswith(("http://", "https://")):
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "notify_url: an http(s) URL")


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _new_plate_code() -> str:
    return "".join(secrets.choice(domain.PLATE_ALPHABET) for _ in range(domain.PLATE_CODE_LENGTH))


def _merchant_view(m: Merchant) -> MerchantView:
    return MerchantView(
        id=m.id, name=m.name, short_name=m.short_name, licence_no=m.licence_no,
        legal_person=m.legal_person, settlement_account=m.settlement_account,
        settlement_account_name=m.settlement_account_name, contact_name=m.contact_name,
        contact_phone=m.contact_phone, mcc=m.mcc, status=m.status, reject_reason=m.reject_reason,
        freeze_reason=m.freeze_reason, created_at=m.created_at, updated_at=m.updated_at)


def _store_info(x: Store) -> StoreInfo:
    return StoreInfo(id=x.id, merchant_id=x.merchant_id, name=x.name, address=x.address,
                     active=x.active)


def _terminal_info(t: Terminal) -> TerminalInfo:
    return TerminalInfo(id=t.id, merchant_id=t.merchant_id, store_id=t.store_id, kind=t.kind,
                        serial_no=t.serial_no, speaker_id=t.speaker_id, active=t.active)


def _app_view(r: AppCredentialRow) -> AppView:
    return AppView(app_id=r.app_id, merchant_id=r.merchant_id, name=r.name,
                   rsa_public_key_pem=r.rsa_public_key_pem, notify_url=r.notify_url,
                   active=r.active, secret_rotated_at=r.secret_rotated_at, created_at=r.created_at)


def _credential(r: AppCredentialRow) -> AppCredential:
    return AppCredential(app_id=r.app_id, merchant_id=r.merchant_id, secret=r.secret,
                         rsa_public_key_pem=r.rsa_public_key_pem, notify_url=r.notify_url,
                         active=r.active)


def _plate_view(p: Plate) -> PlateView:
    return PlateView(code=p.code, merchant_id=p.merchant_id, store_id=p.store_id, status=p.status,
                     created_at=p.created_at)

