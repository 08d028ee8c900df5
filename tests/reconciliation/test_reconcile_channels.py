"""Each channel's real statement, made by its sandbox from its own records with every kind of
injected difference, downloaded through the channel's adapter and reconciled against the
platform's payments: each difference is found with its kind, nothing else is flagged, and
the cross-day payment is closed by the next day's statement."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from fulema.core.clock import clock
from fulema.reconciliation import service as reconciliation
from tests.payments.conftest import Platform
from tests.payments.test_every_channel import ALL, RICH, enable

CST = timezone(timedelta(hours=8))
DAY = date(2026, 11, 24)


def wire(channel: str, order_id: str) -> str:
    """The order id as the channel knows it (UnionPay's orderId has no `_`)."""
    return order_id.replace("_", "Z") if channel == "unionpay" else order_id


def inject(channel: str, *, drop: str, amount: tuple[str, int], status: str, cross: str,
           extra: bool) -> dict[str, Any]:
    if channel in ("alipay", "unionpay"):
        return {"drop_order_ids": [drop], "amount_overrides": {amount[0]: amount[1]},
                "status_order_ids": [status], "cross_day_order_ids": [cross],
                "extra_rows": 1 if extra else 0}
    return {"drop": [drop], "amount": {amount[0]: amount[1]}, "status": [status],
            "cross_day": [cross],
            "extra": [{"out_trade_no": "GHOST0001", "amount_fen": 999}] if extra else []}


async def paid_order(p: Platform, channel: str, no: str, amount: int) -> dict[str, Any]:
    order = (await p.order(out_trade_no=no, channel=channel, amount=amount)).json()
    assert order["status"] == "PAYING", order
    paid = await p.wallet(channel, "/scan", {"code_url": order["code_url"],
                                             "payer_id": RICH[channel]})
    assert paid.status_code == 200, paid.text
    return await p.wait_status(order["order_id"], "SUCCESS")


async def refunded(p: Platform, order_id: str, no: str, amount: int) -> dict[str, Any]:
    refund = (await p.call("POST", f"/api/v1/orders/{order_id}/refunds",
                           {"out_refund_no": no, "amount": amount})).json()
    for _ in range(40):
        if refund["status"] == "SUCCESS":
            return refund
        await p.settle_background(rounds=1)
        refund = (await p.call("GET", f"/api/v1/refunds/{refund['refund_id']}")).json()
        clock.advance(timedelta(seconds=11))
    raise AssertionError(refund)


@pytest.mark.parametrize("channel", ALL)
async def test_every_injected_difference_is_found_and_cross_day_closes_next_day(
        platform: Platform, channel: str) -> None:
    p = platform
    enable(p, channel)
    clock.freeze(datetime(2026, 11, 24, 12, 0, tzinfo=CST))
    a = await paid_order(p, channel, "RCA001", 1000)
    await refunded(p, a["order_id"], "RCARF1", 300)
    b = await paid_order(p, channel, "RCB001", 2000)
    c = await paid_order(p, channel, "RCC001", 3000)
    ok = await paid_order(p, channel, "RCD001", 4000)
    unpaid = (await p.order(out_trade_no="RCE001", channel=channel, amount=5000)).json()
    clock.freeze(datetime(2026, 11, 24, 23, 59, 30, tzinfo=CST))
    late = await paid_order(p, channel, "RCF001", 6000)
    clock.freeze(datetime(2026, 11, 25, 10, 0, tzinfo=CST))
    faults = inject(channel, drop=wire(channel, b["order_id"]),
                    amount=(wire(channel, c["order_id"]), 3001),
                    status=wire(channel, unpaid["order_id"]),
                    cross=wire(channel, late["order_id"]), extra=True)
    assert (await p.wallet(channel, "/faults", {"statement_diff": faults})).status_code == 200

    deps = p.app.state.payments
    run = await reconciliation.reconcile(deps, channel=channel, day=DAY, actor="test")
    page = await reconciliation.list_discrepancies(p.db, run_id=run.run_id)
    found = {(d.ref if d.kind != "ONLY_AT_CHANNEL" else "ghost", d.kind.value)
             for d in page.data}
    assert found == {(b["order_id"], "ONLY_WITH_US"), (c["order_id"], "AMOUNT_MISMATCH"),
                     (unpaid["order_id"], "STATUS_MISMATCH"), (late["order_id"], "CROSS_DAY"),
                     ("ghost", "ONLY_AT_CHANNEL")}, page.data
    amount = next(d for d in page.data if d.kind.value == "AMOUNT_MISMATCH")
    assert (amount.our_amount, amount.channel_amount) == (3000, 3001)
    assert run.matched == 3  # a's payment and refund, ok
    assert run.lines == 6
    assert run.ours == 6
    assert ok["order_id"] not in {d.ref for d in page.data}

    # the next day: only the cross-day move left; the late payment's line closes yesterday's
    faults = inject(channel, drop="none", amount=("none", 1), status="none",
                    cross=wire(channel, late["order_id"]), extra=False)
    await p.wallet(channel, "/faults", {"statement_diff": faults})
    clock.freeze(datetime(2026, 11, 26, 10, 0, tzinfo=CST))
    nxt = await reconciliation.reconcile(deps, channel=channel, day=DAY + timedelta(days=1),
                                         actor="test")
    assert (nxt.lines, nxt.matched, nxt.discrepancies, nxt.auto_resolved) == (1, 1, 0, 1)
    closed = await reconciliation.list_discrepancies(p.db, kind=None, status=None,
                                                     run_id=run.run_id)
    cross = next(d for d in closed.data if d.kind.value == "CROSS_DAY")
    assert (cross.status.value, cross.action and cross.action.value) == ("RESOLVED",
                                                                         "AUTO_CROSS_DAY")
