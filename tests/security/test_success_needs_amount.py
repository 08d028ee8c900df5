"""Finding 4: a SUCCESS from a channel that carries no amount, or an amount in another
currency, is refused on every channel, whatever the source (callback, query, payer-code
answer): the check is one function every result passes through (`orders_apply`), and each
adapter passes on the amount and the currency its channel stated, inventing neither."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fulema.channels.bankpay.adapter import signed_headers
from fulema.channels.bankpay.adapter import trade_result as bankpay_result
from fulema.channels.base import TradeResult, TradeState
from fulema.channels.unionpay.adapter import _currency as unionpay_currency
from fulema.channels.wechat.adapter import trade_result as wechat_result
from fulema.channels.wechat.v2 import trade_result as wechat_v2_result
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.payments.orders_apply import apply_trade_result
from tests.payments.conftest import Platform
from tests.payments.test_every_channel import ALL, enable


def _bankpay_success(p: Platform, order_id: str, **data: Any) -> bytes:
    body: dict[str, Any] = {
        "merchant_no": p.settings.bankpay.merchant_no, "out_trade_no": order_id,
        "trade_no": "BP-NOAMOUNT-1", "trade_state": "SUCCESS",
        "success_time": "2026-11-25T10:00:00+08:00", **data}
    return orjson.dumps({"event_id": f"EVT{len(data)}", "event_type": "TRADE.SUCCESS",
                         "create_time": "2026-11-25T10:00:00+08:00", "data": body})


@pytest.mark.parametrize("data", [{}, {"amount_fen": None}, {"amount_fen": "1250"},
                                  {"amount_fen": 1250, "currency": "USD"}])
async def test_a_signed_success_callback_without_a_cny_amount_is_refused(
        platform: Platform, data: dict[str, Any]) -> None:
    p = platform
    order = (await p.order(amount=1250)).json()
    body = _bankpay_success(p, order["order_id"], **data)
    resp = await p.http.post("/callbacks/bankpay", content=body, headers={
        **signed_headers(p.settings.bankpay.secret, body), "Content-Type": "application/json"})
    assert resp.status_code == 400  # not acknowledged: the bank retries, and we query it
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "PAYING"
    assert view["paid_at"] is None


@pytest.mark.parametrize("channel", ALL)
@pytest.mark.parametrize(("result", "why"), [
    (TradeResult(state=TradeState.SUCCESS, channel_trade_no="T1"), "carries no amount"),
    (TradeResult(state=TradeState.SUCCESS, channel_trade_no="T1", amount=Money(1250),
                 currency="USD"), "is in USD"),
    (TradeResult(state=TradeState.SUCCESS, channel_trade_no="T1", amount=Money(1249),
                 currency="CNY"), "another amount"),
])
async def test_every_channel_refuses_such_a_success_from_any_source(
        platform: Platform, channel: str, result: TradeResult, why: str) -> None:
    p = platform
    enable(p, channel)
    order = (await p.order(channel=channel, amount=1250)).json()
    assert order["status"] == "PAYING", order
    for source in ("callback", "query", "barcode"):
        with pytest.raises(FulemaError) as refused:
            await apply_trade_result(p.app.state.payments, order_id=order["order_id"],
                                     result=result, source=source)
        assert refused.value.code is ErrorCode.CALLBACK_INVALID
        assert why in refused.value.message
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "PAYING"
    # the same success with the order's amount in CNY is applied
    paid = TradeResult(state=TradeState.SUCCESS, channel_trade_no="T1", amount=Money(1250),
                       currency="CNY")
    view2 = await apply_trade_result(p.app.state.payments, order_id=order["order_id"],
                                     result=paid, source="query")
    assert view2.status == "SUCCESS"


def test_the_adapters_pass_on_what_the_channel_stated_and_invent_nothing() -> None:
    no_amount = wechat_result({"trade_state": "SUCCESS", "transaction_id": "4200"})
    assert no_amount.state is TradeState.SUCCESS
    assert no_amount.amount is None
    usd = wechat_result({"trade_state": "SUCCESS", "amount": {"total": 1250, "currency": "USD"}})
    assert (usd.amount, usd.currency) == (Money(1250), "USD")
    v2 = wechat_v2_result({"total_fee": "1250", "fee_type": "HKD"}, TradeState.SUCCESS)
    assert (v2.amount, v2.currency) == (Money(1250), "HKD")
    assert wechat_v2_result({}, TradeState.SUCCESS).amount is None
    bank = bankpay_result({"trade_state": "SUCCESS", "currency": "EUR", "amount_fen": 5})
    assert (bank.amount, bank.currency) == (Money(5), "EUR")
    assert bankpay_result({"trade_state": "SUCCESS"}).amount is None
    assert unionpay_currency("156") == "CNY"
    assert unionpay_currency("840") == "840"
    assert unionpay_currency(None) is None
