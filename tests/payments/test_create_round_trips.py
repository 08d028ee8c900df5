"""What one order create sends to the database, and what it leaves when a write is refused.

The count is the performance figure that does not move with the machine's load
(docs/performance.md, issue 15): each statement is a round trip. It is deterministic once the
caches are warm (the API credential, risk's rule set and merchant facts), so it is asserted
exactly per database: a change that adds a round trip to the hot path fails here.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
import pytest
from sqlalchemy import event, func, insert, select, text
from starlette.routing import Mount

from fulema.channels.base import CreatePaymentResult, TradeState
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import StatementCounter, table_of
from fulema.core.events import OutboxEvent
from fulema.core.web import json_response
from fulema.gateway.models import ApiNonce
from fulema.gateway.signing import sign_request
from fulema.payments.models import Order, OrderEvent
from fulema.payments.orders_channel import accept_in_one
from fulema.payments.views import order_view
from fulema.risk.models import RiskDecision
from tests.payments.conftest import APP_ID, SECRET, Platform

# Statements per create of a QR order on the bank channel (the request only; the outbox's
# consumers run later). PostgreSQL: the merchant check (its status and its registration's
# sub-merchant id) + the nonce + order + CREATED event + risk decision in one statement, in
# autocommit (no BEGIN/COMMIT either), then the channel's acceptance + its event + the outbox
# row (one statement, in autocommit when this process runs its own dispatcher; else in a
# transaction with the NOTIFY for the others). MySQL-protocol databases (no data-modifying
# CTEs): the check and the recording's rows as one round trip of several statements
# (`orders_batch`, CLIENT_MULTI_STATEMENTS), then the UPDATE and one INSERT per row. SQLite:
# the check's SELECT, one INSERT per row and the UPDATE, and its explicit BEGIN IMMEDIATE per
# transaction.
EXPECTED = {"postgresql": 2, "mysql": 4, "mariadb": 4, "sqlite": 10}
EXPECTED_WITH_NOTIFY = {"postgresql": 3}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Risk re-reads its rule-set version once per TTL: kept out of the counted window.
    return settings.model_copy(update={"risk_ruleset_ttl_seconds": 3600.0})


async def _count(p: Platform, model: Any) -> int:
    async with p.db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("notify", [False, True], ids=["own-dispatcher", "notify-others"])
async def test_an_order_create_sends_a_fixed_number_of_statements(platform: Platform,
                                                                  notify: bool) -> None:
    p = platform
    if notify and p.db.dialect not in EXPECTED_WITH_NOTIFY:
        pytest.skip("NOTIFY is PostgreSQL's")
    p.db.notify_other_processes = notify
    assert (await p.order()).status_code == 200  # warm: credential, rule set, merchant facts
    sent: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split())[:60])

    woken = p.db.committed.generation
    event.listen(p.db.engine.sync_engine, "before_cursor_execute", remember)
    try:
        before = StatementCounter.total
        made = []
        for _ in range(3):
            resp = await p.order()
            assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == "PAYING"
            made.append(resp.json()["order_id"])
        per_create = (StatementCounter.total - before) / 3
    finally:
        event.remove(p.db.engine.sync_engine, "before_cursor_execute", remember)
    expected = (EXPECTED_WITH_NOTIFY if notify else EXPECTED)[p.db.dialect]
    assert per_create == expected, sent[: len(sent) // 3]
    assert p.db.committed.generation >= woken + 3  # each accept woke this process's dispatcher
    async with p.db.transaction() as s:
        kinds = (await s.scalars(select(OrderEvent.kind).where(OrderEvent.order_id.in_(made))
                                 .order_by(OrderEvent.order_id, OrderEvent.at))).all()
        paying = (await s.scalars(select(OutboxEvent.payload).where(
            OutboxEvent.topic == "payment.paying"))).all()
    assert kinds == ["CREATED", "CHANNEL_ACCEPTED"] * 3
    assert sorted(e["order_id"] for e in paying if e["order_id"] in made) == sorted(made)


@pytest.mark.parametrize("autocommit", [False, True], ids=["transaction", "autocommit"])
async def test_the_one_statement_accept_moves_only_a_created_order(platform: Platform,
                                                                   autocommit: bool) -> None:
    """The channel's late answer for an order a callback already moved writes nothing: no
    second CHANNEL_ACCEPTED event, no outbox row, the order as it was."""
    p = platform
    if p.db.dialect != "postgresql":
        pytest.skip("the one-statement accept is PostgreSQL's (elsewhere: core_move)")
    order = (await p.order(amount=800)).json()
    assert order["status"] == "PAYING"
    async with p.db.transaction() as s:
        carrier = await s.get(Order, order["order_id"])
    assert carrier is not None
    counts = [await _count(p, m) for m in (OrderEvent, OutboxEvent)]
    late = CreatePaymentResult(state=TradeState.PAYING, code_url="late://code")
    if autocommit:
        async with p.db.one_statement() as conn:
            view = await accept_in_one(conn, carrier, late, trade_no="LATE", now=clock.now())
    else:
        async with p.db.transaction() as s:
            view = await accept_in_one(s, carrier, late, trade_no="LATE", now=clock.now())
    assert view is None
    assert (carrier.code_url, carrier.channel_trade_no) == (order["code_url"],
                                                            order["channel_trade_no"])
    assert [await _count(p, m) for m in (OrderEvent, OutboxEvent)] == counts
    async with p.db.transaction() as s:
        row = await s.get(Order, order["order_id"])
    assert row is not None
    assert (row.status, row.code_url) == ("PAYING", order["code_url"])


async def test_a_refused_create_writes_nothing_on_any_database(platform: Platform) -> None:
    """The unique keys the recording statement can hit, told apart as before, with no row of
    the refused request left behind (its nonce, order, event or risk decision)."""
    p = platform
    first = await p.order(out_trade_no="RT00000001", amount=700)
    assert first.status_code == 200
    counts = [await _count(p, m) for m in (Order, OrderEvent, RiskDecision, ApiNonce)]

    # The same signed request sent again (its nonce replayed), then a new request whose
    # out_trade_no is taken with other parameters.
    raw = orjson.dumps({"out_trade_no": "RT00000002", "amount": 700, "subject": "x",
                        "way_code": "QR_DYNAMIC", "channel": "bankpay"})
    headers = sign_request(app_id=APP_ID, secret=SECRET, method="POST", path="/api/v1/orders",
                           body=raw, timestamp=clock.timestamp())
    assert (await p.http.post("/api/v1/orders", content=raw, headers=headers)).status_code == 200
    replayed = await p.http.post("/api/v1/orders", content=raw, headers=headers)
    assert (replayed.status_code, replayed.json()["code"]) == (401, "NONCE_REPLAYED")
    other = await p.order(out_trade_no="RT00000001", amount=701)
    assert (other.status_code, other.json()["code"]) == (409, "DUPLICATE_OUT_TRADE_NO")
    same = await p.order(out_trade_no="RT00000001", amount=700)
    assert same.json()["order_id"] == first.json()["order_id"]

    # One order more (RT00000002, two events, one decision, one nonce); each refused or
    # repeated request left only its nonce (recorded so it cannot be replayed either).
    after = [await _count(p, m) for m in (Order, OrderEvent, RiskDecision, ApiNonce)]
    assert after == [counts[0] + 1, counts[1] + 2, counts[2] + 1, counts[3] + 3]


async def _until_waiting(conn: Any, table: str) -> None:
    """Until a statement of this test's database inserting into `table` is running (blocked
    on a row lock: other helpers' databases share the server)."""
    for _ in range(400):
        found = await conn.scalar(text(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
            "AND COMMAND = 'Query' AND INFO LIKE :insert"), {"insert": f"INSERT INTO {table} %"})
        if found:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no INSERT INTO {table} waited on the lock")


async def test_a_create_chosen_as_deadlock_victim_is_recorded_on_a_rerun(
        platform: Platform) -> None:
    """InnoDB picks the lighter of two deadlocked transactions: here the order's. Nothing of it
    was written and no order has its out_trade_no, so it is run again (not INTERNAL_ERROR) and
    the merchant gets the order."""
    p = platform
    if p.db.dialect not in ("mysql", "mariadb"):
        pytest.skip("a deadlock between INSERTs as InnoDB reports it (MariaDB)")
    seed = (await p.order(out_trade_no="DLSEED0001")).json()
    async with p.db.transaction() as s:
        row = dict((await s.execute(select(table_of(Order)).where(
            table_of(Order).c.id == seed["order_id"]))).one()._mapping)
    out_trade_no, nonce = "DL00000001", secrets.token_hex(12)
    raw = orjson.dumps({"out_trade_no": out_trade_no, "amount": 1250, "subject": "Noodles",
                        "way_code": "QR_DYNAMIC", "channel": "bankpay"})
    headers = sign_request(app_id=APP_ID, secret=SECRET, method="POST", path="/api/v1/orders",
                           body=raw, timestamp=clock.timestamp(), nonce=nonce)
    async with p.db.engine.connect() as other, p.db.engine.connect() as watch:
        await other.begin()
        # The other transaction: heavier (forty rows), and holding the out_trade_no's key.
        await other.execute(insert(ApiNonce), [
            {"app_id": APP_ID, "nonce": secrets.token_hex(12), "seen_at": clock.now()}
            for _ in range(40)])
        await other.execute(insert(table_of(Order)).values(
            {**row, "id": "ord_deadlock_other", "out_trade_no": out_trade_no}))
        create = asyncio.create_task(
            p.http.post("/api/v1/orders", content=raw, headers=headers))
        await _until_waiting(watch, "orders")  # the create holds its nonce, waits on the key
        # ... and the other transaction now wants the create's nonce: a deadlock, the create
        # its victim. The create's rerun then waits on the other's locks until it rolls back.
        closing = asyncio.create_task(other.execute(insert(ApiNonce).values(
            app_id=APP_ID, nonce=nonce, seen_at=clock.now())))
        await closing
        await _until_waiting(watch, "api_nonces")  # the create's rerun (or its nonce check)
        await other.rollback()
        resp = await create
    assert resp.status_code == 200, resp.text
    assert resp.json()["out_trade_no"] == out_trade_no
    assert resp.json()["status"] == "PAYING"
    async with p.db.transaction() as s:
        orders = (await s.scalars(select(Order.id).where(
            Order.out_trade_no == out_trade_no))).all()
        events = await s.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == resp.json()["order_id"]))
    assert orders == [resp.json()["order_id"]]
    assert events == 2  # CREATED, CHANNEL_ACCEPTED: once each


# Statements per query of a paid order: the request's nonce and the read. PostgreSQL: one
# statement in autocommit; MySQL-protocol databases: the two in one round trip, in one
# transaction (`orders_batch.query`); SQLite: two, and its BEGIN IMMEDIATE.
EXPECTED_QUERY = {"postgresql": 1, "mysql": 1, "mariadb": 1, "sqlite": 3}


async def test_a_query_is_one_round_trip_on_postgresql_and_refuses_a_replay(
        platform: Platform) -> None:
    p = platform
    order = (await p.order(amount=300)).json()
    await p.wallet("bankpay", "/scan", {"code_url": order["code_url"], "payer_id": "payer_rich"})
    await p.wait_status(order["order_id"], "SUCCESS")
    sandbox: Any = next(r.app for r in p.app.routes  # its callbacks (repeated) land first
                        if isinstance(r, Mount) and r.path == "/sandbox/bankpay")
    for _ in range(400):
        if not sandbox.state.sandbox.tasks:
            break
        await asyncio.sleep(0.005)
    path = f"/api/v1/orders/{order['order_id']}"
    before = StatementCounter.total
    for _ in range(3):
        resp = await p.call("GET", path)
        assert (resp.status_code, resp.json()["status"]) == (200, "SUCCESS")
    assert (StatementCounter.total - before) / 3 == EXPECTED_QUERY[p.db.dialect]
    # Read as a plain row (and on MySQL-protocol databases converted by hand), the answer is
    # the order's view as its entity gives it: amounts, times, JSON and the sealed payer id.
    async with p.db.transaction() as s:
        entity = await s.get(Order, order["order_id"])
    assert entity is not None
    assert entity.payer_id  # the payer who paid, sealed at rest
    assert resp.json() == orjson.loads(json_response(order_view(entity)).body)

    # The same signed query again is refused; so is a replay of one that found nothing (its
    # nonce was recorded all the same), by our id and by the merchant's number.
    for target in (path, "/api/v1/orders/ord_nobody",
                   f"/api/v1/orders/by-out-trade-no/{order['out_trade_no']}",
                   "/api/v1/orders/by-out-trade-no/NOBODY0001"):
        headers = sign_request(app_id=APP_ID, secret=SECRET, method="GET", path=target,
                               body=b"", timestamp=clock.timestamp())
        first = await p.http.get(target, headers=headers)
        again = await p.http.get(target, headers=headers)
        assert first.status_code == (200 if "nobody" not in target.lower() else 404)
        assert (again.status_code, again.json()["code"]) == (401, "NONCE_REPLAYED")
