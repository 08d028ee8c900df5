"""What `/metrics` and `/readyz` say about the whole business lifecycle.

Payments and refunds are counted by an event consumer (`ops.metrics`), not by the payments
code: each event is handled once by one process, so the counters of all processes add up to
the truth however many API and worker processes run, and payments stays free of monitoring.
Backlogs that only the database knows (notifications waiting, events not yet sequenced,
consumer lag) are sampled by a scheduler job into gauges, so a scrape never queries the
database. The alert rules over these names are in `deploy/prometheus/fulema-rules.yml`.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, OutboxEvent, Start
from fulema.gateway.protection import classify

REQUESTS = Counter("fulema_http_requests", "HTTP requests by endpoint class and status",
                   ["endpoint", "status"])
REQUEST_SECONDS = Histogram("fulema_http_request_duration_seconds",
                            "HTTP request latency by endpoint class", ["endpoint"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
INFLIGHT = Gauge("fulema_http_inflight_requests", "Requests in flight in this process")
PAYMENTS = Counter("fulema_payments", "Payment state changes by channel and state",
                   ["channel", "state"])
PAYMENT_FEN = Counter("fulema_payments_amount_fen", "Fen paid by channel", ["channel"])
REFUNDS = Counter("fulema_refunds", "Refund outcomes by state", ["state"])
NOTIFY_BACKLOG = Gauge("fulema_notifications_pending",
                       "Merchant notifications waiting for delivery")
NOTIFY_OLDEST = Gauge("fulema_notifications_oldest_pending_seconds",
                      "Age of the oldest merchant notification still waiting")
UNSEQUENCED = Gauge("fulema_events_unsequenced", "Committed events not yet given a number")
JOB_RUNS = Counter("fulema_job_runs", "Scheduler job rounds by outcome", ["job", "outcome"])
JOB_LAST_OK = Gauge("fulema_job_last_success_timestamp_seconds",
                    "When the job last finished a round without error", ["job"])
DB_POOL_IN_USE = Gauge("fulema_db_pool_checked_out", "Database connections in use")

_STATES = {"payment.succeeded": "SUCCESS", "payment.failed": "FAILED",
           "payment.closed": "CLOSED", "payment.paying": "PAYING",
           "payment.paid_after_close": "PAID_AFTER_CLOSE"}


async def count_event(db: Database, event: Event) -> None:
    """The `ops.metrics` handler. Counters are process memory: a redelivered event after a
    crash may count twice, which a rate over minutes tolerates (no money depends on it)."""
    del db
    payload: dict[str, Any] = event.payload
    if event.topic in _STATES:
        channel = str(payload.get("channel", "unknown"))
        PAYMENTS.labels(channel, _STATES[event.topic]).inc()
        if event.topic == "payment.succeeded":
            PAYMENT_FEN.labels(channel).inc(int(payload.get("amount", 0)))
    elif event.topic.startswith("refund."):
        REFUNDS.labels(event.topic.split(".", 1)[1].upper()).inc()


async def count_events(db: Database, events: list[Event]) -> None:
    """A dispatcher round at once (no logging scope per event): counting touches no table,
    so a round costs the consumer only its claim and its position."""
    for event in events:
        await count_event(db, event)


def consumers() -> list[Consumer]:
    return [Consumer(name="ops.metrics", handler=count_event,
                     topics=(*_STATES, "refund.requested", "refund.succeeded", "refund.failed"),
                     start=Start.NOW, batch_handler=count_events)]


async def sample_backlogs(db: Database) -> int:
    """Gauges only the database knows; a scheduler job, so no scrape queries the database."""
    from fulema.payments.models import Notification  # ops reads payments' backlog only here

    async with db.transaction() as s:
        pending, oldest = (await s.execute(
            select(func.count(), func.min(Notification.created_at))
            .where(Notification.status == "PENDING"))).one()
        unsequenced = await s.scalar(select(func.count()).select_from(OutboxEvent)
                                     .where(OutboxEvent.seq.is_(None)))
    NOTIFY_BACKLOG.set(int(pending or 0))
    NOTIFY_OLDEST.set(max(0.0, (clock.now() - oldest).total_seconds()) if oldest else 0.0)
    UNSEQUENCED.set(int(unsequenced or 0))
    pool = db.engine.pool
    checked_out = getattr(pool, "checkedout", None)
    DB_POOL_IN_USE.set(int(checked_out()) if callable(checked_out) else 0)
    return 0


def job_finished(name: str, *, ok: bool) -> None:
    JOB_RUNS.labels(name, "ok" if ok else "error").inc()
    if ok:
        JOB_LAST_OK.labels(name).set(time.time())


async def readiness(db: Database, *, redis_url: str, max_unsequenced_seconds: float
                    ) -> tuple[bool, dict[str, str]]:
    """Whether this process should get traffic: the database answers, Redis (when the limits
    are shared through it) answers, and no committed event has waited for its number longer
    than the threshold (the dispatcher is alive somewhere)."""
    checks: dict[str, str] = {}
    try:
        async with db.transaction() as s:
            await s.execute(text("SELECT 1"))
            oldest = await s.scalar(select(func.min(OutboxEvent.created_at))
                                    .where(OutboxEvent.seq.is_(None)))
        checks["database"] = "ok"
        waited = (clock.now() - oldest).total_seconds() if oldest else 0.0
        checks["outbox"] = "ok" if waited <= max_unsequenced_seconds else \
            f"an event has waited {waited:.0f} s for the dispatcher"
    except Exception as exc:  # readiness reports any failure; it must not raise
        checks["database"] = f"unreachable ({type(exc).__name__})"
    if redis_url:
        try:
            from redis.asyncio import Redis

            client = Redis.from_url(redis_url, socket_timeout=1.0)
            try:
                await client.ping()
                checks["redis"] = "ok"
            finally:
                await client.aclose()
        except Exception as exc:  # as above
            checks["redis"] = f"unreachable ({type(exc).__name__})"
    return all(v == "ok" for v in checks.values()), checks


def count_refusal(endpoint: str, status: int) -> None:
    """A request the limits refused before this middleware saw it (gateway/protection.py
    runs first, so a refusal costs as little as possible): counted like any answer."""
    REQUESTS.labels(endpoint, str(status)).inc()


class RequestMetricsMiddleware:
    """Requests, latency and in-flight count by endpoint class (never by path: order ids in
    paths would make one time series per order). Refusals by the limits, which never reach
    it, are counted by `count_refusal`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = classify(scope["method"], scope["path"])
        status = 500

        async def seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        INFLIGHT.inc()
        try:
            await self.app(scope, receive, seen)
        finally:
            INFLIGHT.dec()
            REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
            REQUESTS.labels(endpoint, str(status)).inc()
