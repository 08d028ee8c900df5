"""`fulema demo` in process: a private server on its own SQLite file, a merchant notify endpoint,
and the whole story told over HTTP (apply, approve, plate, WeChat scan, pay, notify, refund)."""

from __future__ import annotations

from fulema.core.config import Settings
from fulema.demo import run_demo


async def test_the_demo_story_pays_1250_refunds_250_and_tells_the_merchant_twice() -> None:
    outcome = await run_demo(None, Settings(environment="test"))

    assert outcome.paid["status"] == "SUCCESS"
    assert outcome.paid["amount"] == 1250
    assert outcome.paid["channel"] == "wechat"
    assert outcome.paid["way_code"] == "QR_STATIC"  # the plate's cashier made it
    assert outcome.paid["channel_trade_no"]

    assert outcome.refund["status"] == "SUCCESS"
    assert outcome.refund["amount"] == 250
    assert outcome.refund["order_id"] == outcome.paid["order_id"]

    assert outcome.final["order_id"] == outcome.paid["order_id"]
    assert outcome.final["status"] == "PARTIALLY_REFUNDED"
    assert outcome.final["amount"] == 1250
    assert outcome.final["refunded_amount"] == 250

    notes = outcome.notifications
    assert [n["type"] for n in notes] == ["payment.succeeded", "refund.succeeded"]
    assert all(n["signature_valid"] is True for n in notes)
    assert all(n["data"]["order_id"] == outcome.paid["order_id"] for n in notes)
    assert notes[0]["data"]["amount"] == 1250
    assert notes[1]["data"]["amount"] == 250

    # the merchant was registered at two channels as a sub-merchant before it took payments
    regs = {r["channel"]: r for r in outcome.registrations}
    assert set(regs) == {"wechat", "alipay"}
    assert all(r["state"] == "ACTIVE" and r["sub_merchant_id"] for r in regs.values())

    # the embedded platform also shows the seeded water company's bill and the charity project
    [bill] = outcome.bills
    assert bill["account_no"] == "0000123456"
    assert bill["amount"] > 0
    assert [p["name"] for p in outcome.charity] == ["乡村小学图书角"]
