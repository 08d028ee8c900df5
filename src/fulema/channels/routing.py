"""Endpoint routing: one channel, several endpoints (primary first, then backups), each behind
its own circuit breaker.

Channels publish backup entry points for disaster recovery (WeChat Pay: api.mch.weixin.qq.com
and api2.mch.weixin.qq.com; a bank's core usually has two data centres). `GuardedChannel` is
itself a `Channel`, so payments code does not know it is there.

The retry rule follows from money, not from convenience:
- idempotent operations (query, refund_query, close, download_statement) asking twice is
  harmless, so on `ChannelUnavailable` the next endpoint is tried;
- non-idempotent ones (create, barcode_pay, refund, cancel) are sent to ONE endpoint. If it
  fails after sending, the channel may have acted on it; sending it again elsewhere could
  charge or refund twice, so the error goes back to the caller, whose rule is to query. Open
  endpoints are still skipped before sending: nothing was sent to them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, TypeVar

from fulema.channels.base import (
    BarcodePayRequest,
    CallbackAck,
    CallbackResult,
    Channel,
    ChannelUnavailable,
    CreatePaymentRequest,
    CreatePaymentResult,
    RefundRequest,
    RefundResult,
    TradeResult,
)
from fulema.channels.breaker import CircuitBreaker, CircuitOpen
from fulema.core.channel_settings import BreakerSection
from fulema.core.vocab import ChannelName, WayCode

__all__ = ["CircuitOpen", "GuardedChannel", "guard"]

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    name: str
    channel: Channel
    breaker: CircuitBreaker


class GuardedChannel:
    """A `Channel` that sends each call to the first endpoint whose breaker allows it."""

    def __init__(self, name: ChannelName | str, endpoints: Sequence[tuple[str, Channel]],
                 settings: BreakerSection) -> None:
        if not endpoints:
            raise ValueError("a guarded channel needs at least one endpoint")
        names = [n for n, _ in endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must be unique: {names}")
        self.name = ChannelName(name)
        self.settings = settings
        self.endpoints = [Endpoint(n, ch, CircuitBreaker(self.name.value, n, settings))
                          for n, ch in endpoints]

    @property
    def primary(self) -> Channel:
        return self.endpoints[0].channel

    def breaker(self, endpoint: str) -> CircuitBreaker:
        for ep in self.endpoints:
            if ep.name == endpoint:
                return ep.breaker
        raise KeyError(endpoint)

    def health(self) -> list[dict[str, Any]]:
        """Per endpoint: {endpoint, state, window_calls, error_ratio, slow_ratio, opened_at}."""
        return [ep.breaker.snapshot().as_dict() for ep in self.endpoints]

    # ---------------------------------------------------------------- dispatch

    def _all_open(self) -> CircuitOpen:
        retry = [r for r in (ep.breaker.retry_at for ep in self.endpoints) if r is not None]
        return CircuitOpen(self.name.value, CircuitOpen.ALL_ENDPOINTS, min(retry, default=None))

    async def _once(self, operation: str, fn: Callable[[Channel], Awaitable[T]]) -> T:
        """Non-idempotent: skip open endpoints, then send to exactly one and never retry."""
        for ep in self.endpoints:
            try:
                permit = ep.breaker.acquire(operation)
            except CircuitOpen:
                continue  # nothing was sent there: safe to go on to the next endpoint
            return await ep.breaker.call(operation, partial(fn, ep.channel), permit=permit)
        raise self._all_open()

    async def _retrying(self, operation: str, fn: Callable[[Channel], Awaitable[T]]) -> T:
        """Idempotent: on ChannelUnavailable (timeouts included) try the next endpoint."""
        last: ChannelUnavailable | None = None
        for ep in self.endpoints:
            try:
                permit = ep.breaker.acquire(operation)
            except CircuitOpen:
                continue
            try:
                return await ep.breaker.call(operation, partial(fn, ep.channel), permit=permit)
            except ChannelUnavailable as exc:
                last = exc
        if last is None:
            raise self._all_open()
        raise last

    # ---------------------------------------------------------------- Channel

    @property
    def supported_ways(self) -> frozenset[WayCode]:
        return self.primary.supported_ways  # every endpoint is the same adapter

    def static_code_way(self, payer_id: str | None) -> WayCode:
        # What the channel is, not a call to it: every endpoint is the same adapter.
        return self.primary.static_code_way(payer_id)

    async def create(self, req: CreatePaymentRequest) -> CreatePaymentResult:
        return await self._once("create", lambda ch: ch.create(req))

    async def barcode_pay(self, req: BarcodePayRequest) -> TradeResult:
        return await self._once("barcode_pay", lambda ch: ch.barcode_pay(req))

    async def query(self, order_id: str, *, sub_merchant_id: str | None = None) -> TradeResult:
        return await self._retrying(
            "query", lambda ch: ch.query(order_id, sub_merchant_id=sub_merchant_id))

    async def close(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        await self._retrying(
            "close", lambda ch: ch.close(order_id, sub_merchant_id=sub_merchant_id))

    async def cancel(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        await self._once(
            "cancel", lambda ch: ch.cancel(order_id, sub_merchant_id=sub_merchant_id))

    async def refund(self, req: RefundRequest) -> RefundResult:
        return await self._once("refund", lambda ch: ch.refund(req))

    async def refund_query(self, order_id: str, refund_id: str, *,
                           sub_merchant_id: str | None = None) -> RefundResult:
        return await self._retrying("refund_query", lambda ch: ch.refund_query(
            order_id, refund_id, sub_merchant_id=sub_merchant_id))

    async def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackResult:
        # Local verification of a message the channel sent us: no endpoint is called, so the
        # breakers neither gate nor count it.
        return await self.primary.parse_callback(headers, body)

    def callback_ack(self, ok: bool) -> CallbackAck:
        return self.primary.callback_ack(ok)

    async def download_statement(self, day: date) -> bytes:
        return await self._retrying("download_statement", lambda ch: ch.download_statement(day))


def guard(name: ChannelName | str, endpoints: list[tuple[str, Channel]],
          settings: BreakerSection) -> GuardedChannel:
    """Wrap a channel's endpoint adapters (primary first) in breakers and routing."""
    return GuardedChannel(name, endpoints, settings)
