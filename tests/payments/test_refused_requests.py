"""What a refused request leaves behind (docs/api.md, Errors): no business record, but possibly
its nonce, so that the same signed request cannot be replayed."""

from __future__ import annotations

import orjson
from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.gateway.signing import sign_request
from fulema.payments.models import Notification, Order, Refund
from tests.payments.conftest import APP_ID, SECRET, Platform


async def rows(p: Platform, model: type[Order] | type[Refund] | type[Notification]) -> int:
    async with p.db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def send_twice(p: Platform, path: str, body: dict[str, object]) -> tuple[dict[str, str],
                                                                                 dict[str, str]]:
    """The same signed request (same nonce) sent twice, as an attacker replaying it would."""
    raw = orjson.dumps(body)
    headers = sign_request(app_id=APP_ID, secret=SECRET, method="POST", path=path, body=raw,
                           timestamp=clock.timestamp())
    first = await p.http.post(path, content=raw, headers=headers)
    again = await p.http.post(path, content=raw, headers=headers)
    return first.json(), again.json()


async def test_a_refused_refund_writes_no_refund_and_its_nonce_cannot_be_replayed(
        platform: Platform) -> None:
    p = platform
    order = (await p.order(out_trade_no="REFUSED001", amount=1000)).json()  # never paid
    first, again = await send_twice(p, f"/api/v1/orders/{order['order_id']}/refunds",
                                    {"out_refund_no": "RREFUSED01", "amount": 100})
    assert first["code"] == "ORDER_NOT_PAID"
    assert again["code"] == "NONCE_REPLAYED"
    assert await rows(p, Refund) == 0
    assert await rows(p, Notification) == 0
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "PAYING"
    assert view["refunded_amount"] == 0


async def test_a_create_refused_before_the_order_is_recorded_keeps_no_nonce(
        platform: Platform) -> None:
    p = platform
    first, again = await send_twice(p, "/api/v1/orders", {
        "out_trade_no": "REFUSED002", "amount": 100, "subject": "x", "way_code": "QR_STATIC",
        "channel": "wechat"})
    assert first["code"] == again["code"] == "UNKNOWN_WAY_CODE"
    assert await rows(p, Order) == 0
