"""Cloud speaker announcements: recorded once per (event, speaker), sent, resent until the
device acknowledges, caught up when a device comes back, expired past the catch-up window.

The rows are the speakers' outbox and delivery log (`models.SpeakerMessage`). Sending is done
by the hub (`messaging.hub`), which claims each due row with a conditional UPDATE (never SKIP
LOCKED, ARCHITECTURE.md) so any number of processes can run it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import as_utc, clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import Event, fresh_events
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.signal import Signal
from fulema.merchants import service as merchants
from fulema.messaging import domain, subscriptions, templates
from fulema.messaging.models import SpeakerMessage

log = structlog.get_logger(__name__)

CONSUMER = "messaging.speaker"
WAKE_KEY = "messaging.speaker_wake"
FAST_KEY = "messaging.speaker_fast_queue"
DUE_KEY = "messaging.speaker_due_now"
OPEN = ("PENDING", "SENT")
MAX_BACKOFF_SECONDS = 60.0


def wake_signal(db: Database) -> Signal:
    """Set when announcements are recorded or a device asks to catch up: the hub's send loop
    waits on it (process-local, kept with the database like its other memos)."""
    signal = db.memo.get(WAKE_KEY)
    if not isinstance(signal, Signal):
        signal = db.memo[WAKE_KEY] = Signal()
    return signal


def mark_due(db: Database) -> None:
    """Rows were made due now (a device's catch-up, an operator's resend): the hub reads the
    due rows at its next wake instead of at its next resend round."""
    db.memo[DUE_KEY] = True
    wake_signal(db).notify()


def take_due_mark(db: Database) -> bool:
    return bool(db.memo.pop(DUE_KEY, False))


async def announce_payment(db: Database, event: Event, *, settings: Settings) -> int:
    """payment.succeeded -> one signed message per speaker of the order's store (or of the
    merchant's default store). Idempotent by event id (receipt) and by (event, speaker)."""
    return await announce_payments(db, [event], settings=settings)


async def announce_payments(db: Database, events: list[Event], *, settings: Settings) -> int:
    """Many payments' announcements in one transaction (the consumer's batch handler: at a few
    dozen payments a second, one commit per payment was what kept the speakers waiting, see
    docs/messaging.md), then handed to the hub at once. Each event is idempotent as above."""
    views = [e for e in events if _is_order_view(e)]
    # An order without a store announces on the merchant's default store's speakers: looked
    # up (and remembered) before the transaction; orders with a store, the usual case, read
    # the stores this process does not remember inside it (no transaction of its own).
    found = {e.id: await _speakers(db, e.payload["merchant_id"], None)
             for e in views if not _store_of(e)}
    now = clock.now()
    expects_ack = bool(settings.speaker_mqtt_url)
    outgoing: list[Outgoing] = []
    async with db.transaction() as s:
        memo = await _remember_stores(db, s, {(e.payload["merchant_id"], store) for e in views
                                          if (store := _store_of(e))})
        for e in views:
            if (store := _store_of(e)):
                found[e.id] = list(memo[(e.payload["merchant_id"], store)][1])
        # Every event leaves its receipt, announced or not (no speaker, switched off): a
        # redelivery after the merchant binds a speaker or switches it on says nothing.
        fresh = {e.id for e in await fresh_events(s, CONSUMER, events)}
        planned = [e for e in views if e.id in fresh and found[e.id]]
        # Only merchants whose payments go to the speaker (the default; a merchant may switch
        # it off, messaging.subscriptions): one query per round, in the same transaction.
        on = await subscriptions.enabled_channels(
            s, {e.payload["merchant_id"] for e in planned}, "payment.succeeded")
        for event in planned:
            if "speaker" in on[event.payload["merchant_id"]]:
                outgoing += _messages(s, event, event.payload, found[event.id], now=now,
                                      settings=settings, expects_ack=expects_ack)
    if not outgoing:
        return 0
    fast_queue(db).extend(outgoing)
    wake_signal(db).notify()
    return len(outgoing)


def _messages(s: Any, event: Event, p: dict[str, Any], found: list[merchants.TerminalInfo], *,
              now: datetime, settings: Settings, expects_ack: bool) -> list[Outgoing]:
    amount = int(p["amount"])
    text = templates.render("payment.succeeded", "speaker", {"amount": amount,
                                                            "channel": p["channel"]})
    paid_at = _parse_time(p.get("paid_at")) or now
    outgoing: list[Outgoing] = []
    for speaker in found:
        assert speaker.speaker_id is not None
        message_id = new_id("spm")
        body = domain.speaker_message(
            key=domain.device_key(settings.speaker_secret, speaker.speaker_id),
            message_id=message_id, speaker_id=speaker.speaker_id, amount_fen=amount,
            channel=p["channel"], text=text, ts_ms=int(now.timestamp() * 1000),
            order_id=p["order_id"])
        s.add(SpeakerMessage(
            id=message_id, event_id=event.id, speaker_id=speaker.speaker_id,
            merchant_id=p["merchant_id"], store_id=speaker.store_id, order_id=p["order_id"],
            amount=Money(amount), channel=p["channel"], text=text, body=body,
            # Claimed for sending in this same transaction (the fast path): the hub of
            # this process sends it straight after the commit, no claim of its own.
            status="SENT" if expects_ack else "LOGGED", attempts=1,
            next_attempt_at=now + timedelta(seconds=settings.speaker_ack_timeout_seconds)
            if expects_ack else None, last_sent_at=now,
            acked_at=None, paid_at=paid_at, created_at=now,
            expires_at=now + timedelta(seconds=settings.speaker_catchup_seconds)))
        outgoing.append(Outgoing(message_id=message_id, speaker_id=speaker.speaker_id,
                                 body=body))
    return outgoing


SPEAKERS_KEY = "messaging.speakers_by_store"
SPEAKERS_TTL_SECONDS = 30.0


def _is_order_view(event: Event) -> bool:
    p = event.payload
    if isinstance(p.get("merchant_id"), str) and isinstance(p.get("order_id"), str) \
            and isinstance(p.get("amount"), int) and isinstance(p.get("channel"), str):
        return True
    log.warning("speaker.event_ignored", event_id=event.id, reason="not an order's view")
    return False


def _speaker_memo(db: Database) -> dict[Any, Any]:
    memo = db.memo.get(SPEAKERS_KEY)
    if not isinstance(memo, dict):
        memo = db.memo[SPEAKERS_KEY] = {}
    if len(memo) > 50_000:
        memo.clear()
    return memo


def _store_of(event: Event) -> str | None:
    store = event.payload.get("store_id")
    return store if isinstance(store, str) and store else None


async def _remember_stores(db: Database, s: AsyncSession,
                           stores: set[tuple[str, str]]) -> dict[Any, Any]:
    """The speakers of every store of a round that this process does not remember, in one
    read in the caller's transaction (a round at a hundred stores would otherwise be a
    hundred reads before the first announcement). Answers the memo, every store of the round
    in it."""
    memo = _speaker_memo(db)
    now = time.monotonic()
    missing = {key for key in stores if (hit := memo.get(key)) is None or hit[0] <= now}
    if missing:
        for key, found in (await merchants.speakers_for_stores_in(s, missing)).items():
            memo[key] = (now + SPEAKERS_TTL_SECONDS, found)
    return memo


async def _speakers(db: Database, merchant_id: str,
                    store_id: str | None) -> list[merchants.TerminalInfo]:
    """The store's speakers, remembered for 30 s in this process (a busy store pays every few
    seconds; its speakers change rarely): a speaker bound or unbound is heard, or silent, within
    that time."""
    memo = _speaker_memo(db)
    key = (merchant_id, store_id)
    hit = memo.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return list(hit[1])
    found = await merchants.speakers_for_order(db, merchant_id=merchant_id, store_id=store_id)
    memo[key] = (time.monotonic() + SPEAKERS_TTL_SECONDS, found)
    return found


def fast_queue(db: Database) -> deque[Outgoing]:
    """Announcements committed by this process's consumer, for this process's hub to send at
    once. Losing one (a crash before it is sent) costs only the ack timeout: the row is SENT
    and due again then, like any unacknowledged message. Bounded: without a hub running
    (a process that only dispatches) the oldest are dropped, and the resend sends them."""
    queue = db.memo.get(FAST_KEY)
    if not isinstance(queue, deque):
        queue = db.memo[FAST_KEY] = deque(maxlen=10_000)
    return queue


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str) and value:
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


async def due_messages(db: Database, *, limit: int = 200) -> list[str]:
    now = clock.now()
    async with db.transaction() as s:
        rows = await s.scalars(select(SpeakerMessage.id).where(
            SpeakerMessage.status.in_(OPEN), SpeakerMessage.next_attempt_at <= now)
            .order_by(SpeakerMessage.next_attempt_at).limit(limit))
        return list(rows.all())


@dataclass(frozen=True)
class Outgoing:
    message_id: str
    speaker_id: str
    body: dict[str, Any]


def backoff(attempts: int, ack_timeout: float) -> float:
    """Wait after the n-th send before sending again: the ack timeout, doubling, at most 60 s."""
    return float(min(ack_timeout * 2 ** max(0, min(attempts - 1, 6)), MAX_BACKOFF_SECONDS))


async def claim(db: Database, message_id: str, *, settings: Settings,
                expects_ack: bool) -> Outgoing | None:
    """The right to send one due message now (None if another process took it, it was
    acknowledged meanwhile, or it expired: then it is marked EXPIRED)."""
    now = clock.now()
    async with db.transaction() as s:
        m = await s.get(SpeakerMessage, message_id)
        if m is None or m.status not in OPEN or m.next_attempt_at is None \
                or as_utc(m.next_attempt_at) > now:
            return None
        guard = and_(SpeakerMessage.id == m.id, SpeakerMessage.status == m.status,
                     SpeakerMessage.attempts == m.attempts)
        if as_utc(m.expires_at) <= now:
            await s.execute(update(SpeakerMessage).where(guard).values(
                status="EXPIRED", next_attempt_at=None))
            log.warning("speaker.expired", message_id=m.id, speaker_id=m.speaker_id,
                        attempts=m.attempts)
            return None
        attempts = m.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_sent_at": now}
        if expects_ack:
            values.update(status="SENT", next_attempt_at=now + timedelta(
                seconds=backoff(attempts, settings.speaker_ack_timeout_seconds)))
        else:
            values.update(status="LOGGED", next_attempt_at=None)
        result = await s.execute(update(SpeakerMessage).where(guard).values(**values))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return Outgoing(message_id=m.id, speaker_id=m.speaker_id, body=dict(m.body))


async def acknowledge(db: Database, *, speaker_id: str, message_id: str) -> bool:
    """The device played (or had already played) the message. False for a message that is
    not this speaker's or is unknown: the caller logs the rejection."""
    now = clock.now()
    async with db.transaction() as s:
        result = await s.execute(update(SpeakerMessage).where(
            SpeakerMessage.id == message_id, SpeakerMessage.speaker_id == speaker_id,
            SpeakerMessage.status.in_((*OPEN, "EXPIRED"))).values(
            status="ACKED", acked_at=now, next_attempt_at=None))
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return True
        known = await s.scalar(select(SpeakerMessage.status).where(
            SpeakerMessage.id == message_id, SpeakerMessage.speaker_id == speaker_id))
    return known == "ACKED"  # a second ack of the same message is fine


async def acknowledge_many(db: Database, acks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Acknowledgements (speaker id, message id) in one transaction of two statements,
    whatever their number: one read of the named messages, one UPDATE of those that are this
    speaker's and still open. Answers those that named no message of that speaker (an
    acknowledgement repeated for a message already ACKED is fine)."""
    now = clock.now()
    ids = sorted({message_id for _, message_id in acks})
    async with db.transaction() as s:
        rows = (await s.execute(select(SpeakerMessage.id, SpeakerMessage.speaker_id,
                                       SpeakerMessage.status)
                                .where(SpeakerMessage.id.in_(ids)))).all()
        owner = {r.id: (r.speaker_id, r.status) for r in rows}
        good = {pair for pair in acks
                if owner.get(pair[1], ("", ""))[0] == pair[0]
                and owner[pair[1]][1] in (*OPEN, "EXPIRED", "ACKED")}
        open_ids = sorted({m for _, m in good if owner[m][1] != "ACKED"})
        if open_ids:
            await s.execute(update(SpeakerMessage).where(
                SpeakerMessage.id.in_(open_ids), SpeakerMessage.status.in_((*OPEN, "EXPIRED")))
                .values(status="ACKED", acked_at=now, next_attempt_at=None)
                .execution_options(synchronize_session=False))
    return [pair for pair in acks if pair not in good]


async def catch_up(db: Database, *, speaker_id: str, settings: Settings) -> int:
    """A device came (back) online: what it has not acknowledged within the catch-up window,
    at most `speaker_catchup_max` of the newest, is due now."""
    now = clock.now()
    async with db.transaction() as s:
        ids = list((await s.scalars(select(SpeakerMessage.id).where(
            SpeakerMessage.speaker_id == speaker_id, SpeakerMessage.status.in_(OPEN),
            SpeakerMessage.expires_at > now)
            .order_by(SpeakerMessage.created_at.desc())
            .limit(settings.speaker_catchup_max))).all())
        if ids:
            await s.execute(update(SpeakerMessage).where(
                SpeakerMessage.id.in_(ids), SpeakerMessage.status.in_(OPEN))
                .values(next_attempt_at=now))
    if ids:
        mark_due(db)
    return len(ids)


# --- the operator's view: search and resend ----------------------------------------------


@dataclass(frozen=True)
class SpeakerMessageView:
    message_id: str
    event_id: str
    speaker_id: str
    merchant_id: str
    store_id: str
    order_id: str
    amount: int
    channel: str
    text: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_sent_at: datetime | None
    acked_at: datetime | None
    paid_at: datetime | None
    created_at: datetime
    expires_at: datetime


def message_view(m: SpeakerMessage) -> SpeakerMessageView:
    return SpeakerMessageView(
        message_id=m.id, event_id=m.event_id, speaker_id=m.speaker_id,
        merchant_id=m.merchant_id, store_id=m.store_id, order_id=m.order_id,
        amount=m.amount.fen, channel=m.channel, text=m.text, status=m.status,
        attempts=m.attempts, next_attempt_at=m.next_attempt_at, last_sent_at=m.last_sent_at,
        acked_at=m.acked_at, paid_at=m.paid_at, created_at=m.created_at,
        expires_at=m.expires_at)


async def search_messages(db: Database, *, speaker_id: str | None = None,
                          order_id: str | None = None, merchant_id: str | None = None,
                          status: str | None = None, limit: int = 50,
                          starting_after: str | None = None) -> list[SpeakerMessageView]:
    """Newest first; `starting_after` is the last message id of the previous page."""
    q = select(SpeakerMessage).order_by(SpeakerMessage.id.desc()).limit(limit)
    for column, value in ((SpeakerMessage.speaker_id, speaker_id),
                          (SpeakerMessage.order_id, order_id),
                          (SpeakerMessage.merchant_id, merchant_id),
                          (SpeakerMessage.status, status)):
        if value:
            q = q.where(column == value)
    if starting_after:
        q = q.where(SpeakerMessage.id < starting_after)
    async with db.transaction() as s:
        return [message_view(m) for m in await s.scalars(q)]


async def resend(db: Database, *, message_id: str, operator: str,
                 settings: Settings) -> SpeakerMessageView:
    """Send a message again now, with a fresh catch-up window (the device drops it if it has
    already played it). Written to the audit trail."""
    now = clock.now()
    async with db.transaction() as s:
        m = (await s.scalars(select(SpeakerMessage).where(SpeakerMessage.id == message_id)
                             .with_for_update())).first()
        if m is None:
            raise FulemaError(ErrorCode.MESSAGE_NOT_FOUND, f"no speaker message {message_id}")
        before = m.status
        m.status, m.next_attempt_at = "PENDING", now
        m.expires_at = now + timedelta(seconds=settings.speaker_catchup_seconds)
        await audit.record(s, actor=operator, action="speaker_message.resend",
                           target_type="speaker_message", target_id=m.id,
                           detail={"status_before": before, "speaker_id": m.speaker_id})
        view = message_view(m)
    mark_due(db)
    return view
