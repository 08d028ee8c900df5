"""The hot path's Core UPDATE and the ORM path obey one table (`domain.transition`): on a real
database, the Core statement refuses an illegal move before it runs and never undoes a move
another writer made first."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.core.errors import ErrorCode, FulemaError
from fulema.payments.domain import OrderStatus
from fulema.payments.models import Order, OrderEvent
from fulema.payments.orders_state import core_move
from tests.payments.conftest import Platform


async def _state(p: Platform, order_id: str) -> tuple[str, int]:
    async with p.db.transaction() as s:
        order = await s.get(Order, order_id)
        assert order is not None
        events = await s.scalar(select(func.count()).select_from(OrderEvent)
                                .where(OrderEvent.order_id == order_id))
        return order.status, int(events or 0)


async def test_the_core_path_cannot_move_a_paid_order_back(platform: Platform) -> None:
    order = (await platform.order(amount=800)).json()
    await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    await platform.wait_status(order["order_id"], "SUCCESS")
    before = await _state(platform, order["order_id"])

    with pytest.raises(FulemaError) as err:
        async with platform.db.transaction() as s:
            await core_move(s, order_id=order["order_id"], current=OrderStatus.SUCCESS,
                            target=OrderStatus.PAYING, kind="CHANNEL_ACCEPTED", at=clock.now(),
                            code_url=None, h5_url=None, pay_params=None, trade_no=None)
    assert err.value.code == ErrorCode.ILLEGAL_STATE_TRANSITION
    assert await _state(platform, order["order_id"]) == before


async def test_the_core_path_moves_only_from_the_state_it_names(platform: Platform) -> None:
    """A legal move (CREATED -> PAYING) of an order that is no longer CREATED changes nothing:
    the channel's late answer does not undo the payment that a callback recorded first."""
    order = (await platform.order(amount=800)).json()
    assert order["status"] == "PAYING"
    before = await _state(platform, order["order_id"])
    async with platform.db.transaction() as s:
        moved = await core_move(s, order_id=order["order_id"], current=OrderStatus.CREATED,
                                target=OrderStatus.PAYING, kind="CHANNEL_ACCEPTED",
                                at=clock.now(), code_url=None, h5_url=None, pay_params=None,
                                trade_no=None)
    assert moved is False
    assert await _state(platform, order["order_id"]) == before
