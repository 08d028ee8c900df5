"""What a merchant sends is what the order holds, whichever way the create writes it: one
statement with the merchant check in it (PostgreSQL), one round trip of statements whose values
are converted and escaped outside SQLAlchemy's execute (`orders_batch`, MySQL protocol), or one
INSERT per row (SQLite). Amounts, text with quotes, backslashes, percent signs and CJK, the
sealed payer id, times and the CREATED event's JSON detail."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from fulema.payments.models import Order, OrderEvent
from tests.payments.conftest import Platform

# Text a merchant may send: any character a utf8mb4 column keeps (no surrogates, no NUL),
# with the ones that matter to SQL escaping and %-interpolation made frequent. Amounts stay
# under risk's daily per-payer refusal (20 examples of up to 200 yuan for one payer).
TEXT = st.text(st.one_of(st.sampled_from("'\"\\%;`_-?$1：元"), st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\x00")), min_size=1, max_size=40)


@settings(max_examples=20, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(amount=st.integers(1, 20_000), subject=TEXT, attach=st.none() | TEXT,
       payer_id=st.none() | st.from_regex(r"[A-Za-z0-9_\-]{1,64}", fullmatch=True))
async def test_the_order_holds_what_the_merchant_sent(platform: Platform, amount: int,
                                                      subject: str, attach: str | None,
                                                      payer_id: str | None) -> None:
    p = platform
    body: dict[str, Any] = {"out_trade_no": f"KV{secrets.token_hex(8)}", "amount": amount,
                            "subject": subject, "attach": attach, "payer_id": payer_id}
    resp = await p.order(**body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    async with p.db.transaction() as s:
        order = await s.get(Order, answer["order_id"])
        created = (await s.scalars(select(OrderEvent).where(
            OrderEvent.order_id == answer["order_id"], OrderEvent.kind == "CREATED"))).one()
    assert order is not None
    assert (order.out_trade_no, order.amount.fen, order.payable.fen, order.subject,
            order.attach, order.payer_id) == (body["out_trade_no"], amount, amount, subject,
                                              attach, payer_id)
    assert order.channel_sub_merchant_id is None  # the demo merchant is not registered
    assert order.expire_at - order.created_at == timedelta(
        seconds=p.settings.order_expire_seconds)
    assert order.created_at.tzinfo is not None
    assert created.detail == {"amount": amount, "channel": "bankpay"}
    assert (answer["amount"], answer["subject"], answer["attach"]) == (amount, subject, attach)
