"""A merchant's order numbers are compared byte for byte on every database: `A1` and `a1` are two
orders (MySQL-protocol tables use utf8mb4_bin, as PostgreSQL and SQLite compare), and the same
number again is still the same order."""

from __future__ import annotations

from tests.payments.conftest import Platform


async def test_out_trade_no_differing_only_in_case_is_another_order(platform: Platform) -> None:
    upper = await platform.order(out_trade_no="Case-Ab1", subject="大写订单")
    lower = await platform.order(out_trade_no="case-ab1", subject="小写订单")
    again = await platform.order(out_trade_no="Case-Ab1", subject="大写订单")
    assert upper.status_code == lower.status_code == again.status_code == 200
    assert upper.json()["order_id"] != lower.json()["order_id"]
    assert again.json()["order_id"] == upper.json()["order_id"]  # idempotent, as before
    by_no = await platform.call("GET", "/api/v1/orders/by-out-trade-no/case-ab1")
    assert by_no.status_code == 200
    assert by_no.json()["order_id"] == lower.json()["order_id"]
    assert by_no.json()["subject"] == "小写订单"
