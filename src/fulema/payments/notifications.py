"""Signed notifications to the merchant's notify_url, retried until acknowledged.

A payment's or refund's success writes its Notification row in the same transaction as the
`payment.succeeded` / `refund.succeeded` outbox event, keyed by that event's id (`stage`).
A delivery loop posts due notifications; the merchant acknowledges with HTTP 2xx and a body of
`SUCCESS` (plain, or JSON `{"code": "SUCCESS"}`). Anything else is retried on the schedule in settings
(15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m, 30m, 1h, 3h, 3h, 3h, 6h, 6h: about 24 h in all); after
the last one the notification is FAILED. Every attempt is a NotificationAttempt row, which the
merchant reads through `GET /api/v1/orders/{order_id}/notifications`: its HTTP status and a
short reason in our words, never the answer's text. Each POST goes only where the outbound
policy allows (core/outbound.py, checked again after DNS resolution, to the checked address,
redirects not followed); a URL that can never be sent to is FAILED at its first attempt.

A notification whose app credential has been disabled (or removed) cannot be signed: a
disabled app never comes back (a leaked secret is revoked for good), so the attempt is
recorded with that reason, nothing is posted, and the notification is FAILED at once rather
than retried for a day. The merchant still sees it, and the order, through any other app.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import logctx, payer_ids
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.outbound import OutboundPolicy, post_bounded
from fulema.gateway.signing import notification_signature
from fulema.merchants import service as merchants
from fulema.payments.deps import WebhookSwitch
from fulema.payments.models import Notification, NotificationAttempt, Order
from fulema.payments.notification_claims import (
    PENDING,
    Claimed,
    Outcome,
    claim_due,
    record_attempt,
)
from fulema.payments.schemas import NotificationAttemptOut, NotificationOut
from fulema.payments.views import attempt_view, notification_view

log = structlog.get_logger(__name__)

DELIVERY_CONCURRENCY = 16
ACK_READ_BYTES = 1024  # SUCCESS or {"code": "SUCCESS"}: nothing longer is an acknowledgement
TOPICS = ("payment.succeeded", "refund.succeeded")


_NOT_FOR_MERCHANT = {"notify_url", "app_id", "payer_hash", "payer_id_sealed"}


def wire_body(stored: str) -> bytes:
    """The notification as the merchant receives it: the stored body with the payer id opened
    (the merchant that owns the order gets its payer's id, as the channels' notifications
    carry it; the row keeps it sealed)."""
    doc = orjson.loads(stored)
    data = doc.get("data") if isinstance(doc, dict) else None
    if isinstance(data, dict) and data.get("payer_id"):
        data["payer_id"] = payer_ids.open_sealed(data["payer_id"])
    return orjson.dumps(doc)


def stage(session: AsyncSession, *, event_id: str, topic: str, payload: dict[str, Any]) -> None:
    """Write the merchant's notification in the transaction that records the change and its
    outbox event. The notifications table is itself an outbox: a crash after the commit loses
    nothing, and the payment needs no second hop through the event dispatcher (a claim, a
    handler transaction and a delivery mark fewer per payment)."""
    if topic not in TOPICS:
        raise ValueError(f"no merchant notification for {topic}")
    url = payload.get("notify_url")
    if not url:
        return
    now = clock.now()
    data = {k: v for k, v in payload.items() if k not in _NOT_FOR_MERCHANT}
    if "payer_id" in data:  # the merchant's own payer, stored sealed, opened only to send
        data["payer_id"] = payload.get("payer_id_sealed")
    body = {"id": event_id, "type": topic, "created_at": now.isoformat(), "data": data}
    session.add(Notification(
        id=new_id("ntf"), event_id=event_id, merchant_id=payload["merchant_id"],
        app_id=payload["app_id"], order_id=payload["order_id"], kind=topic, url=url,
        body=orjson.dumps(body).decode(), status=PENDING, attempts=0,
        next_attempt_at=now, created_at=now))


async def stage_if_wanted(session: AsyncSession, switch: WebhookSwitch, *, event_id: str,
                          topic: str, payload: dict[str, Any]) -> bool:
    """`stage`, if the payload names a notify_url and the merchant's webhook switch for the
    topic is on (docs/messaging.md, Subscriptions). Answers whether it was staged."""
    if not payload.get("notify_url"):
        return False
    if not await switch(session, merchant_id=str(payload["merchant_id"]), topic=topic):
        log.info("notify.switched_off", merchant_id=payload["merchant_id"], topic=topic,
                 event_id=event_id)
        return False
    stage(session, event_id=event_id, topic=topic, payload=payload)
    return True


async def _post(policy: OutboundPolicy, http: httpx.AsyncClient, url: str, body: bytes,
                headers: dict[str, str]) -> tuple[int | None, bool, str | None, bool]:
    """(HTTP status, acknowledged, short reason, give up) of one POST to a merchant's URL,
    through the outbound door (`core.outbound.post_bounded`: checked again, pinned to the
    checked address, no redirects, no more than ACK_READ_BYTES read). Whatever goes wrong
    becomes a recorded attempt with a short reason of our own wording: never the answer's
    text (a merchant must not read what an address inside the bank answers)."""
    result = await post_bounded(policy, http, url, body, headers, read_bytes=ACK_READ_BYTES)
    if result.status is None:
        return None, False, result.reason, result.permanent
    ok = _acknowledged(result.status, result.head)
    reason = None if ok else (
        "redirect not followed" if 300 <= result.status < 400
        else "not acknowledged (expected HTTP 2xx with body SUCCESS)")
    return result.status, ok, reason, False


def _acknowledged(status_code: int, head: bytes) -> bool:
    if not 200 <= status_code < 300:
        return False
    text = head.decode("utf-8", "replace").strip()
    if text == "SUCCESS":
        return True
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("code") == "SUCCESS"


async def deliver_due(db: Database, settings: Settings, http: httpx.AsyncClient, *,
                      limit: int = 50, policy: OutboundPolicy | None = None) -> int:
    """Post every due notification once. Returns how many were acknowledged. `policy` is the
    outbound policy (default: the settings'; a test passes one with its own resolver)."""
    due = await claim_due(db, limit=limit, concurrency=DELIVERY_CONCURRENCY)
    # Each app's credential read once per round, before the concurrent posts: read by each
    # delivery, a round's notifications for one app all missed the cache at once.
    credentials = {app_id: await _credential(db, app_id) for app_id in {c.app_id for c in due}}
    # Merchants' endpoints answer slowly and independently: post to them concurrently
    # (bounded), so one slow receiver does not hold up everybody else's notifications.
    gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def one(claimed: Claimed) -> int:
        # each delivery's lines (the HTTP call's too) name it and its order
        async with gate:
            with logctx.scope(notification_id=claimed.id, order_id=claimed.order_id):
                return await _deliver_one(db, settings, http, claimed,
                                          credentials[claimed.app_id], policy)

    return sum(await asyncio.gather(*(one(n) for n in due)))


async def _credential(db: Database, app_id: str) -> merchants.AppCredential | None:
    """The app's credential, or None for an app that is disabled or removed."""
    try:
        return await merchants.get_app_credential(db, app_id=app_id)
    except FulemaError as exc:
        if exc.code is not ErrorCode.APP_NOT_FOUND:
            raise
        return None


async def _deliver_one(db: Database, settings: Settings, http: httpx.AsyncClient,
                       claimed: Claimed, cred: merchants.AppCredential | None,
                       policy: OutboundPolicy | None) -> int:
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    ok = give_up = False
    if cred is None:
        # Nothing may sign it: record why, and stop (a disabled app is never re-enabled).
        error, give_up = (f"APP_NOT_FOUND: app {claimed.app_id} is disabled or removed, so "
                          "the notification cannot be signed; not sent"), True
    else:
        body = wire_body(claimed.body)
        ts = clock.timestamp()
        signature = notification_signature(cred.secret, ts, body)
        headers = {"Content-Type": "application/json", "User-Agent": "Fulema-Notify/1.0",
                   "Fulema-Event-Id": claimed.id,
                   "Fulema-Signature": f"t={ts},v1={signature}"}
        status, ok, error, give_up = await _post(policy or settings.outbound_policy(), http,
                                                 claimed.url, body, headers)
    duration = int((time.perf_counter() - started) * 1000)
    await record_attempt(db, claimed, Outcome(http_status=status, ok=ok, error=error,
                                              give_up=give_up, duration_ms=duration),
                         settings.notify_schedule_seconds)
    log.info("notify.attempt", notification_id=claimed.id, order_id=claimed.order_id, ok=ok,
             status=status, error=error)
    return int(ok)


async def resend(db: Database, *, merchant_id: str, order_id: str) -> list[NotificationOut]:
    """Merchant asked for the notifications again: deliver them now, whatever their state."""
    async with db.transaction() as s:
        await _check_order(s, merchant_id=merchant_id, order_id=order_id)
        rows = list((await s.scalars(select(Notification).where(
            Notification.order_id == order_id))).all())
        for n in rows:
            n.status, n.next_attempt_at, n.claimed_until = PENDING, clock.now(), None
        history = await _attempts_of(s, [n.id for n in rows])
        return [notification_view(n, history.get(n.id, [])) for n in rows]


async def list_for_order(db: Database, *, merchant_id: str, order_id: str
                         ) -> list[NotificationOut]:
    """The order's notifications with every attempt; ORDER_NOT_FOUND for another merchant's."""
    async with db.transaction() as s:
        await _check_order(s, merchant_id=merchant_id, order_id=order_id)
        rows = (await s.scalars(select(Notification).where(
            Notification.order_id == order_id, Notification.merchant_id == merchant_id)
            .order_by(Notification.created_at, Notification.id))).all()
        history = await _attempts_of(s, [n.id for n in rows])
        return [notification_view(n, history.get(n.id, [])) for n in rows]


async def _attempts_of(s: AsyncSession, notification_ids: list[str]
                       ) -> dict[str, list[NotificationAttemptOut]]:
    """Every delivery attempt of these notifications, oldest first, in one query."""
    if not notification_ids:
        return {}
    rows = (await s.scalars(select(NotificationAttempt)
                            .where(NotificationAttempt.notification_id.in_(notification_ids))
                            .order_by(NotificationAttempt.at, NotificationAttempt.id))).all()
    history: dict[str, list[NotificationAttemptOut]] = {}
    for a in rows:
        history.setdefault(a.notification_id, []).append(attempt_view(a))
    return history


async def _check_order(s: AsyncSession, *, merchant_id: str, order_id: str) -> None:
    """ORDER_NOT_FOUND unless the order is this merchant's (another's reads as absent)."""
    order = await s.get(Order, order_id)
    if order is None or order.merchant_id != merchant_id:
        raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
