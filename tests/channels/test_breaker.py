"""Circuit breaker: when it opens, how it fails fast, how it recovers, what it counts.

`ScriptedChannel` stands in for an external channel endpoint (the only thing faked here):
the test decides whether it answers, refuses, is down, is slow or hangs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Literal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from pydantic import ValidationError

from fulema.channels.base import (
    BarcodePayRequest,
    CallbackAck,
    CallbackKind,
    CallbackResult,
    Channel,
    ChannelError,
    ChannelUnavailable,
    CreatePaymentRequest,
    CreatePaymentResult,
    RefundRequest,
    RefundResult,
    RefundState,
    TradeResult,
    TradeState,
)
from fulema.channels.breaker import BreakerState, CircuitBreaker, CircuitOpen
from fulema.core.channel_settings import BreakerSection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.vocab import ChannelName, WayCode

Mode = Literal["ok", "down", "refuse", "crash", "hang"]
T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


class ScriptedChannel:
    """A channel endpoint whose behaviour the test sets: `mode` and `delay` (seconds)."""

    supported_ways = frozenset(WayCode)

    def __init__(self, name: ChannelName = ChannelName.WECHAT, label: str = "primary") -> None:
        self.name = name
        self.label = label
        self.mode: Mode = "ok"
        self.delay = 0.0
        self.calls: list[str] = []

    async def _act(self, op: str) -> None:
        self.calls.append(op)
        if self.mode == "hang":
            await asyncio.sleep(60)  # cut short by the breaker's call timeout
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "down":
            raise ChannelUnavailable(f"{self.label} {op}: connection refused")
        if self.mode == "refuse":
            raise ChannelError("NOTENOUGH", "insufficient balance")
        if self.mode == "crash":
            raise RuntimeError("adapter bug")

    def static_code_way(self, payer_id: str | None) -> WayCode:
        return WayCode.QR_STATIC

    async def create(self, req: CreatePaymentRequest) -> CreatePaymentResult:
        await self._act("create")
        return CreatePaymentResult(state=TradeState.PAYING, code_url=f"weixin://{self.label}",
                                   channel_trade_no=f"{self.label}-{req.order_id}")

    async def barcode_pay(self, req: BarcodePayRequest) -> TradeResult:
        await self._act("barcode_pay")
        return TradeResult(state=TradeState.SUCCESS, channel_trade_no=f"{self.label}-{req.order_id}")

    async def query(self, order_id: str, *, sub_merchant_id: str | None = None) -> TradeResult:
        await self._act("query")
        return TradeResult(state=TradeState.SUCCESS, channel_trade_no=f"{self.label}-{order_id}")

    async def close(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        await self._act("close")

    async def cancel(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        await self._act("cancel")

    async def refund(self, req: RefundRequest) -> RefundResult:
        await self._act("refund")
        return RefundResult(state=RefundState.PROCESSING, channel_refund_no=self.label)

    async def refund_query(self, order_id: str, refund_id: str, *,
                           sub_merchant_id: str | None = None) -> RefundResult:
        await self._act("refund_query")
        return RefundResult(state=RefundState.SUCCESS, channel_refund_no=self.label)

    async def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackResult:
        self.calls.append("parse_callback")
        if headers.get("x-sig") != "good":
            raise FulemaError(ErrorCode.CALLBACK_INVALID, "bad signature")
        return CallbackResult(kind=CallbackKind.PAYMENT, order_id=body.decode(),
                              trade=TradeResult(state=TradeState.SUCCESS))

    def callback_ack(self, ok: bool) -> CallbackAck:
        self.calls.append("callback_ack")
        return CallbackAck(200 if ok else 500, self.label.encode(), "text/plain")

    async def download_statement(self, day: date) -> bytes:
        await self._act("download_statement")
        return f"{self.label},{day.isoformat()}".encode()


def small(**overrides: float) -> BreakerSection:
    """A 4-call window judged from 4 calls; slow means over 10 ms."""
    values: dict[str, float] = {"window_size": 4, "minimum_calls": 4, "failure_ratio": 0.5,
                                "slow_call_seconds": 0.01, "slow_call_ratio": 0.5,
                                "open_seconds": 30, "half_open_probes": 2,
                                "call_timeout_seconds": 1.0}
    values.update(overrides)
    return BreakerSection(**values)  # type: ignore[arg-type]


_seq = iter(range(1_000_000))


def breaker(cfg: BreakerSection | None = None) -> CircuitBreaker:
    # a fresh endpoint label per breaker keeps metric assertions independent between tests
    return CircuitBreaker("wechat", f"ep{next(_seq)}", cfg or small())


async def send(b: CircuitBreaker, ch: ScriptedChannel) -> TradeResult:
    return await b.call("query", lambda: ch.query("ord1"))


async def outcome(b: CircuitBreaker, ch: ScriptedChannel) -> str:
    """Send one query and name what happened."""
    try:
        await send(b, ch)
    except CircuitOpen:
        return "rejected"
    except ChannelUnavailable:
        return "unavailable"
    except ChannelError:
        return "refused"
    return "ok"


def metric(name: str, b: CircuitBreaker, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, {"channel": b.channel, "endpoint": b.endpoint,
                                             **labels})
    return value or 0.0


def state(b: CircuitBreaker) -> BreakerState:
    """Read the state afresh (a plain function, so type checkers do not narrow it)."""
    return b.state


async def trip(b: CircuitBreaker, ch: ScriptedChannel) -> None:
    ch.mode = "down"
    while b.state != BreakerState.OPEN:
        await outcome(b, ch)
    ch.mode = "ok"


# ------------------------------------------------------------------ settings


def test_settings_defaults_are_the_documented_ones() -> None:
    s = BreakerSection()
    assert (s.window_size, s.minimum_calls, s.failure_ratio, s.slow_call_seconds,
            s.slow_call_ratio, s.open_seconds, s.half_open_probes, s.call_timeout_seconds) == (
        20, 10, 0.5, 3.0, 0.8, 30, 2, 10.0)


def test_settings_come_from_fulema_breaker_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULEMA_BREAKER_WINDOW_SIZE", "50")
    monkeypatch.setenv("FULEMA_BREAKER_OPEN_SECONDS", "5")
    s = Settings().breaker  # the tree, as an entry point builds it
    assert s.window_size == 50
    assert s.open_seconds == 5


@pytest.mark.parametrize("bad", [
    {"window_size": 0}, {"minimum_calls": 0}, {"failure_ratio": 0}, {"failure_ratio": 1.5},
    {"slow_call_ratio": 0}, {"slow_call_seconds": 0}, {"open_seconds": -1},
    {"half_open_probes": 0}, {"call_timeout_seconds": 0},
    {"window_size": 5, "minimum_calls": 6},  # could never open
])
def test_settings_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        BreakerSection(**bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ opening


async def test_closed_breaker_passes_results_through() -> None:
    b, ch = breaker(), ScriptedChannel()
    result = await send(b, ch)
    assert result.channel_trade_no == "primary-ord1"
    assert state(b) == BreakerState.CLOSED
    assert b.window_len == 1


async def test_opens_when_error_ratio_reaches_threshold_within_one_window() -> None:
    b, ch = breaker(), ScriptedChannel()
    assert [await outcome(b, ch) for _ in range(2)] == ["ok", "ok"]
    ch.mode = "down"
    assert await outcome(b, ch) == "unavailable"
    assert state(b) == BreakerState.CLOSED  # 3 calls: below minimum_calls
    assert await outcome(b, ch) == "unavailable"
    assert state(b) == BreakerState.OPEN  # 2 of 4 failed = 0.5
    snap = b.snapshot()
    assert snap.error_ratio == 0.5
    assert snap.opened_at is not None


async def test_failures_below_minimum_calls_do_not_open() -> None:
    b, ch = breaker(), ScriptedChannel()
    ch.mode = "down"
    for _ in range(3):
        assert await outcome(b, ch) == "unavailable"
    assert state(b) == BreakerState.CLOSED
    assert await outcome(b, ch) == "unavailable"
    assert state(b) == BreakerState.OPEN


async def test_window_slides_and_isolated_failures_keep_it_closed() -> None:
    b, ch = breaker(), ScriptedChannel()
    for i in range(20):  # one failure in every four calls: ratio 0.25 in any window
        ch.mode = "down" if i % 4 == 2 else "ok"
        await outcome(b, ch)
        assert b.window_len <= 4
    assert state(b) == BreakerState.CLOSED
    assert b.snapshot().error_ratio == 0.25


async def test_opens_on_slow_call_ratio_even_though_calls_succeed() -> None:
    b, ch = breaker(small(slow_call_ratio=0.75)), ScriptedChannel()
    ch.delay = 0.03
    for _ in range(3):
        assert await outcome(b, ch) == "ok"
    ch.delay = 0
    assert await outcome(b, ch) == "ok"  # 3 slow of 4 = 0.75
    assert state(b) == BreakerState.OPEN
    assert b.snapshot().slow_ratio == 0.75
    assert b.snapshot().error_ratio == 0


async def test_fast_calls_keep_slow_ratio_below_threshold() -> None:
    b, ch = breaker(small(slow_call_ratio=0.75)), ScriptedChannel()
    for i in range(8):
        ch.delay = 0.03 if i % 2 else 0
        await outcome(b, ch)
    assert state(b) == BreakerState.CLOSED
    assert b.snapshot().slow_ratio == 0.5


# ------------------------------------------------------------------ what counts


async def test_business_refusal_is_not_an_error() -> None:
    b, ch = breaker(), ScriptedChannel()
    ch.mode = "refuse"
    for _ in range(10):
        with pytest.raises(ChannelError) as info:
            await send(b, ch)
        assert info.value.code == "NOTENOUGH"
    assert state(b) == BreakerState.CLOSED
    assert b.snapshot().error_ratio == 0
    assert len(ch.calls) == 10


async def test_fulema_error_from_adapter_is_not_an_error() -> None:
    b = breaker()

    async def unsupported() -> None:
        raise FulemaError(ErrorCode.UNKNOWN_WAY_CODE)

    for _ in range(6):
        with pytest.raises(FulemaError):
            await b.call("create", unsupported)
    assert state(b) == BreakerState.CLOSED


async def test_timeout_becomes_channel_unavailable_and_counts_as_error() -> None:
    b, ch = breaker(small(call_timeout_seconds=0.02, window_size=2, minimum_calls=2)), ScriptedChannel()
    ch.mode = "hang"
    with pytest.raises(ChannelUnavailable, match=r"no answer within 0\.02s") as info:
        await send(b, ch)
    assert not isinstance(info.value, CircuitOpen)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert b.snapshot().error_ratio == 1.0
    assert metric("fulema_channel_calls_total", b, operation="query", outcome="timeout") == 1
    await outcome(b, ch)
    assert state(b) == BreakerState.OPEN


async def test_unexpected_exception_propagates_and_counts_as_error() -> None:
    b, ch = breaker(), ScriptedChannel()
    ch.mode = "crash"
    with pytest.raises(RuntimeError, match="adapter bug"):
        await send(b, ch)
    assert b.snapshot().error_ratio == 1.0


# ------------------------------------------------------------------ open, half-open


async def test_open_breaker_fails_fast_without_calling_the_channel() -> None:
    clock.freeze(T0)
    b, ch = breaker(), ScriptedChannel()
    await trip(b, ch)
    sent = len(ch.calls)
    for _ in range(5):
        with pytest.raises(CircuitOpen) as info:
            await send(b, ch)
    assert len(ch.calls) == sent  # nothing reached the channel
    assert isinstance(info.value, ChannelUnavailable)  # callers' existing handling applies
    assert info.value.retry_at == T0 + timedelta(seconds=30)
    assert info.value.endpoint == b.endpoint
    assert metric("fulema_channel_calls_total", b, operation="query", outcome="rejected") == 5


async def test_half_open_after_open_seconds_then_closes_after_successful_probes() -> None:
    clock.freeze(T0)
    b, ch = breaker(), ScriptedChannel()
    await trip(b, ch)
    clock.advance(timedelta(seconds=29.9))
    assert await outcome(b, ch) == "rejected"
    clock.advance(timedelta(seconds=0.1))
    assert state(b) == BreakerState.HALF_OPEN
    sent = len(ch.calls)
    assert await outcome(b, ch) == "ok"
    assert state(b) == BreakerState.HALF_OPEN  # one probe of two
    assert await outcome(b, ch) == "ok"
    assert state(b) == BreakerState.CLOSED
    assert len(ch.calls) == sent + 2
    assert b.window_len == 0  # the recovered endpoint is judged on fresh calls
    assert b.snapshot().opened_at is None


async def test_failed_probe_reopens_for_a_full_period() -> None:
    clock.freeze(T0)
    b, ch = breaker(), ScriptedChannel()
    await trip(b, ch)
    clock.advance(timedelta(seconds=30))
    assert await outcome(b, ch) == "ok"
    ch.mode = "down"
    assert await outcome(b, ch) == "unavailable"
    assert state(b) == BreakerState.OPEN
    assert b.snapshot().opened_at == T0 + timedelta(seconds=30)
    ch.mode = "ok"
    clock.advance(timedelta(seconds=29))
    assert await outcome(b, ch) == "rejected"
    clock.advance(timedelta(seconds=1))
    assert state(b) == BreakerState.HALF_OPEN


async def test_slow_probe_reopens() -> None:
    clock.freeze(T0)
    b, ch = breaker(), ScriptedChannel()
    await trip(b, ch)
    clock.advance(timedelta(seconds=30))
    ch.delay = 0.03
    assert await outcome(b, ch) == "ok"  # the caller gets its answer...
    assert state(b) == BreakerState.OPEN  # ...but the endpoint is not well yet


async def test_half_open_lets_only_the_probes_through_concurrently() -> None:
    clock.freeze(T0)
    b, ch = breaker(small(slow_call_seconds=5)), ScriptedChannel()
    await trip(b, ch)
    clock.advance(timedelta(seconds=30))
    ch.delay = 0.02
    probes = [asyncio.create_task(send(b, ch)) for _ in range(2)]
    await asyncio.sleep(0)  # both probes have their permits and are in flight
    assert await outcome(b, ch) == "rejected"
    await asyncio.gather(*probes)
    assert state(b) == BreakerState.CLOSED


async def test_cancelled_probe_gives_its_place_back() -> None:
    clock.freeze(T0)
    b, ch = breaker(small(half_open_probes=1, slow_call_seconds=5)), ScriptedChannel()
    await trip(b, ch)
    clock.advance(timedelta(seconds=30))
    ch.delay = 0.5
    probe = asyncio.create_task(send(b, ch))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert state(b) == BreakerState.HALF_OPEN  # no verdict from a call nobody waited for
    ch.delay = 0
    assert await outcome(b, ch) == "ok"
    assert state(b) == BreakerState.CLOSED


async def test_late_answer_from_before_the_open_is_not_taken_as_a_probe() -> None:
    clock.freeze(T0)
    b = breaker(small(slow_call_seconds=5))
    slow, failing = ScriptedChannel(), ScriptedChannel()
    slow.delay = 0.05
    straggler = asyncio.create_task(send(b, slow))  # sent while CLOSED
    await asyncio.sleep(0)
    failing.mode = "down"
    while b.state != BreakerState.OPEN:
        await outcome(b, failing)
    clock.advance(timedelta(seconds=30))
    assert state(b) == BreakerState.HALF_OPEN
    await straggler  # succeeds, but says nothing about the endpoint now
    assert state(b) == BreakerState.HALF_OPEN


# ------------------------------------------------------------------ metrics


async def test_metrics_follow_state_and_outcomes() -> None:
    clock.freeze(T0)
    b, ch = breaker(), ScriptedChannel()
    gauge = "fulema_channel_breaker_state"
    assert metric(gauge, b) == 0
    await outcome(b, ch)
    ch.mode = "refuse"
    await outcome(b, ch)
    await trip(b, ch)
    assert metric(gauge, b) == 2
    clock.advance(timedelta(seconds=30))
    assert state(b) == BreakerState.HALF_OPEN
    assert metric(gauge, b) == 1
    await outcome(b, ch)
    await outcome(b, ch)
    assert metric(gauge, b) == 0
    assert metric("fulema_channel_calls_total", b, operation="query", outcome="success") == 3
    assert metric("fulema_channel_calls_total", b, operation="query", outcome="refused") == 1
    assert metric("fulema_channel_calls_total", b, operation="query", outcome="unavailable") == 2
    assert metric("fulema_channel_call_duration_seconds_count", b, operation="query") == 6
    assert metric("fulema_channel_breaker_transitions_total", b, to="open") == 1


def test_many_breakers_on_the_same_endpoint_share_metrics_without_clashing() -> None:
    first = CircuitBreaker("wechat", "same", small())
    second = CircuitBreaker("wechat", "same", small())
    assert first.state == second.state == BreakerState.CLOSED


# ------------------------------------------------------------------ property


class Clockwork:
    """A monotonic timer the scripted calls move, so 'slow' needs no real waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


steps = st.lists(st.one_of(
    st.tuples(st.just("call"), st.sampled_from(["ok", "down", "slow", "refuse", "crash"])),
    st.tuples(st.just("wait"), st.floats(min_value=0, max_value=45)),
), max_size=60)


@settings(max_examples=150, deadline=None,
          # the autouse clock fixture runs once per test; each example freezes and resets
          # the clock itself, so sharing the fixture between examples is harmless
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps, window=st.integers(1, 6), minimum=st.integers(1, 6),
       probes=st.integers(1, 3))
def test_never_sends_while_open_and_window_stays_bounded(
        steps: list[tuple[str, object]], window: int, minimum: int, probes: int) -> None:
    cfg = small(window_size=window, minimum_calls=min(minimum, window), half_open_probes=probes,
                slow_call_seconds=1.0)
    timer = Clockwork()
    b = CircuitBreaker("wechat", "property", cfg, timer=timer)
    sent = 0

    async def endpoint(kind: object) -> None:
        nonlocal sent
        sent += 1
        if kind == "slow":
            timer.now += 2.0
        elif kind == "down":
            raise ChannelUnavailable("down")
        elif kind == "refuse":
            raise ChannelError("NOTENOUGH", "insufficient balance")
        elif kind == "crash":
            raise RuntimeError("bug")

    async def run() -> None:
        for action, arg in steps:
            if action == "wait":
                assert isinstance(arg, float)
                clock.advance(timedelta(seconds=arg))
                continue
            opened_at = b.snapshot().opened_at  # set on opening; kept while HALF_OPEN
            blocked = opened_at is not None and clock.now() < opened_at + timedelta(
                seconds=cfg.open_seconds)
            before = sent
            try:
                await b.call("query", partial(endpoint, arg))
            except CircuitOpen:
                assert sent == before
            except (ChannelUnavailable, ChannelError, RuntimeError):
                pass
            if blocked:
                event("call attempted while OPEN")
                assert sent == before, "a call went through while the circuit was open"
            assert b.window_len <= window

    clock.freeze(T0)
    try:
        asyncio.run(run())
    finally:
        clock.reset()


def test_scripted_channel_is_a_channel() -> None:
    ch: Channel = ScriptedChannel()
    assert isinstance(ch, Channel)
