"""Events for the bank's other systems: a consumer that publishes every event to NATS JetStream.

Why JetStream rather than RabbitMQ: a JetStream publish is acknowledged only once the stream has
stored the message (the confirm we need before moving our position), and the stream drops a
second message with the same `Nats-Msg-Id` inside its duplicate window. Our delivery is
at-least-once (a crash between the broker's acknowledgement and our position update publishes
again); with the event id as the message id the broker turns that into exactly-once storage,
where RabbitMQ's publisher confirms would leave the duplicate for every reader to drop.

The consumer is STOP on poison: the bank's systems see the events in order and none is missing;
while the broker is down it retries with back-off and raises the alarm, and nothing is lost
because our position moves only after the broker's acknowledgement. Off unless
FULEMA_EVENTS_NATS_URL is set.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import structlog

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, Start
from fulema.core.masking import mask_fields  # phones, account and card numbers leave masked

log = structlog.get_logger(__name__)

CONSUMER_NAME = "bus.nats"
DUPLICATE_WINDOW_SECONDS = 3600.0  # longer than any claim plus back-off we would retry within


class NatsPublisher:
    def __init__(self, url: str, *, stream: str, subject_prefix: str,
                 ack_timeout: float = 2.0) -> None:
        self.url = url
        self.stream = stream
        self.subject_prefix = subject_prefix.rstrip(".")
        self.ack_timeout = ack_timeout
        self._nc: Any = None
        self._js: Any = None

    async def _jetstream(self) -> Any:
        import nats
        from nats.js.api import StorageType, StreamConfig

        if self._nc is not None and not self._nc.is_closed:
            return self._js
        self._nc = await nats.connect(self.url, connect_timeout=2, reconnect_time_wait=0.5,
                                      max_reconnect_attempts=-1, allow_reconnect=True)
        self._js = self._nc.jetstream()
        config = StreamConfig(name=self.stream, subjects=[f"{self.subject_prefix}.>"],
                              storage=StorageType.FILE,
                              duplicate_window=DUPLICATE_WINDOW_SECONDS)
        try:
            await self._js.add_stream(config)
        except Exception:  # it exists with another configuration: the bank's to keep
            await self._js.stream_info(self.stream)
        return self._js

    async def publish(self, _db: Database, event: Event) -> None:
        js = await self._jetstream()
        body = orjson.dumps({"id": event.id, "topic": event.topic, "seq": event.seq,
                             "created_at": event.created_at.isoformat() if event.created_at
                             else None, "payload": mask_fields(event.payload)})
        ack = await js.publish(f"{self.subject_prefix}.{event.topic}", body,
                               timeout=self.ack_timeout, stream=self.stream,
                               headers={"Nats-Msg-Id": event.id,
                                        "Fulema-Event-Seq": str(event.seq)})
        if ack.duplicate:
            log.info("bus.duplicate_dropped_by_broker", event_id=event.id)

    async def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = self._js = None


def consumers(settings: Settings) -> tuple[list[Consumer], NatsPublisher | None]:
    """The publisher consumer when configured (and the publisher, for the app to close)."""
    if not settings.events_nats_url:
        return [], None
    publisher = NatsPublisher(settings.events_nats_url, stream=settings.events_nats_stream,
                              subject_prefix=settings.events_nats_subject_prefix)
    consumer = Consumer(name=CONSUMER_NAME, handler=publisher.publish, on_poison=Poison.STOP,
                        max_attempts=5, start=Start(settings.events_nats_start))
    return [consumer], publisher
