"""The demo seeds a water company with a sandbox bill for account 0000123456 and one charity
project, once, so the embedded platform shows them."""

from __future__ import annotations

import asyncio

import pytest

from fulema.billing.demo_seed import DEMO_BILL_ACCOUNT, DEMO_BILLER_CODE, seed_demo_billing
from tests.payments.conftest import Platform


async def test_the_demo_biller_and_charity_are_seeded_once_and_shown(platform: Platform) -> None:
    p = platform
    first = await seed_demo_billing(p.db, settings=p.settings)
    again = await seed_demo_billing(p.db, settings=p.settings)
    assert again == first

    billers = (await p.http.get("/bills/v1/billers")).json()["data"]
    assert [(b["code"], b["category"]) for b in billers] == [(DEMO_BILLER_CODE, "water")]
    bills = await p.http.get(
        f"/bills/v1/billers/{DEMO_BILLER_CODE}/accounts/{DEMO_BILL_ACCOUNT}/bills")
    assert bills.status_code == 200
    [bill] = bills.json()["data"]
    assert bill["amount"] > 0

    projects = (await p.http.get("/charity/v1/projects")).json()["data"]
    assert [(x["project_id"], x["name"]) for x in projects] == [
        (first.charity_project_id, "乡村小学图书角")]


async def test_two_processes_seeding_at_once_leave_one_of_each(platform: Platform) -> None:
    p = platform
    one, two = await asyncio.gather(seed_demo_billing(p.db, settings=p.settings),
                                    seed_demo_billing(p.db, settings=p.settings))
    assert one == two
    assert len((await p.http.get("/bills/v1/billers")).json()["data"]) == 1
    assert len((await p.http.get("/charity/v1/projects")).json()["data"]) == 1


async def test_the_demo_seed_refuses_to_run_outside_development(platform: Platform) -> None:
    p = platform
    production = p.settings.model_copy(update={"environment": "production"})
    with pytest.raises(RuntimeError):
        await seed_demo_billing(p.db, settings=production)
