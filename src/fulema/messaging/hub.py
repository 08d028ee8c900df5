"""The speaker hub: one per platform process that runs background work. It sends due speaker
messages (woken as soon as announcements are recorded), reads the devices' acknowledgements and
hellos, and resends what was not acknowledged in time.

Chosen by settings: an MQTT broker when FULEMA_SPEAKER_MQTT_URL is set, else the log feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable

import structlog

from fulema.core import logctx
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.messaging import speakers
from fulema.messaging.domain import MalformedAck, parse_ack
from fulema.messaging.transport import LogFeed, MqttTransport, SpeakerTransport, TransportDown

log = structlog.get_logger(__name__)


class SpeakerHub:
    def __init__(self, db: Database, settings: Settings,
                 transport: SpeakerTransport | None = None) -> None:
        self.db = db
        self.settings = settings
        self._up: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
        self.transport: SpeakerTransport = transport or (
            MqttTransport(settings.speaker_mqtt_url, prefix=settings.speaker_topic_prefix)
            if settings.speaker_mqtt_url else LogFeed())

    @property
    def feed(self) -> LogFeed | None:
        return self.transport if isinstance(self.transport, LogFeed) else None

    async def deliver_due(self) -> int:
        """Send every due message once (claimed first, so two processes never both send).
        Answers how many were sent (the broker has them)."""
        return await self._send_all(self._take_fast() + await self._claim_due())

    def _take_fast(self) -> list[speakers.Outgoing]:
        """What this process's consumer recorded and claimed just now."""
        queue = speakers.fast_queue(self.db)
        return [queue.popleft() for _ in range(len(queue))]

    async def _claim_due(self) -> list[speakers.Outgoing]:
        """Due resends, catch-ups and operators' resends, each claimed."""
        claimed: list[speakers.Outgoing] = []
        for message_id in await speakers.due_messages(self.db):
            out = await speakers.claim(self.db, message_id, settings=self.settings,
                                       expects_ack=self.transport.expects_ack)
            if out is not None:
                claimed.append(out)
        return claimed

    async def _send_all(self, claimed: list[speakers.Outgoing]) -> int:
        results = await asyncio.gather(*(self._send(o) for o in claimed),
                                       return_exceptions=True)
        sent = 0
        for out, result in zip(claimed, results, strict=True):
            if isinstance(result, TransportDown):
                log.warning("speaker.send_deferred", message_id=out.message_id,
                            error=str(result))
            elif isinstance(result, BaseException):
                log.error("speaker.send_failed", message_id=out.message_id, error=repr(result))
            else:
                sent += 1
        return sent

    async def _send(self, out: speakers.Outgoing) -> None:
        """One message, its transport's log lines naming the order it announces."""
        with logctx.scope(order_id=str(out.body.get("order_id") or "") or None,
                          message_id=out.message_id):
            await self.transport.send(out.speaker_id, out.body)

    def _spawn_send(self, batch: list[speakers.Outgoing], sending: set[asyncio.Task[int]]
                    ) -> None:
        if batch:
            task = asyncio.create_task(self._send_all(batch))
            sending.add(task)
            task.add_done_callback(sending.discard)

    async def _claim_and_send(self, sending: set[asyncio.Task[int]]) -> None:
        try:
            self._spawn_send(await self._claim_due(), sending)
        except Exception as exc:
            log.error("job.failed", job="speakers", error=repr(exc))

    async def on_up(self, speaker_id: str, kind: str, payload: bytes) -> None:
        """A device's acknowledgement or hello. A malformed or foreign acknowledgement is
        logged and dropped: it changes nothing."""
        if kind == "ack":
            try:
                message_id = parse_ack(payload)
            except MalformedAck as exc:
                log.warning("speaker.ack_rejected", speaker_id=speaker_id, reason=str(exc))
                return
            if not await speakers.acknowledge(self.db, speaker_id=speaker_id,
                                              message_id=message_id):
                log.warning("speaker.ack_rejected", speaker_id=speaker_id,
                            message_id=message_id, reason="no such message for this speaker")
        elif kind == "hello":
            await speakers.catch_up(self.db, speaker_id=speaker_id, settings=self.settings)

    async def _queue_up(self, speaker_id: str, kind: str, payload: bytes) -> None:
        """What the transport hands over while running: queued, so reading from the broker
        never waits for the database (acknowledgements are then written in batches)."""
        self._up.put_nowait((speaker_id, kind, payload))

    async def _write_ups(self) -> None:
        """Drain the queue: every acknowledgement waiting is written in one transaction;
        hellos and malformed acks go through `on_up`."""
        while True:
            items = [await self._up.get()]
            while not self._up.empty() and len(items) < 500:
                items.append(self._up.get_nowait())
            acks: list[tuple[str, str]] = []
            for speaker_id, kind, payload in items:
                if kind == "ack":
                    try:
                        acks.append((speaker_id, parse_ack(payload)))
                    except MalformedAck as exc:
                        log.warning("speaker.ack_rejected", speaker_id=speaker_id,
                                    reason=str(exc))
                else:
                    await self._guarded(self.on_up(speaker_id, kind, payload))
            if acks:
                for speaker_id, message_id in await self._guarded_acks(acks):
                    log.warning("speaker.ack_rejected", speaker_id=speaker_id,
                                message_id=message_id, reason="no such message for this speaker")

    async def _guarded_acks(self, acks: list[tuple[str, str]]) -> list[tuple[str, str]]:
        try:
            return await speakers.acknowledge_many(self.db, acks)
        except Exception as exc:  # the device acknowledges again when it is sent again
            log.error("speaker.acks_failed", count=len(acks), error=repr(exc))
            return []

    @staticmethod
    async def _guarded(step: Awaitable[None]) -> None:
        try:
            await step
        except Exception as exc:
            log.error("speaker.up_failed", error=repr(exc))

    async def run_forever(self) -> None:
        """The transport's reader and the acknowledgement writer beside the send loop; the
        loop wakes when announcements are recorded and at least every half ack timeout, for
        resends."""
        reader = asyncio.create_task(self.transport.run(self._queue_up))
        writer = asyncio.create_task(self._write_ups())
        wake = speakers.wake_signal(self.db)
        period = max(0.05, self.settings.speaker_ack_timeout_seconds / 2)
        sending: set[asyncio.Task[int]] = set()
        claiming: asyncio.Task[None] | None = None
        next_read = 0.0
        try:
            while True:
                seen = wake.generation
                try:
                    # Sent without waiting for the broker's PUBACKs of the previous round: a
                    # message recorded meanwhile goes out now, not after the round's slowest
                    # acknowledgement (an unsent one is simply due again at its ack timeout).
                    self._spawn_send(self._take_fast(), sending)
                    # The due rows are read each half ack timeout, or at once when a catch-up
                    # or a resend made some due: not on every payment's wake-up; and claimed
                    # (a transaction each) in a task of their own, one claiming at a time, so
                    # a burst of resends never holds back the fresh announcements behind it
                    # (measured: fresh ones waited 0.7-3.7 s behind the claims).
                    if (claiming is None or claiming.done()) and (
                            speakers.take_due_mark(self.db) or time.monotonic() >= next_read):
                        next_read = time.monotonic() + period
                        claiming = asyncio.create_task(self._claim_and_send(sending))
                except Exception as exc:
                    log.error("job.failed", job="speakers", error=repr(exc))
                await wake.wait(seen, period)
        finally:
            loops: list[asyncio.Task[object]] = [reader, writer, *sending]
            if claiming is not None:
                loops.append(claiming)
            for each in loops:
                each.cancel()
            for each in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await each
