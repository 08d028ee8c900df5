"""The demo's biller and charity project, seeded beside the demo merchant (development only).

- 演示自来水公司, biller code `demo-water` (category water, the sandbox biller): account
  `0000123456` has one unpaid sandbox bill, like every account the sandbox biller knows.
- 乡村小学图书角 (a charity project of 演示公益基金会, target 50,000.00 yuan, open a year from the
  first seeding).

Each organisation is a merchant of its own (a biller and a charity are settled like
merchants), applied, approved and activated through the merchants' service under the demo
operator. Seeding twice, or from two processes at once, leaves one of each.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from fulema.billing import bills, charity
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.merchants import service as merchants

DEMO_BILLER_CODE = "demo-water"
DEMO_BILL_ACCOUNT = "0000123456"
DEMO_CHARITY_NAME = "乡村小学图书角"
_OPERATOR = "system:demo"
_WATER = ("演示自来水公司", "自来水", "91330100MA2WATER0K", "4900")
_CHARITY = ("演示公益基金会", "公益基金会", "53330100MA2CHART0A", "8398")


@dataclass(frozen=True)
class DemoBilling:
    biller_code: str
    bill_account: str
    charity_project_id: str


async def _organisation(db: Database, name: str, short_name: str, licence: str,
                        mcc: str) -> tuple[str, bool]:
    """The organisation's merchant id, and whether this call created it (ACTIVE); created once
    whoever races for it (the licence is unique), found by name afterwards."""
    try:
        m = await merchants.apply_merchant(
            db, name=name, short_name=short_name, licence_no=licence, legal_person="李四",
            settlement_account="6230910000000000002", settlement_account_name=name,
            contact_name="李四", contact_phone="13800000001", mcc=mcc, operator=_OPERATOR)
    except FulemaError as exc:
        if exc.code is not ErrorCode.DUPLICATE_LICENCE:
            raise
        page = await merchants.list_merchants(db, name_contains=name, limit=5)
        return next(m.id for m in page.data if m.licence_no == licence), False
    await merchants.approve(db, merchant_id=m.id, operator=_OPERATOR, reason="demo")
    await merchants.activate(db, merchant_id=m.id, operator=_OPERATOR, reason="demo")
    return m.id, True


async def _demo_project(db: Database) -> charity.ProjectView | None:
    return next((p for p in await charity.list_projects(db) if p.name == DEMO_CHARITY_NAME),
                None)


async def seed_demo_billing(db: Database, *, settings: Settings) -> DemoBilling:
    if not settings.is_development:
        raise RuntimeError("demo data is for development only: set FULEMA_SEED_DEMO=false")
    try:
        await bills.biller_row(db, DEMO_BILLER_CODE)
    except FulemaError as exc:
        if exc.code is not ErrorCode.BILLER_NOT_FOUND:
            raise
        water, _ = await _organisation(db, *_WATER)
        try:
            await bills.register_biller(db, code=DEMO_BILLER_CODE, name=_WATER[0],
                                        category="water", merchant_id=water)
        except FulemaError as again:  # another process registered it meanwhile
            if again.code is not ErrorCode.VALIDATION_ERROR:
                raise
    project = await _demo_project(db)
    if project is None:
        fund, created = await _organisation(db, *_CHARITY)
        if created:  # the process that created the fund creates its project
            now = clock.now()
            project = await charity.create_project(
                db, name=DEMO_CHARITY_NAME, organisation=_CHARITY[0], merchant_id=fund,
                target=Money(5_000_000), starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(days=365))
        for _ in range(100):  # another process is creating it: wait for it (at most 10 s)
            if project is not None:
                break
            await asyncio.sleep(0.1)
            project = await _demo_project(db)
        if project is None:
            raise RuntimeError("the demo charity's fund exists without its project; reset "
                               "the database")
    return DemoBilling(biller_code=DEMO_BILLER_CODE, bill_account=DEMO_BILL_ACCOUNT,
                       charity_project_id=project.project_id)
