"""How speaker messages leave the platform: over MQTT (aiomqtt), or, on the embedded default
without a broker, into the log and the live feed page.

Topics (docs/messaging.md), under the configured prefix P:
- `P/speakers/{speaker_id}/messages`  platform -> device, QoS 1, the signed announcement
- `P/speakers/{speaker_id}/ack`       device -> platform, QoS 1, {"message_id": "..."}
- `P/speakers/{speaker_id}/hello`     device -> platform on (re)connecting: send what I missed
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import orjson
import structlog

from fulema.core.clock import clock
from fulema.core.ids import new_token
from fulema.core.signal import Signal

log = structlog.get_logger(__name__)

# paho leaves Nagle on: an acknowledgement written right after another small packet then waits
# for the peer's delayed ACK (~40 ms a hop, 80 ms a round trip measured on this machine).
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

# QoS 1 publishes awaiting the broker's PUBACK at once. paho's default, 20, queued a busy
# round's announcements behind each other's round trips (docs/messaging.md, Latency).
INFLIGHT = 1000

UpHandler = Callable[[str, str, bytes], Awaitable[None]]  # (speaker_id, "ack"|"hello", payload)


def messages_topic(prefix: str, speaker_id: str) -> str:
    return f"{prefix}/speakers/{speaker_id}/messages"


def up_topic(prefix: str, speaker_id: str, kind: str) -> str:
    return f"{prefix}/speakers/{speaker_id}/{kind}"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None


def parse_mqtt_url(url: str) -> BrokerAddress:
    """mqtt://user:password@host:1883 (user and password optional)."""
    parts = urlsplit(url)
    if parts.scheme not in {"mqtt", "tcp"} or not parts.hostname:
        raise ValueError("an MQTT URL looks like mqtt://user:password@host:1883")
    return BrokerAddress(host=parts.hostname, port=parts.port or 1883,
                         username=unquote(parts.username) if parts.username else None,
                         password=unquote(parts.password) if parts.password else None)


class TransportDown(RuntimeError):
    """Not connected to the broker: the message stays due and is sent again later."""


class SpeakerTransport(Protocol):
    expects_ack: bool

    async def send(self, speaker_id: str, body: dict[str, Any]) -> None: ...

    async def run(self, on_up: UpHandler) -> None: ...


@dataclass(frozen=True)
class FeedItem:
    seq: int
    at: datetime
    speaker_id: str
    text: str
    amount_yuan: str
    channel: str
    message_id: str


class LogFeed:
    """The embedded default: each message is logged and kept (the newest 200) for the live
    feed page; there is no device to acknowledge, so a message is final once shown."""

    expects_ack = False

    def __init__(self, size: int = 200) -> None:
        self.items: deque[FeedItem] = deque(maxlen=size)
        self.changed = Signal()
        self._seq = itertools.count(1)

    async def send(self, speaker_id: str, body: dict[str, Any]) -> None:
        item = FeedItem(seq=next(self._seq), at=clock.now(), speaker_id=speaker_id,
                        text=str(body.get("text", "")), amount_yuan=str(body.get("amount_yuan")),
                        channel=str(body.get("channel")), message_id=str(body.get("message_id")))
        self.items.append(item)
        log.info("speaker.feed", speaker_id=speaker_id, message_id=item.message_id,
                 text=item.text)
        self.changed.notify()

    def after(self, seq: int) -> list[FeedItem]:
        return [i for i in self.items if i.seq > seq]

    async def run(self, on_up: UpHandler) -> None:
        await asyncio.Event().wait()  # nothing comes back from a log


class MqttTransport:
    """One connection per platform process: publishes QoS 1 (the send returns when the
    broker has the message) and reads the devices' acknowledgements and hellos."""

    expects_ack = True

    def __init__(self, url: str, *, prefix: str, client_id: str | None = None) -> None:
        self.address = parse_mqtt_url(url)
        self.prefix = prefix
        self.client_id = client_id or f"fulema-platform-{new_token(6)}"
        self._client: Any = None
        self.connected = asyncio.Event()

    async def send(self, speaker_id: str, body: dict[str, Any]) -> None:
        client = self._client
        if client is None:
            raise TransportDown("not connected to the MQTT broker")
        import aiomqtt

        try:
            await client.publish(messages_topic(self.prefix, speaker_id), orjson.dumps(body),
                                 qos=1, timeout=5)
        except aiomqtt.MqttError as exc:
            raise TransportDown(str(exc)) from exc

    async def run(self, on_up: UpHandler) -> None:
        """Connect, subscribe to the devices' topics, hand each up-message to `on_up`;
        reconnect (1 s, then doubling to 30 s) when the broker goes away."""
        import aiomqtt

        wait = 1.0
        while True:
            a = self.address
            try:
                async with aiomqtt.Client(a.host, a.port, username=a.username,
                                          password=a.password, identifier=self.client_id,
                                          keepalive=30, socket_options=NO_DELAY,
                                          max_inflight_messages=INFLIGHT) as client:
                    client.pending_calls_threshold = INFLIGHT  # a busy round is not a warning
                    for kind in ("ack", "hello"):
                        await client.subscribe(up_topic(self.prefix, "+", kind), qos=1)
                    self._client = client
                    self.connected.set()
                    wait = 1.0
                    log.info("speaker.broker_connected", host=a.host, port=a.port)
                    async for message in client.messages:
                        await self._dispatch(on_up, str(message.topic.value), message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("speaker.broker_lost", error=str(exc), retry_in=wait)
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(wait)
            wait = min(wait * 2, 30.0)

    async def _dispatch(self, on_up: UpHandler, topic: str, payload: Any) -> None:
        parts = topic.split("/")
        if len(parts) < 3 or parts[-3] != "speakers":
            return
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        with contextlib.suppress(Exception):  # one bad message must not drop the connection
            try:
                await on_up(parts[-2], parts[-1], raw)
            except Exception as exc:
                log.error("speaker.up_failed", topic=topic, error=repr(exc))
                raise
