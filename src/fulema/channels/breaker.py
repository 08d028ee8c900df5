"""A circuit breaker per (channel, endpoint): stop sending to an endpoint that is failing.

Why: when a channel's endpoint hangs, every payment waiting on it holds a connection and a
worker for the whole timeout, and the merchant's till waits with it. After a window of calls
shows the endpoint is broken, failing fast (and routing to a backup endpoint) is kinder to
everyone; a few probe calls later tell us when it has recovered.

The state machine is the usual one (Resilience4j's count-based window, which bank engineers
know): CLOSED -> OPEN when, over the last `window_size` calls (and at least `minimum_calls`),
the error ratio or the slow-call ratio reaches its threshold; OPEN -> HALF_OPEN after
`open_seconds`; HALF_OPEN lets `half_open_probes` calls through and closes when all succeed,
re-opens on the first failure. We hand-write it (about 150 lines) instead of using a library:
the Python breakers (pybreaker, aiobreaker, purgatory) open after a count of failures, have no
slow-call ratio and time the open period with the system clock, which tests could not move.

What counts as an error: `ChannelUnavailable` (transport failure, unverifiable answer), a
timeout and any unexpected exception. NOT `ChannelError` or `FulemaError`: the channel answered
with a business refusal (insufficient balance, unsupported way) - the endpoint is healthy.

Times: the OPEN period is measured with `fulema.core.clock.clock` (tests move it instead of
sleeping); a call's latency with a monotonic timer (`time.perf_counter` by default), because
latency is about real elapsed time and the clock may be frozen in tests.

Concurrency: one asyncio event loop per process; every state change happens between awaits,
so no lock is needed. State is per process: each process learns about an endpoint on its own
(see docs/channels/routing.md for why that is acceptable).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from time import perf_counter
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from fulema.channels.base import ChannelError, ChannelUnavailable
from fulema.core.channel_settings import BreakerSection
from fulema.core.clock import clock
from fulema.core.errors import FulemaError

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


GAUGE_VALUE: dict[BreakerState, int] = {
    BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class Outcome(StrEnum):
    """How a call ended, as the calls counter labels it."""

    SUCCESS = "success"
    REFUSED = "refused"  # ChannelError / FulemaError: a business answer, endpoint healthy
    UNAVAILABLE = "unavailable"  # ChannelUnavailable raised by the adapter
    TIMEOUT = "timeout"
    ERROR = "error"  # an unexpected exception from the adapter
    REJECTED = "rejected"  # not sent: the breaker is open (or its probes are taken)


FAILED_OUTCOMES = frozenset({Outcome.UNAVAILABLE, Outcome.TIMEOUT, Outcome.ERROR})

# Module-level metric objects, created once at import: every breaker is a set of label values,
# so building many breakers (tests, several endpoints) never registers a metric twice.
BREAKER_STATE = Gauge("fulema_channel_breaker_state",
                      "Circuit breaker state per channel endpoint: 0 closed, 1 half-open, 2 open",
                      ["channel", "endpoint"])
BREAKER_TRANSITIONS = Counter("fulema_channel_breaker_transitions",
                              "Circuit breaker state changes", ["channel", "endpoint", "to"])
CALLS = Counter("fulema_channel_calls", "Channel calls by operation and outcome",
                ["channel", "endpoint", "operation", "outcome"])
CALL_SECONDS = Histogram("fulema_channel_call_duration_seconds",
                         "Latency of channel calls that were sent",
                         ["channel", "endpoint", "operation"],
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30))


class CircuitOpen(ChannelUnavailable):
    """Not sent: the endpoint's breaker is open. Nothing reached the channel.

    A `ChannelUnavailable`, so callers that already treat an unavailable channel correctly
    (keep the order, query later) need no change; `retry_at` says when a probe is allowed.
    """

    ALL_ENDPOINTS = "*"

    def __init__(self, channel: str, endpoint: str, retry_at: datetime | None) -> None:
        self.channel = channel
        self.endpoint = endpoint  # ALL_ENDPOINTS when a guarded channel had none to try
        self.retry_at = retry_at
        when = f" until {retry_at.isoformat()}" if retry_at else ""
        what = ("every endpoint's circuit is open" if endpoint == self.ALL_ENDPOINTS
                else f"{endpoint}: circuit open")
        super().__init__(f"{channel} {what}{when}")


@dataclass(frozen=True)
class Permit:
    """Leave to send one call; `generation` ties its result to the state it was issued in."""

    generation: int
    probe: bool


@dataclass(frozen=True)
class BreakerSnapshot:
    endpoint: str
    state: BreakerState
    window_calls: int
    error_ratio: float
    slow_ratio: float
    opened_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "state": self.state.value,
                "window_calls": self.window_calls, "error_ratio": round(self.error_ratio, 4),
                "slow_ratio": round(self.slow_ratio, 4),
                "opened_at": self.opened_at.isoformat() if self.opened_at else None}


class CircuitBreaker:
    """Breaker for one (channel, endpoint). Use `call()`; `acquire`/`record` are its parts."""

    def __init__(self, channel: str, endpoint: str, settings: BreakerSection, *,
                 timer: Callable[[], float] = perf_counter) -> None:
        self.channel = channel
        self.endpoint = endpoint
        self.settings = settings
        self._timer = timer
        # (failed, slow) per call; deque(maxlen) drops the oldest: the count-based window.
        self._window: deque[tuple[bool, bool]] = deque(maxlen=settings.window_size)
        self._state = BreakerState.CLOSED
        self._generation = 0  # bumped on every transition; stale results are not judged
        self._opened_at: datetime | None = None
        self._probes_issued = 0
        self._probes_ok = 0
        BREAKER_STATE.labels(channel, endpoint).set(GAUGE_VALUE[self._state])

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> BreakerState:
        """The current state; an OPEN breaker whose period has passed turns HALF_OPEN here."""
        if self._state == BreakerState.OPEN and clock.now() >= self._retry_at():
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    @property
    def window_len(self) -> int:
        return len(self._window)

    @property
    def retry_at(self) -> datetime | None:
        """When an OPEN breaker will let a probe through; None unless OPEN."""
        if self.state != BreakerState.OPEN:
            return None
        return self._retry_at()

    def _retry_at(self) -> datetime:
        assert self._opened_at is not None
        return self._opened_at + timedelta(seconds=self.settings.open_seconds)

    def _transition(self, to: BreakerState) -> None:
        self._state = to
        self._generation += 1
        self._probes_issued = self._probes_ok = 0
        if to == BreakerState.OPEN:
            self._opened_at = clock.now()
        elif to == BreakerState.CLOSED:
            self._opened_at = None
            self._window.clear()  # judge the recovered endpoint on fresh calls only
        BREAKER_STATE.labels(self.channel, self.endpoint).set(GAUGE_VALUE[to])
        BREAKER_TRANSITIONS.labels(self.channel, self.endpoint, to.value).inc()

    def snapshot(self) -> BreakerSnapshot:
        n = len(self._window)
        failed = sum(1 for f, _ in self._window if f)
        slow = sum(1 for _, s in self._window if s)
        return BreakerSnapshot(endpoint=self.endpoint, state=self.state, window_calls=n,
                               error_ratio=failed / n if n else 0.0,
                               slow_ratio=slow / n if n else 0.0, opened_at=self._opened_at)

    # ------------------------------------------------------------------ calls

    def acquire(self, operation: str = "call") -> Permit:
        """Leave to send one call, or `CircuitOpen` (counted as rejected) without sending."""
        state = self.state
        if state == BreakerState.CLOSED:
            return Permit(self._generation, probe=False)
        if state == BreakerState.HALF_OPEN and self._probes_issued < self.settings.half_open_probes:
            self._probes_issued += 1
            return Permit(self._generation, probe=True)
        CALLS.labels(self.channel, self.endpoint, operation, Outcome.REJECTED.value).inc()
        raise CircuitOpen(self.channel, self.endpoint,
                          self._retry_at() if state == BreakerState.OPEN else None)

    def release(self, permit: Permit) -> None:
        """The call was abandoned (cancelled) before it had an outcome: give a probe back."""
        if permit.probe and permit.generation == self._generation:
            self._probes_issued -= 1

    def record(self, permit: Permit, outcome: Outcome, elapsed: float,
               operation: str = "call") -> None:
        """Count a sent call's outcome and move the state machine."""
        CALLS.labels(self.channel, self.endpoint, operation, outcome.value).inc()
        CALL_SECONDS.labels(self.channel, self.endpoint, operation).observe(elapsed)
        if permit.generation != self._generation:
            return  # issued before the last transition: says nothing about the current state
        failed = outcome in FAILED_OUTCOMES
        slow = elapsed > self.settings.slow_call_seconds
        if self._state == BreakerState.HALF_OPEN:
            # A slow probe fails too: closing on it would only re-open on the slow ratio.
            if failed or slow:
                self._transition(BreakerState.OPEN)
                return
            self._probes_ok += 1
            if self._probes_ok >= self.settings.half_open_probes:
                self._transition(BreakerState.CLOSED)
            return
        if self._state != BreakerState.CLOSED:
            return
        self._window.append((failed, slow))
        n = len(self._window)
        if n < self.settings.minimum_calls:
            return
        if (sum(1 for f, _ in self._window if f) / n >= self.settings.failure_ratio
                or sum(1 for _, s in self._window if s) / n >= self.settings.slow_call_ratio):
            self._transition(BreakerState.OPEN)

    async def call(self, operation: str, fn: Callable[[], Awaitable[T]], *,
                   permit: Permit | None = None) -> T:
        """Send `fn()` through the breaker with the call timeout; a timeout becomes
        `ChannelUnavailable` (the outcome is unknown: the caller queries). Pass a `permit`
        from `acquire()` when the caller had to know it may send before committing to it."""
        permit = permit or self.acquire(operation)
        started = self._timer()

        def done(outcome: Outcome) -> None:
            self.record(permit, outcome, self._timer() - started, operation)

        try:
            async with asyncio.timeout(self.settings.call_timeout_seconds):
                result = await fn()
        except TimeoutError as exc:
            done(Outcome.TIMEOUT)
            raise ChannelUnavailable(
                f"{self.channel}/{self.endpoint} {operation}: no answer within "
                f"{self.settings.call_timeout_seconds:g}s") from exc
        except ChannelUnavailable:
            done(Outcome.UNAVAILABLE)
            raise
        except (ChannelError, FulemaError):
            done(Outcome.REFUSED)
            raise
        except Exception:
            done(Outcome.ERROR)
            raise
        except BaseException:
            # Cancelled by our caller (not by our timeout): no verdict on the endpoint.
            self.release(permit)
            raise
        done(Outcome.SUCCESS)
        return result
