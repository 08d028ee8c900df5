"""The order hot path's writes as one statement each on PostgreSQL (data-modifying CTEs).

Every statement is a round trip, and on a loaded machine a round trip costs more CPU than the
Python around it (docs/performance.md). PostgreSQL runs several INSERTs and an UPDATE as one
statement (`WITH a AS (INSERT ...), b AS (INSERT ...) INSERT ...`): all of them or none, each
sub-statement exactly once whether or not the outer one reads it, foreign keys checked at the
end of the statement. MySQL-protocol databases and SQLite have no data-modifying CTEs: they
keep one statement per row (the callers' fallback), in the same transaction, with the same
outcome.

The rows are the owning contexts' (`gateway.nonce_row`, `risk.lone_decision_row`,
`core.events.outbox_row`): payments only carries them in its statement. Statements are built
once per shape (the tables and the columns of the rows) and cached, values always bound.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, Select, Table, bindparam, func, insert, select
from sqlalchemy.sql.elements import BindParameter

from fulema.core.db import table_of
from fulema.onboarding.service import PayInGate
from fulema.payments.models import Order
from fulema.payments.orders_state import ACCEPT
from fulema.payments.views import VIEW_COLUMNS

Row = dict[str, Any]
_CACHE: dict[tuple[Any, ...], Any] = {}


def _bound(table: Table, prefix: str, keys: tuple[str, ...]) -> dict[str, BindParameter[Any]]:
    # The column's own type, so Money, UTC datetimes and JSON are converted as on the
    # one-row path (and asyncpg gets the casts it needs).
    return {k: bindparam(f"{prefix}{k}", type_=table.c[k].type) for k in keys}


def _params(prefix: str, row: Row) -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in row.items()}


def insert_all(parts: list[tuple[Table, Row]]) -> tuple[Insert, dict[str, Any]]:
    """One INSERT statement writing every (table, row) of `parts`, and its parameters:
    `WITH w0 AS (INSERT INTO t0 ...), ... INSERT INTO tN ...`. PostgreSQL only. A unique key
    refused anywhere fails the whole statement with IntegrityError, nothing written."""
    shape = tuple((table.name, tuple(row)) for table, row in parts)
    stmt = _CACHE.get(shape)
    if stmt is None:
        ctes = [insert(table).values(_bound(table, f"p{i}_", tuple(row))).cte(f"w{i}")
                for i, (table, row) in enumerate(parts[:-1])]
        last_table, last_row = parts[-1]
        last = len(parts) - 1
        stmt = insert(last_table).values(_bound(last_table, f"p{last}_", tuple(last_row)))
        stmt = stmt.add_cte(*ctes)
        _CACHE[shape] = stmt
    params: dict[str, Any] = {}
    for i, (_table, row) in enumerate(parts):
        params.update(_params(f"p{i}_", row))
    return stmt, params


def insert_all_if(gate: PayInGate, parts: list[tuple[Table, Row]], *,
                  sub_merchant: tuple[Table, str]) -> tuple[Select[Any], dict[str, Any]]:
    """`insert_all` behind onboarding's pay-in check, in one statement:
    `WITH g AS (the check's SELECT), ok AS (SELECT g.extra FROM g WHERE <passes>),
    w0 AS (INSERT INTO t0 (...) SELECT ... FROM ok), ... SELECT g.*, (SELECT count(*) FROM wK)
    AS recorded FROM g`. Every row is written only if the merchant passes the check (zero or
    one row in `ok`), the `sub_merchant` column (table, name) taking the registration's
    sub-merchant id from it; the statement answers the check's row (none: no such merchant)
    for `gate.check`, and `recorded`, the rows written into `sub_merchant`'s table (1 or 0).
    PostgreSQL only; a unique key refused anywhere fails it whole with IntegrityError."""
    sub_table, sub_column = sub_merchant
    shape = ("if", gate.required, sub_table.name, sub_column,
             tuple((table.name, tuple(row)) for table, row in parts))
    stmt = _CACHE.get(shape)
    if stmt is None:
        g = gate.rows.cte("g")
        ok = select(g.c.extra.label("sub")).where(gate.passes(g)).cte("ok")
        ctes: list[Any] = [g, ok]
        counted: Any = None
        for i, (table, row) in enumerate(parts):
            keys = tuple(row)
            bound = _bound(table, f"p{i}_", keys)
            taken = table is sub_table
            cols = [ok.c.sub.label(k) if taken and k == sub_column else bound[k].label(k)
                    for k in keys]
            write = insert(table).from_select(list(keys), select(*cols).select_from(ok))
            if taken:
                write = write.returning(table.c[sub_column])
            cte = write.cte(f"w{i}")
            ctes.append(cte)
            counted = cte if taken else counted
        assert counted is not None, "the sub-merchant column's table is one of the parts"
        recorded = select(func.count()).select_from(counted).scalar_subquery()
        stmt = select(g, recorded.label("recorded")).add_cte(*ctes)
        _CACHE[shape] = stmt
    params: dict[str, Any] = dict(gate.params)
    for i, (table, row) in enumerate(parts):
        params.update(_params(f"p{i}_", {k: v for k, v in row.items()
                                         if not (table is sub_table and k == sub_column)}))
    return stmt, params


def _select_bound(table: Table, prefix: str, keys: tuple[str, ...], source: Any) -> Any:
    bound = _bound(table, prefix, keys)
    return select(*(bound[k].label(k) for k in keys)).select_from(source)


def accept_and_log(move: dict[str, Any], *, event_table: Table, event: Row,
                   outbox_table: Table, outbox: Row) -> tuple[Insert, dict[str, Any]]:
    """`ACCEPT` (the conditional UPDATE of `orders_state.move_params`), the order's event and
    the outbox row as one statement: `WITH u AS (UPDATE ... RETURNING id), e AS (INSERT ...
    SELECT ... FROM u) INSERT ... SELECT ... FROM u`. The two INSERTs write a row only if the
    UPDATE moved the order, so the statement's row count is the UPDATE's: 1 moved (and logged),
    0 another writer moved it first (nothing written). PostgreSQL only."""
    shape = ("accept", tuple(event), tuple(outbox))
    stmt = _CACHE.get(shape)
    if stmt is None:
        u = ACCEPT.returning(table_of(Order).c.id).cte("u")
        e_keys, x_keys = tuple(event), tuple(outbox)
        e = insert(event_table).from_select(
            list(e_keys), _select_bound(event_table, "e_", e_keys, u)).cte("e")
        stmt = insert(outbox_table).from_select(
            list(x_keys), _select_bound(outbox_table, "x_", x_keys, u)).add_cte(u, e)
        _CACHE[shape] = stmt
    return stmt, {**move, **_params("e_", event), **_params("x_", outbox)}


def row_params(row: Row, prefix: str = "n_") -> dict[str, Any]:
    """`order_read`'s parameters for the row its CTE inserts."""
    return _params(prefix, row)


def order_read(*, by_id: bool, nonce_row: tuple[Table, tuple[str, ...]] | None) -> Select[Any]:
    """The merchant's query: `views.VIEW_COLUMNS` of the merchant's (`b_mid`) order by our id
    or by its out_trade_no (`b_key`); with `nonce_row` (PostgreSQL only) the request's nonce
    row is inserted by the same statement (`WITH n AS (INSERT ...) SELECT ...`, parameters
    `row_params`), so its key refuses a replay in the read's own round trip."""
    shape = ("read", by_id, nonce_row)
    stmt = _CACHE.get(shape)
    if stmt is None:
        orders = table_of(Order)
        key = orders.c.id if by_id else orders.c.out_trade_no
        stmt = select(*(orders.c[k] for k in VIEW_COLUMNS)).where(
            orders.c.merchant_id == bindparam("b_mid"), key == bindparam("b_key"))
        if nonce_row is not None:
            table, keys = nonce_row
            stmt = stmt.add_cte(insert(table).values(_bound(table, "n_", keys)).cte("n"))
        _CACHE[shape] = stmt
    return stmt
