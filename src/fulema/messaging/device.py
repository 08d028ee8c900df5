"""A cloud speaker, simulated: what `fulema speaker --device ID` runs, and what the tests and
the latency benchmark connect by the thousand.

It does what a real device must: connect with its own credentials and a persistent session,
subscribe to its own topic at QoS 1, say hello (so the platform sends what it missed), check
each message's signature, play a message id once however often it arrives, and acknowledge
every valid message (a duplicate too: its first acknowledgement may be the one that was lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fulema.messaging.domain import SeenIds, verify
from fulema.messaging.transport import NO_DELAY, messages_topic, up_topic


@dataclass
class SpeakerDevice:
    speaker_id: str
    key: bytes
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    prefix: str = "fulema"
    client_id: str | None = None  # default fulema-speaker-<speaker id>: one session per device
    drop_acks: int = 0  # acknowledgements to "lose" (tests: the platform must resend)
    on_play: Callable[[dict[str, Any]], None] | None = None
    played: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    rejected: int = 0
    seen: SeenIds = field(default_factory=SeenIds)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Stay connected until cancelled; MqttError (refused, lost) propagates."""
        import aiomqtt

        async with aiomqtt.Client(self.host, self.port, username=self.username or self.speaker_id,
                                  password=self.password,
                                  identifier=self.client_id or f"fulema-speaker-{self.speaker_id}",
                                  clean_session=False, keepalive=30,
                                  socket_options=NO_DELAY) as client:
            await client.subscribe(messages_topic(self.prefix, self.speaker_id), qos=1)
            await client.publish(up_topic(self.prefix, self.speaker_id, "hello"), b"{}", qos=1)
            self.subscribed.set()
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, bytes | bytearray):
                    await self.handle(client, bytes(payload))

    async def handle(self, client: Any, raw: bytes) -> None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.rejected += 1
            return
        if not isinstance(body, dict) or body.get("speaker_id") != self.speaker_id \
                or not verify(self.key, body):
            self.rejected += 1  # not signed for this device: never played, never acknowledged
            return
        message_id = str(body["message_id"])
        if self.seen.first_time(message_id):
            self.played.append(body)
            if self.on_play is not None:
                self.on_play(body)
        else:
            self.duplicates += 1
        if self.drop_acks > 0:
            self.drop_acks -= 1
            return
        await client.publish(up_topic(self.prefix, self.speaker_id, "ack"),
                             orjson.dumps({"message_id": message_id}), qos=1)


def speak_to_wav(text: str, out: Path) -> bool:
    """Where espeak-ng is installed, say `text` in Mandarin into a WAV file."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return False
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([espeak, "-v", "cmn", "-w", str(out), text], check=True,  # noqa: S603
                       capture_output=True, timeout=30)
        return True
    return False
