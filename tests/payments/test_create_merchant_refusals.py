"""An order for a merchant that may not take it is refused with the merchant's own error code
and leaves nothing behind, however the create is written (on PostgreSQL the merchant check
rides in the recording statement itself, `orders_sql.insert_all_if`).

Driven through the payments service with the request's nonce, as the signed route calls it, so
the nonce's row is among those that must not be written."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import func, select

from fulema.core.errors import FulemaError
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.gateway.models import ApiNonce
from fulema.merchants.domain import MerchantStatus
from fulema.payments import service as payments
from fulema.payments.models import Order, OrderEvent
from fulema.risk.models import RiskDecision
from tests.merchants.factories import merchant_in
from tests.payments.conftest import APP_ID, Platform

TABLES = (Order, OrderEvent, RiskDecision, ApiNonce)


async def _counts(p: Platform) -> list[int]:
    async with p.db.transaction() as s:
        return [int(await s.scalar(select(func.count()).select_from(m)) or 0) for m in TABLES]


def _new(**overrides: Any) -> payments.NewOrder:
    fields: dict[str, Any] = dict(out_trade_no=f"MR{secrets.token_hex(6)}", amount=Money(1250),
                                  subject="Noodles", way_code=WayCode.QR_DYNAMIC,
                                  channel=ChannelName.BANKPAY)
    fields.update(overrides)
    return payments.NewOrder(**fields)


async def _create(p: Platform, merchant_id: str, new: payments.NewOrder, nonce: str) -> Any:
    return await payments.create_order(p.app.state.payments, merchant_id=merchant_id,
                                       app_id=APP_ID, new=new, nonce=nonce)


@pytest.mark.parametrize(("status", "code"), [
    (MerchantStatus.APPLIED, "MERCHANT_NOT_ACTIVE"),
    (MerchantStatus.APPROVED, "MERCHANT_NOT_ACTIVE"),
    (MerchantStatus.REJECTED, "MERCHANT_NOT_ACTIVE"),
    (MerchantStatus.FROZEN, "MERCHANT_FROZEN"),
    (MerchantStatus.CLOSED, "MERCHANT_CLOSED"),
    (None, "MERCHANT_NOT_FOUND"),
], ids=["applied", "approved", "rejected", "frozen", "closed", "unknown"])
async def test_a_merchant_that_may_not_take_payments_is_refused_and_nothing_written(
        platform: Platform, status: MerchantStatus | None, code: str) -> None:
    p = platform
    merchant_id = (await merchant_in(p.db, status)).id if status else "mch_nobody"
    before = await _counts(p)
    nonce = secrets.token_hex(12)
    with pytest.raises(FulemaError) as refused:
        await _create(p, merchant_id, _new(), nonce)
    assert refused.value.code == code
    assert await _counts(p) == before  # no order, event, risk decision or nonce
    # The same request again is refused the same way (its nonce was not spent either).
    with pytest.raises(FulemaError) as again:
        await _create(p, merchant_id, _new(), nonce)
    assert again.value.code == code


async def test_an_unregistered_merchant_is_refused_where_onboarding_is_required(
        platform: Platform) -> None:
    p = platform
    p.settings.onboarding_required = True
    before = await _counts(p)
    nonce = secrets.token_hex(12)
    with pytest.raises(FulemaError) as refused:
        await _create(p, p.merchant_id, _new(), nonce)
    assert refused.value.code == "CHANNEL_NOT_REGISTERED"
    assert await _counts(p) == before
    # Not required: the same request is taken (direct form: no sub-merchant id), its nonce
    # recorded once with it.
    p.settings.onboarding_required = False
    view = await _create(p, p.merchant_id, _new(), nonce)
    assert view.status == "PAYING"
    async with p.db.transaction() as s:
        order = await s.get(Order, view.order_id)
    assert order is not None
    assert order.channel_sub_merchant_id is None
    after = await _counts(p)
    assert (after[0], after[3]) == (before[0] + 1, before[3] + 1)


async def test_a_refused_merchant_with_a_replayed_nonce_is_told_the_merchant_refusal(
        platform: Platform) -> None:
    """The merchant is checked first, as before the check joined the recording statement: a
    frozen merchant's request whose nonce was used hears MERCHANT_FROZEN."""
    p = platform
    nonce = secrets.token_hex(12)
    await _create(p, p.merchant_id, _new(), nonce)
    frozen = await merchant_in(p.db, MerchantStatus.FROZEN)
    with pytest.raises(FulemaError) as refused:
        await _create(p, frozen.id, _new(), nonce)
    assert refused.value.code == "MERCHANT_FROZEN"
    with pytest.raises(FulemaError) as replayed:
        await _create(p, p.merchant_id, _new(), nonce)
    assert replayed.value.code == "NONCE_REPLAYED"
