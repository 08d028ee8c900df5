"""One path for an order's state changes, whichever way the row is written.

Most changes go through the ORM under a row lock (`record`). The hot path writes with Core
statements built once (`INSERT_ORDER`, `INSERT_EVENT`, `ACCEPT`), because SQLAlchemy's flush
machinery was its biggest CPU cost (docs/performance.md). Both ask `domain.transition` before a
state moves, so the table in `domain.py` is the only place that says what may follow what, and
a Core statement cannot move an order where the ORM path would refuse to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.clock import clock
from fulema.core.db import table_of
from fulema.core.ids import new_id
from fulema.payments.domain import OrderStatus, transition
from fulema.payments.models import Order, OrderEvent

# Built once, values bound per call: a statement built per request with `.values(...)` makes
# SQLAlchemy derive a new cache key from every value (it showed in the profile); these
# compile once and are reused from its cache.
INSERT_ORDER = insert(table_of(Order))
INSERT_EVENT = insert(table_of(OrderEvent))
_orders = table_of(Order).c
# Moves an order that is still in `b_from`, and nothing else: a callback that already paid it
# is never undone. Parameters come only from `move_params`, which checks the move first.
ACCEPT = (
    update(table_of(Order))
    .where(_orders.id == bindparam("b_id"), _orders.status == bindparam("b_from"))
    .values(status=bindparam("b_to"), code_url=bindparam("b_code_url"),
            h5_url=bindparam("b_h5_url"), pay_params=bindparam("b_pay_params"),
            channel_trade_no=bindparam("b_trade_no"), next_query_at=None,
            updated_at=bindparam("b_now")))


def record(session: AsyncSession, order: Order, kind: str, *, to: OrderStatus | None = None,
           detail: dict[str, Any] | None = None) -> None:
    """ORM path: append to the order's event log (and move its state when `to` is given)."""
    now = clock.now()
    before = order.status
    if to is not None and to != before:
        order.status = transition(OrderStatus(before), to).value
    order.updated_at = now
    session.add(OrderEvent(id=new_id("oev"), order_id=order.id, kind=kind, from_status=before,
                           to_status=order.status, detail=detail or {}, at=now))


def move_params(*, order_id: str, current: OrderStatus, target: OrderStatus,
                **values: Any) -> dict[str, Any]:
    """Core path: the bound parameters of a conditional UPDATE (`ACCEPT`) that moves the order
    from `current` to `target`, made only for a move the table allows."""
    transition(current, target)
    return {"b_id": order_id, "b_from": current.value, "b_to": target.value,
            **{f"b_{name}": value for name, value in values.items()}}


def event_row(*, order_id: str, kind: str, before: OrderStatus | None, after: OrderStatus,
              detail: dict[str, Any], at: datetime) -> dict[str, Any]:
    """Core path: one row of the order's event log, for `INSERT_EVENT`."""
    return dict(id=new_id("oev"), order_id=order_id, kind=kind,
                from_status=before.value if before else None, to_status=after.value,
                detail=detail, at=at)


async def core_move(session: AsyncSession, *, order_id: str, current: OrderStatus,
                    target: OrderStatus, kind: str, at: datetime, **values: Any) -> bool:
    """Move the order with `ACCEPT` and log it, if it is still `current`; False if another
    writer moved it first (the caller then reads what it became)."""
    moved = await session.execute(ACCEPT, move_params(order_id=order_id, current=current,
                                                      target=target, now=at, **values))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.execute(INSERT_EVENT, event_row(order_id=order_id, kind=kind, before=current,
                                                  after=target, detail={}, at=at))
    return True
