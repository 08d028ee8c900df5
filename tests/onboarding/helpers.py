"""What the onboarding tests (and the partner-form reconciliation test) share: a platform with
all five channels' sandboxes mounted, the operator's calls and each sandbox's review lever, and
the steps a registration goes through. Test modules import these from here, never from each
other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.ops.worker import run_all_once
from fulema.payments.models import Order
from tests.payments.conftest import Platform, built_platform

OPS = {"Authorization": "Bearer test-operator"}
SUPPLEMENT = {"contact_email": "zhangsan@example.com", "service_phone": "0571-88886666",
              "settlement_bank": "中国工商银行", "address_code": "330106"}
LEVER = {"wechat": "/sandbox/wechat/sandbox-ops/applyments/",
         "alipay": "/sandbox/alipay/sandbox-ops/indirect/",
         "unionpay": "/sandbox/unionpay/sandbox-ops/registrations/",
         "ecny": "/sandbox/ecny/sandbox-ops/merchants/",
         "bankpay": "/sandbox/bankpay/sandbox-ops/merchants/"}
# payers whose sandbox wallets hold enough for every test payment
RICH = {"wechat": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "alipay": "2088102146225135",
        "unionpay": "up_rich", "ecny": "payer_rich", "bankpay": "payer_rich"}


@asynccontextmanager
async def onboarding_platform(db: Database, settings: Settings) -> AsyncIterator[Platform]:
    """The whole app over HTTP with every channel enabled and the demo merchant onboarded."""
    async with built_platform(db, settings, ["wechat", "alipay", "unionpay", "ecny",
                                             "bankpay"]) as p:
        yield p


def sandbox_state(p: Platform, channel: str) -> Any:
    mounted = next(r for r in p.app.routes if getattr(r, "path", "") == f"/sandbox/{channel}")
    return mounted.app.state  # type: ignore[attr-defined]


async def rounds(p: Platform, n: int = 2) -> None:
    """Time passes (past the poll interval) and every job runs."""
    for _ in range(n):
        clock.advance(timedelta(seconds=p.settings.onboarding_poll_seconds + 1))
        await run_all_once(p.app)


async def registrations(p: Platform, channel: str) -> list[dict[str, Any]]:
    resp = await p.http.get(f"/ops/v1/onboarding/merchants/{p.merchant_id}/registrations",
                            headers=OPS)
    assert resp.status_code == 200, resp.text
    return [r for r in resp.json() if r["channel"] == channel]


async def current(p: Platform, channel: str) -> dict[str, Any]:
    return (await registrations(p, channel))[-1]


async def decide(p: Platform, channel: str, application_no: str, decision: str,
                 reason: str | None = None) -> None:
    if channel == "unionpay":  # UnionPay's orderId: letters and digits only
        application_no = application_no.replace("_", "")
    resp = await p.http.post(LEVER[channel] + application_no,
                             json={"decision": decision, "reason": reason})
    assert resp.status_code == 200, resp.text


async def supplied(p: Platform) -> None:
    resp = await p.http.put(f"/ops/v1/onboarding/merchants/{p.merchant_id}/supplement",
                            json=SUPPLEMENT, headers=OPS)
    assert resp.status_code == 200, resp.text
    assert resp.json()["contact_email"] == "z****@example.com"  # masked in the answer
    await rounds(p)


async def approve_all(p: Platform, channel: str) -> dict[str, Any]:
    reg = await current(p, channel)
    await decide(p, channel, reg["id"], "approve")
    await rounds(p)
    return await current(p, channel)


async def registered(p: Platform, channel: str) -> str:
    """The merchant's registration at `channel`, approved there: its sub-merchant id."""
    await supplied(p)
    reg = await approve_all(p, channel)
    assert reg["state"] == "ACTIVE", reg
    sub: str = reg["sub_merchant_id"]
    return sub


async def stored_sub(p: Platform, order_id: str) -> str | None:
    async with p.db.transaction() as s:
        return await s.scalar(select(Order.channel_sub_merchant_id).where(Order.id == order_id))


async def refunded(p: Platform, order_id: str, out_refund_no: str, amount: int
                   ) -> dict[str, Any]:
    refund = (await p.call("POST", f"/api/v1/orders/{order_id}/refunds",
                           {"out_refund_no": out_refund_no, "amount": amount})).json()
    assert refund.get("status") in {"SUCCESS", "PROCESSING"}, refund
    for _ in range(40):
        await p.settle_background(rounds=1)
        refund = (await p.call("GET", f"/api/v1/refunds/{refund['refund_id']}")).json()
        if refund["status"] != "PROCESSING":
            break
        clock.freeze()
        clock.advance(timedelta(seconds=11))  # the refund job asks the channel (partner form)
    return refund


async def status_in_db(p: Platform, order_id: str, wanted: str) -> str:
    """The order's stored status once the channel's notification has been applied (read from
    the table: the merchant API's GET would ask the channel itself)."""
    status = ""
    for _ in range(60):
        async with p.db.transaction() as s:
            status = str(await s.scalar(select(Order.status).where(Order.id == order_id)))
        if status == wanted:
            break
        await asyncio.sleep(0.05)
    return status
