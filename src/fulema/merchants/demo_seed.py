"""The demo merchant 付了码演示商户, seeded once for development and the quick start.

It is written in one transaction with a published secret and fixed ids, so it is kept apart from
the operator use cases and refuses to run outside development.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.merchants import domain
from fulema.merchants.domain import MerchantAction, MerchantStatus, PlateStatus, TerminalKind
from fulema.merchants.lifecycle import raise_if_licence_taken, record, refuse_taken_licence
from fulema.merchants.models import (
    AppCredentialRow,
    FeeRate,
    Merchant,
    MerchantUser,
    Plate,
    Store,
    Terminal,
)
from fulema.merchants.users import create_user


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


DEMO_LICENCE = "91330100MA2FULEMA5"
DEMO_APP_ID = "app_demo"
DEMO_SECRET = "demo-secret-change-me"  # noqa: S105 - published on purpose; refused outside dev
DEMO_PLATE = "DEMO000001"
DEMO_OPERATOR = "system:demo"
# The demo merchant's portal owner (/portal): published, development only, like DEMO_SECRET.
DEMO_OWNER_LOGIN = "demo-owner"
DEMO_OWNER_PASSWORD = "demo-owner-2026"  # noqa: S105 - published on purpose; refused outside dev


async def onboard_demo_merchant(db: Database, *, settings: Settings) -> DemoMerchant:
    """The ACTIVE demo merchant 付了码演示商户, created once (found by its licence afterwards).

    Its secret is published, so outside development this refuses to run.
    """
    if not settings.is_development:
        raise RuntimeError("the demo merchant's secret is public: set FULEMA_SEED_DEMO=false "
                           "outside development")
    existing = await _find_demo(db, settings)
    if existing is not None:
        await _ensure_demo_owner(db, existing.merchant_id)
        return existing
    try:
        await _create_demo(db)
    except FulemaError as exc:  # another process seeded it between our look and our write
        if exc.code is not ErrorCode.DUPLICATE_LICENCE:
            raise
    found = await _find_demo(db, settings)
    assert found is not None
    await _ensure_demo_owner(db, found.merchant_id)
    return found


async def _ensure_demo_owner(db: Database, merchant_id: str) -> None:
    """The demo merchant's portal owner, added once (a database seeded before portal users
    existed gets it on the next start)."""
    async with db.transaction() as s:
        if await s.scalar(select(MerchantUser.id)
                          .where(MerchantUser.login_name == DEMO_OWNER_LOGIN)):
            return
    try:
        await create_user(db, merchant_id=merchant_id, login_name=DEMO_OWNER_LOGIN,
                          display_name="演示店主", role="owner", password=DEMO_OWNER_PASSWORD,
                          actor=DEMO_OPERATOR)
    except FulemaError as exc:  # another process added it between our look and our write
        if exc.code is not ErrorCode.MERCHANT_USER_EXISTS:
            raise


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
            await refuse_taken_licence(s, DEMO_LICENCE)
            for rows in ([m], [store], [*devices, app, *fees, plate]):
                s.add_all(rows)
                await s.flush()  # parents before children: no relationship() orders them
            await record(s, m, "apply", None, None, DEMO_OPERATOR)
            for action in (MerchantAction.APPROVE, MerchantAction.ACTIVATE):
                before = MerchantStatus(m.status)
                m.status = domain.next_status(before, action).value
                await record(s, m, action.value, before.value, "demo", DEMO_OPERATOR)
    except IntegrityError:
        await raise_if_licence_taken(db, DEMO_LICENCE)
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
