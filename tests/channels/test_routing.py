"""Endpoint routing behind breakers, and the operators' endpoint that shows it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from fulema.channels.base import (
    BarcodePayRequest,
    CallbackKind,
    Channel,
    ChannelError,
    ChannelUnavailable,
    CreatePaymentRequest,
    RefundRequest,
    TradeState,
)
from fulema.channels.breaker import BreakerState, CircuitOpen
from fulema.channels.ops_api import router as ops_channels_router
from fulema.channels.registry import ChannelRegistry
from fulema.channels.routing import GuardedChannel, guard
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.core.web import install_error_handlers
from tests.channels.test_breaker import ScriptedChannel, small

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)

CREATE = CreatePaymentRequest(order_id="ord1", amount=Money(1250), subject="noodles",
                              way_code=WayCode.QR_DYNAMIC, notify_url="http://x/cb",
                              expire_at=T0 + timedelta(minutes=15))
BARCODE = BarcodePayRequest(order_id="ord1", amount=Money(1250), subject="noodles",
                            auth_code="134567890123456789")
REFUND = RefundRequest(order_id="ord1", refund_id="ref1", amount=Money(250),
                       order_amount=Money(1250), reason="spilt", notify_url="http://x/cb")

Op = Callable[[Channel], Awaitable[object]]
IDEMPOTENT: dict[str, Op] = {
    "query": lambda ch: ch.query("ord1"),
    "refund_query": lambda ch: ch.refund_query("ord1", "ref1"),
    "close": lambda ch: ch.close("ord1"),
    "download_statement": lambda ch: ch.download_statement(date(2025, 2, 28)),
}
ONCE_ONLY: dict[str, Op] = {
    "create": lambda ch: ch.create(CREATE),
    "barcode_pay": lambda ch: ch.barcode_pay(BARCODE),
    "refund": lambda ch: ch.refund(REFUND),
    "cancel": lambda ch: ch.cancel("ord1"),
}


def two_endpoints(**overrides: float) -> tuple[GuardedChannel, ScriptedChannel, ScriptedChannel]:
    primary, backup = ScriptedChannel(label="primary"), ScriptedChannel(label="backup")
    guarded = guard(ChannelName.WECHAT, [("api", primary), ("api2", backup)], small(**overrides))
    return guarded, primary, backup


async def open_primary(g: GuardedChannel, primary: ScriptedChannel) -> None:
    primary.mode = "down"
    while g.breaker("api").state != BreakerState.OPEN:
        await g.query("ord1")  # each failure is answered by the backup meanwhile
    primary.mode = "ok"
    primary.calls.clear()


# ------------------------------------------------------------------ shape


def test_guarded_channel_is_a_channel() -> None:
    g, _, _ = two_endpoints()
    as_channel: Channel = g
    assert isinstance(as_channel, Channel)
    assert g.name is ChannelName.WECHAT


@pytest.mark.parametrize(("endpoints", "message"), [
    ([], "at least one endpoint"),
    ([("api", ScriptedChannel()), ("api", ScriptedChannel())], "unique"),
])
def test_guard_refuses_bad_endpoint_lists(endpoints: list[tuple[str, Channel]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        guard(ChannelName.WECHAT, endpoints, small())


def test_guard_refuses_unknown_channel_name() -> None:
    with pytest.raises(ValueError, match="paypal"):
        guard("paypal", [("api", ScriptedChannel())], small())


# ------------------------------------------------------------------ routing


async def test_healthy_primary_takes_every_call() -> None:
    g, primary, backup = two_endpoints()
    assert (await g.create(CREATE)).code_url == "weixin://primary"
    assert (await g.query("ord1")).channel_trade_no == "primary-ord1"
    assert primary.calls == ["create", "query"]
    assert backup.calls == []


async def test_open_primary_sends_new_payments_to_backup() -> None:
    clock.freeze(T0)
    g, primary, backup = two_endpoints()
    await open_primary(g, primary)
    backup.calls.clear()
    result = await g.create(CREATE)
    assert result.channel_trade_no == "backup-ord1"
    assert primary.calls == []  # skipped before sending: nothing reached it
    assert backup.calls == ["create"]


@pytest.mark.parametrize("op", list(IDEMPOTENT))
async def test_idempotent_operation_is_retried_on_backup(op: str) -> None:
    g, primary, backup = two_endpoints()
    primary.mode = "down"
    await IDEMPOTENT[op](g)
    assert primary.calls == [op]
    assert backup.calls == [op]
    assert g.breaker("api").snapshot().error_ratio == 1.0
    assert g.breaker("api2").snapshot().error_ratio == 0.0


async def test_query_answer_comes_from_backup_after_primary_timeout() -> None:
    g, primary, _ = two_endpoints(call_timeout_seconds=0.02)
    primary.mode = "hang"
    result = await g.query("ord1")
    assert result.state == TradeState.SUCCESS
    assert result.channel_trade_no == "backup-ord1"


@pytest.mark.parametrize("op", list(ONCE_ONLY))
async def test_non_idempotent_operation_is_not_resent_after_a_failure(op: str) -> None:
    g, primary, backup = two_endpoints()
    primary.mode = "down"
    with pytest.raises(ChannelUnavailable) as info:
        await ONCE_ONLY[op](g)
    assert not isinstance(info.value, CircuitOpen)  # it was sent: outcome unknown, query it
    assert primary.calls == [op]
    assert backup.calls == []  # never a second payment or refund elsewhere


async def test_create_timeout_is_unknown_and_not_resent() -> None:
    g, primary, backup = two_endpoints(call_timeout_seconds=0.02)
    primary.mode = "hang"
    with pytest.raises(ChannelUnavailable, match="no answer within"):
        await g.create(CREATE)
    assert backup.calls == []


async def test_business_refusal_is_final_not_retried() -> None:
    g, primary, backup = two_endpoints()
    primary.mode = "refuse"
    with pytest.raises(ChannelError):
        await g.query("ord1")
    assert backup.calls == []


async def test_every_endpoint_down_raises_the_last_failure() -> None:
    g, primary, backup = two_endpoints()
    primary.mode = backup.mode = "down"
    with pytest.raises(ChannelUnavailable, match="backup query") as info:
        await g.query("ord1")
    assert not isinstance(info.value, CircuitOpen)


async def test_all_circuits_open_fails_fast_with_circuit_open() -> None:
    clock.freeze(T0)
    g, primary, backup = two_endpoints()
    primary.mode = backup.mode = "down"
    while any(g.breaker(n).state != BreakerState.OPEN for n in ("api", "api2")):
        with pytest.raises(ChannelUnavailable):
            await g.query("ord1")
    primary.calls.clear()
    backup.calls.clear()
    for call in (*IDEMPOTENT.values(), *ONCE_ONLY.values()):
        with pytest.raises(CircuitOpen) as info:
            await call(g)
        assert info.value.endpoint == "*"
        assert info.value.retry_at is not None
        assert info.value.retry_at >= T0 + timedelta(seconds=30)
    assert primary.calls == backup.calls == []
    primary.mode = backup.mode = "ok"
    clock.advance(timedelta(seconds=30))
    assert (await g.query("ord1")).channel_trade_no == "primary-ord1"  # probe allowed again


async def test_callbacks_go_to_primary_without_breaker_accounting() -> None:
    clock.freeze(T0)
    g, primary, backup = two_endpoints()
    await open_primary(g, primary)
    window = g.breaker("api").window_len
    parsed = await g.parse_callback({"x-sig": "good"}, b"ord1")
    assert parsed.kind == CallbackKind.PAYMENT
    assert parsed.order_id == "ord1"
    with pytest.raises(FulemaError) as info:
        await g.parse_callback({"x-sig": "forged"}, b"ord1")
    assert info.value.code == ErrorCode.CALLBACK_INVALID
    assert g.callback_ack(True).body == b"primary"
    assert primary.calls == ["parse_callback", "parse_callback", "callback_ack"]
    assert backup.calls.count("parse_callback") == 0
    assert g.breaker("api").window_len == window
    assert g.breaker("api").state == BreakerState.OPEN


async def test_health_reports_each_endpoint() -> None:
    clock.freeze(T0)
    g, primary, _ = two_endpoints()
    await open_primary(g, primary)
    health = g.health()
    assert [h["endpoint"] for h in health] == ["api", "api2"]
    assert health[0] == {"endpoint": "api", "state": "open", "window_calls": 4,
                         "error_ratio": 1.0, "slow_ratio": 0.0, "opened_at": T0.isoformat()}
    assert health[1]["state"] == "closed"
    assert health[1]["window_calls"] == 4
    assert health[1]["opened_at"] is None


# ------------------------------------------------------------------ ops endpoint


def ops_app(channels: dict[ChannelName, Channel]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(ops_channels_router)
    app.state.channels = ChannelRegistry(channels)
    app.state.settings = Settings(operator_token="t")
    return app


async def get_channels(app: FastAPI, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        return await client.get("/ops/v1/channels", headers=headers)


@pytest.mark.parametrize("token", [None, "", "wrong", "t2"])
async def test_ops_channels_requires_the_operator_token(token: str | None) -> None:
    g, _, _ = two_endpoints()
    resp = await get_channels(ops_app({ChannelName.WECHAT: g}), token)
    assert resp.status_code == 401
    assert resp.json()["code"] == "UNAUTHORIZED"
    assert "channels" not in resp.json()  # no breaker state leaks to the caller


async def test_ops_channels_shows_breaker_states() -> None:
    clock.freeze(T0)
    g, primary, _ = two_endpoints()
    await open_primary(g, primary)
    app = ops_app({ChannelName.WECHAT: g,
                   ChannelName.BANKPAY: ScriptedChannel(ChannelName.BANKPAY)})
    resp = await get_channels(app, "t")
    assert resp.status_code == 200
    body = resp.json()
    assert body == {"channels": [
        {"channel": "wechat", "status": "guarded", "endpoints": [
            {"endpoint": "api", "state": "open", "window_calls": 4, "error_ratio": 1.0,
             "slow_ratio": 0.0, "opened_at": T0.isoformat()},
            {"endpoint": "api2", "state": "closed", "window_calls": 4, "error_ratio": 0.0,
             "slow_ratio": 0.0, "opened_at": None},
        ]},
        {"channel": "bankpay", "status": "unguarded", "endpoints": []},
    ]}
    clock.advance(timedelta(seconds=30))
    resp = await get_channels(app, "t")
    assert resp.json()["channels"][0]["endpoints"][0]["state"] == "half_open"
