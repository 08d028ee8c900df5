"""Reading an order: the merchant's query (by our id or their out_trade_no) and the payer's
result page. An order still PAYING is first refreshed from the channel, so a merchant who
queries after a lost callback sees the truth rather than our last guess."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.gateway import service as gateway
from fulema.payments import orders_batch
from fulema.payments.deps import Deps
from fulema.payments.domain import OrderStatus
from fulema.payments.models import Order
from fulema.payments.orders_apply import sync_with_channel
from fulema.payments.orders_sql import order_read, row_params
from fulema.payments.schemas import OrderOut
from fulema.payments.views import order_view

_NONCE_KEYS = tuple(gateway.nonce_row(app_id="", nonce=""))


async def get_order(db: Database, *, merchant_id: str, order_id: str | None = None,
                    out_trade_no: str | None = None) -> Order:
    """The merchant's order row (ORDER_NOT_FOUND for another merchant's), for use cases that
    go on to change it."""
    async with db.transaction() as s:
        stmt = select(Order).where(Order.merchant_id == merchant_id)
        stmt = stmt.where(Order.id == order_id) if order_id else stmt.where(
            Order.out_trade_no == out_trade_no)
        order = (await s.scalars(stmt)).first()
    if order is None:
        raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
    return order


async def query_order(deps: Deps, *, merchant_id: str, order_id: str | None = None,
                      out_trade_no: str | None = None, refresh: bool = True,
                      app_id: str = "", nonce: str | None = None) -> OrderOut:
    """The order as we know it; an open order is first refreshed from the channel.

    `nonce`, when given, is the signed request's (of `app_id`): recorded in the read's own
    transaction (NONCE_REPLAYED if it was used), so a query is one transaction, not two, and
    on PostgreSQL one statement in autocommit (`WITH n AS (INSERT INTO api_nonces ...)
    SELECT ...`): one round trip. The read is a Core SELECT of the view's columns, built once
    per shape (`orders_sql.order_read`): the answer needs no ORM entity."""
    db = deps.db
    one = db.dialect == "postgresql"
    by_id = order_id is not None
    stmt = order_read(by_id=by_id, nonce_row=(gateway.NONCE_TABLE, _NONCE_KEYS)
                      if nonce is not None and one else None)
    params = {"b_mid": merchant_id, "b_key": order_id if by_id else out_trade_no}
    try:
        if one:  # the lone statement commits by itself (no BEGIN/COMMIT round trips)
            if nonce is not None:
                params.update(row_params(gateway.nonce_row(app_id=app_id, nonce=nonce)))
            async with db.one_statement() as conn:
                row = (await conn.execute(stmt, params)).first()
        elif nonce is not None and db.multi_statements:  # the nonce and the read together
            batch, nonce_params = orders_batch.query(
                db.engine.dialect, stmt, (gateway.NONCE_TABLE,
                                          gateway.nonce_row(app_id=app_id, nonce=nonce)))
            async with db.transaction() as s:
                found = await orders_batch.run(s, batch, {**params, **nonce_params})
            row = found[0] if found else None
        else:
            async with db.transaction() as s:
                if nonce is not None:
                    await gateway.insert_nonce(s, app_id=app_id, nonce=nonce)
                row = (await s.execute(stmt, params)).first()
    except IntegrityError as exc:  # the nonce's key: nothing else here writes
        raise FulemaError(ErrorCode.NONCE_REPLAYED) from exc
    if row is None:
        raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
    if refresh and row.status == OrderStatus.PAYING:
        return await sync_with_channel(deps, order_id=row.id)
    return order_view(row)


async def order_by_id(deps: Deps, *, order_id: str) -> OrderOut:
    """For the payer's result page (no merchant scope: the order id is unguessable)."""
    async with deps.db.transaction() as s:
        order = await s.get(Order, order_id)
    if order is None:
        raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
    if order.status == OrderStatus.PAYING:
        return await sync_with_channel(deps, order_id=order_id)
    return order_view(order)
