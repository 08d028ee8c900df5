"""The order's recording in one round trip on MySQL-protocol databases (MariaDB here; TiDB and
TDSQL in production), which have no data-modifying CTEs (`orders_sql` is PostgreSQL's way).

Several statements go in one COM_QUERY on a connection opened with CLIENT_MULTI_STATEMENTS
(`core.db.Database.multi_statements`): the server runs them in order inside the caller's
transaction, stops at the first error, and answers each in turn. Written by hand because
neither SQLAlchemy nor the DBAPI sends statements together and reads each one's outcome;
aiomysql (PyMySQL's protocol) does (`nextset`). The statements are SQLAlchemy Core, compiled
once per shape for the dialect, with their columns' converters (Money, UTC datetimes, JSON, the
sealed payer id) applied as SQLAlchemy would; PyMySQL escapes and interpolates the values
client-side, as it does for every statement it sends.

The recording: the nonce and the order are written only if the merchant passes onboarding's
pay-in check (`onboarding.PayInGate`, evaluated by each of the two), the order only if the
nonce row is there, the event and risk's decision only if the order is; the last statement
reads the order's sub-merchant id back. No row from it: the merchant was refused (the caller
asks `check_pay_in` for the refusal) and nothing was written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select, Table, bindparam, exists, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement

from fulema.core.db import StatementCounter, table_of
from fulema.onboarding.service import PayInGate
from fulema.payments.models import Order

Row = dict[str, Any]
ORDERS = table_of(Order)


@dataclass(frozen=True)
class Compiled:
    """Statements compiled for one dialect (positional `%s` parameters), and per statement
    the parameter names in order with each one's converter."""

    sql: str
    slots: tuple[tuple[Any, tuple[tuple[str, Callable[[Any], Any] | None], ...]], ...]
    # The last statement's columns, when it is a SELECT: each one's name and converter.
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...] = ()

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[SimpleNamespace]:
        """The last statement's rows as SQLAlchemy would have converted them."""
        return [SimpleNamespace(**{name: convert(v) if convert is not None else v
                                   for (name, convert), v in zip(self.columns, row,
                                                                  strict=True)})
                for row in raw]

    def args(self, params: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for compiled, names in self.slots:
            values = compiled.construct_params(params)  # the statement's literals filled in
            for name, convert in names:
                value = values[name]
                out.append(convert(value) if convert is not None else value)
        return out


def compile_all(dialect: Dialect, statements: Sequence[ClauseElement]) -> Compiled:
    parts: list[str] = []
    slots = []
    for stmt in statements:
        compiled: Any = stmt.compile(dialect=dialect)
        assert compiled.positional, "PyMySQL's paramstyle is positional"
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        names = tuple((name, by_name[name].type.dialect_impl(dialect).bind_processor(dialect))
                      for name in compiled.positiontup)
        parts.append(compiled.string)
        slots.append((compiled, names))
    last = statements[-1]
    columns = tuple(
        (c.name, c.type.dialect_impl(dialect).result_processor(dialect, None))
        for c in last.selected_columns) if isinstance(last, Select) else ()
    return Compiled(sql=";\n".join(parts), slots=tuple(slots), columns=columns)


async def run(s: AsyncSession, compiled: Compiled,
              params: dict[str, Any]) -> list[SimpleNamespace]:
    """Send the statements in one round trip in `s`'s transaction; the last one's rows
    (`Compiled.rows`: attribute per column, values converted). The
    first statement that fails raises as SQLAlchemy would have (IntegrityError for a taken
    key, a DBAPIError `is_retryable` knows for a deadlock victim), the rest not run."""
    conn = await s.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    args = compiled.args(params)
    StatementCounter.total += 1  # one statement on the wire, as the harness counts them
    cursor = await driver.cursor()
    try:
        await cursor.execute(compiled.sql, args)
        while await cursor.nextset():
            pass
        return compiled.rows(await cursor.fetchall())
    except conn.dialect.loaded_dbapi.Error as exc:  # PyMySQL's, as SQLAlchemy wraps them
        raise DBAPIError.instance(compiled.sql, args, exc,
                                  conn.dialect.loaded_dbapi.Error) from exc
    finally:
        await cursor.close()


_CACHE: dict[tuple[Any, ...], Compiled] = {}


def _bound(table: Table, prefix: str, keys: Sequence[str]) -> list[Any]:
    return [bindparam(f"{prefix}{k}", type_=table.c[k].type).label(k) for k in keys]


def recording(dialect: Dialect, gate: PayInGate, *, nonce: tuple[Table, Row] | None,
              order: Row, event: tuple[Table, Row], decision: tuple[Table, Row] | None,
              sub_column: str = "channel_sub_merchant_id") -> tuple[Compiled, dict[str, Any]]:
    """The recording's statements and their parameters (see the module's docstring)."""
    shape = (dialect.name, gate.required, nonce and (nonce[0].name, tuple(nonce[1])),
             tuple(order), event[0].name, tuple(event[1]),
             decision and (decision[0].name, tuple(decision[1])))
    compiled = _CACHE.get(shape)
    order_keys = tuple(order)
    if compiled is None:
        statements: list[ClauseElement] = []
        passes = []
        if nonce is not None:
            table, row = nonce
            g = gate.rows.subquery("g")
            statements.append(insert(table).from_select(
                list(row), select(*_bound(table, "n_", tuple(row))).select_from(g)
                .where(gate.passes(g))))
            passes.append(exists().where(table.c.app_id == bindparam("n_app_id"),
                                         table.c.nonce == bindparam("n_nonce")))
        g = gate.rows.subquery("g")
        cols = [g.c.extra.label(k) if k == sub_column else
                bindparam(f"o_{k}", type_=ORDERS.c[k].type).label(k) for k in order_keys]
        statements.append(insert(ORDERS).from_select(
            list(order_keys), select(*cols).select_from(g).where(gate.passes(g), *passes)))
        ours = ORDERS.c.id == bindparam("o_id")
        for prefix, part in (("e_", event), ("d_", decision)):
            if part is not None:
                table, row = part
                statements.append(insert(table).from_select(
                    list(row), select(*_bound(table, prefix, tuple(row))).where(ours)))
        statements.append(select(ORDERS.c[sub_column]).where(ours))
        compiled = _CACHE[shape] = compile_all(dialect, statements)
    params: dict[str, Any] = dict(gate.params)
    params.update({f"o_{k}": v for k, v in order.items() if k != sub_column})
    for prefix, part in (("n_", nonce), ("e_", event), ("d_", decision)):
        if part is not None:
            params.update({f"{prefix}{k}": v for k, v in part[1].items()})
    return compiled, params


def query(dialect: Dialect, read: Select[Any], nonce: tuple[Table, Row]
          ) -> tuple[Compiled, dict[str, Any]]:
    """The merchant's query in one round trip: the request's nonce INSERT (its key refuses a
    replay), then `read` (`orders_sql.order_read`, parameters `b_mid`, `b_key`)."""
    table, row = nonce
    shape = ("query", dialect.name, read, table.name, tuple(row))
    compiled = _CACHE.get(shape)
    if compiled is None:
        write = insert(table).values({k: bindparam(f"n_{k}", type_=table.c[k].type)
                                      for k in row})
        compiled = _CACHE[shape] = compile_all(dialect, [write, read])
    return compiled, {f"n_{k}": v for k, v in row.items()}
