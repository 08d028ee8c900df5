"""Hypothesis drives a real order through the real service in random order: the channel's
answers (callbacks and queries, stale and duplicated, success, failure, close), merchant closes,
the payer paying, and partial refunds of random sizes. After every step the order, read back
from the database, must be in a state the table allows, reached only through legal moves, with
its money consistent: refunded + pending never above what was paid, and the order's refunded
amount equal to the sum of its successful refunds.

It runs on SQLite (the suite's other tests cover the other databases); each example is a fresh
platform, so it is kept to a modest number of examples.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import select

from fulema.app import create_app
from fulema.channels.base import TradeResult, TradeState
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.money import Money
from fulema.gateway.signing import sign_request
from fulema.merchants import service as merchants
from fulema.payments import service as payments
from fulema.payments.domain import ORDER_TRANSITIONS, OrderStatus
from fulema.payments.models import Order, OrderEvent, Refund
from tests.payments.conftest import APP_ID, SECRET

AMOUNT = 1000
PAID = {OrderStatus.SUCCESS, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}


class OrderLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        clock.reset()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.refund_seq = 0
        self.ever_paid = False
        self.run(self._start())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _start(self) -> None:
        import fulema.app  # noqa: F401 - every context's tables

        tmp = Path(self.tmp.name)
        url = f"sqlite+aiosqlite:///{tmp / 'sm.db'}"
        self.settings = Settings(environment="test", public_base_url="http://testserver",
                                 data_dir=tmp, database_url=url, operator_token="t",
                                 run_background=False, seed_demo=False,
                                 enabled_channels=["bankpay"])
        self.db = Database(url)
        await self.db.create_all()
        transport = httpx.ASGITransport(app=FastAPI())
        self.http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self.app = create_app(self.settings, db=self.db, http=self.http)
        transport.app = self.app
        await merchants.onboard_demo_merchant(self.db, settings=self.settings)
        order = (await self.call("POST", "/api/v1/orders", {
            "out_trade_no": "SM00000001", "amount": AMOUNT, "subject": "t",
            "way_code": "QR_DYNAMIC", "channel": "bankpay"})).json()
        self.order_id, self.code_url = order["order_id"], order["code_url"]

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None
                   ) -> httpx.Response:
        raw = orjson.dumps(body) if body is not None else b""
        headers = sign_request(app_id=APP_ID, secret=SECRET, method=method, path=path, body=raw,
                               timestamp=clock.timestamp())
        return await self.http.request(method, path, content=raw, headers=headers)

    def teardown(self) -> None:
        async def close() -> None:
            await self.http.aclose()
            await self.db.dispose()

        self.run(close())
        # the sandbox's callback retries are tasks on this loop: end them before the loop,
        # so nothing is left to warn about an unclosed resource in a later test
        async def end_tasks() -> None:
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        self.run(end_tasks())
        self.run(self.loop.shutdown_asyncgens())
        self.loop.close()
        self.tmp.cleanup()

    # ------------------------------------------------------------------ what can happen

    @rule(state=st.sampled_from([TradeState.PAYING, TradeState.SUCCESS, TradeState.FAILED,
                                 TradeState.CLOSED, TradeState.UNKNOWN, TradeState.NOT_FOUND]),
          source=st.sampled_from(["callback", "query"]))
    def channel_says(self, state: TradeState, source: str) -> None:
        result = TradeResult(state=state, channel_trade_no="BP-SM",
                             amount=Money(AMOUNT) if state == TradeState.SUCCESS else None)
        self.run(self._apply(result, source))

    async def _apply(self, result: TradeResult, source: str) -> None:
        deps: payments.Deps = self.app.state.payments
        await payments.apply_trade_result(deps, order_id=self.order_id, result=result,
                                          source=source)

    @rule()
    def payer_pays_at_the_bank(self) -> None:
        self.run(self.http.post("/sandbox/bankpay/wallet/scan",
                                json={"code_url": self.code_url, "payer_id": "payer_rich"}))

    @rule()
    def merchant_closes(self) -> None:
        resp = self.run(self.call("POST", f"/api/v1/orders/{self.order_id}/close"))
        assert resp.status_code < 500 or resp.json()["code"] in {"CHANNEL_ERROR",
                                                                  "CHANNEL_UNAVAILABLE"}

    @rule(fen=st.integers(min_value=-5, max_value=AMOUNT + 5))
    def merchant_refunds(self, fen: int) -> None:
        self.refund_seq += 1
        resp = self.run(self.call("POST", f"/api/v1/orders/{self.order_id}/refunds",
                                  {"out_refund_no": f"SMR{self.refund_seq:05d}", "amount": fen}))
        assert resp.status_code < 500, resp.text

    # ------------------------------------------------------------------ what must hold

    @invariant()
    def the_order_is_consistent(self) -> None:
        order, events, refunds = self.run(self._read())
        status = OrderStatus(order.status)
        for e in events:  # every recorded move is one the table allows
            if e.from_status != e.to_status and e.from_status is not None:
                assert OrderStatus(e.to_status) in ORDER_TRANSITIONS[OrderStatus(e.from_status)], (
                    e.kind, e.from_status, e.to_status)
        if self.ever_paid:
            assert status in PAID, f"a paid order became {status}"
        self.ever_paid = status in PAID
        paid = order.amount.fen if status in PAID else 0
        refunded, pending = order.refunded_amount.fen, order.refund_pending_amount.fen
        assert refunded >= 0
        assert pending >= 0
        assert refunded + pending <= paid
        assert refunded == sum(r.amount.fen for r in refunds if r.status == "SUCCESS")
        assert pending == sum(r.amount.fen for r in refunds if r.status == "PROCESSING")
        assert (status == OrderStatus.REFUNDED) == (paid > 0 and refunded == paid)
        if status == OrderStatus.PARTIALLY_REFUNDED:
            assert 0 < refunded < paid

    async def _read(self) -> tuple[Order, list[OrderEvent], list[Refund]]:
        async with self.db.transaction() as s:
            order = await s.get(Order, self.order_id)
            assert order is not None
            events = list((await s.scalars(select(OrderEvent).where(
                OrderEvent.order_id == self.order_id).order_by(OrderEvent.at,
                                                               OrderEvent.id))).all())
            refunds = list((await s.scalars(select(Refund).where(
                Refund.order_id == self.order_id))).all())
        return order, events, refunds


OrderLifecycle.TestCase.settings = settings(
    max_examples=15, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_order_lifecycle = OrderLifecycle.TestCase
