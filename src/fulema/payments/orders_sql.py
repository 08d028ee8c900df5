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

from sqlalchemy import Insert, Table, bindparam, insert, select
from sqlalchemy.sql.elements import BindParameter

from fulema.core.db import table_of
from fulema.payments.models import Order
from fulema.payments.orders_state import ACCEPT

Row = dict[str, Any]
_CACHE: dict[tuple[Any, ...], Insert] = {}


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
