"""Each speaker logs in with its own credentials and hears only its own topic: checked against
a private Mosquitto started with a password file (mosquitto_passwd) and the ACL the docs show
(messaging.broker.acl_text), on a free port of our own."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from pathlib import Path

import aiomqtt

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.merchants import service as merchants
from fulema.messaging import speakers
from fulema.messaging.broker import PLATFORM_USER, speaker_credentials
from fulema.messaging.device import SpeakerDevice
from fulema.messaging.domain import device_key
from fulema.messaging.hub import SpeakerHub
from fulema.messaging.transport import MqttTransport
from tests.messaging.mqtt_helpers import eventually, private_mosquitto

PREFIX = "fulema"
PLATFORM_PASSWORD = "platform-" + secrets.token_hex(8)


async def refused(port: int, username: str | None, password: str | None) -> bool:
    try:
        async with aiomqtt.Client("127.0.0.1", port, username=username, password=password,
                                  identifier=f"probe-{secrets.token_hex(4)}"):
            return False
    except aiomqtt.MqttError:
        return True


async def test_speakers_need_their_own_password_and_hear_only_their_own_topic(
        sqlite_db: Database, settings: Settings, tmp_path: Path) -> None:
    db = sqlite_db
    secret = settings.speaker_secret
    a, b = speaker_credentials(secret, "spk_demo"), speaker_credentials(secret, "spk_other")
    users = {PLATFORM_USER: PLATFORM_PASSWORD, a.username: a.password, b.username: b.password}
    with private_mosquitto(tmp_path, prefix=PREFIX, users=users) as port:
        assert await refused(port, None, None)  # anonymous
        assert await refused(port, "spk_demo", "wrong-password")
        assert await refused(port, "spk_demo", b.password)  # another speaker's password

        settings = settings.model_copy(update={
            "speaker_mqtt_url": f"mqtt://{PLATFORM_USER}:{PLATFORM_PASSWORD}@127.0.0.1:{port}",
            "speaker_topic_prefix": PREFIX, "speaker_ack_timeout_seconds": 60.0})
        demo = await merchants.onboard_demo_merchant(db, settings=settings)
        hub = SpeakerHub(db, settings)
        assert isinstance(hub.transport, MqttTransport)
        owner = SpeakerDevice(speaker_id="spk_demo", key=device_key(secret, "spk_demo"),
                              port=port, password=a.password, prefix=PREFIX)
        eavesdropped: list[bytes] = []
        acks_seen: list[tuple[str, bytes]] = []

        async def eavesdrop() -> None:
            # spk_other, logged in properly, tries to hear spk_demo's takings and to
            # acknowledge (and ask for) spk_demo's messages
            async with aiomqtt.Client("127.0.0.1", port, username=b.username,
                                      password=b.password, identifier="eve") as eve:
                await eve.subscribe(f"{PREFIX}/speakers/spk_demo/messages", qos=1)
                await eve.subscribe(f"{PREFIX}/speakers/#", qos=1)
                async for m in eve.messages:
                    eavesdropped.append(bytes(m.payload))  # type: ignore[arg-type]

        async def platform_listener() -> None:
            async with aiomqtt.Client("127.0.0.1", port, username=PLATFORM_USER,
                                      password=PLATFORM_PASSWORD, identifier="audit") as c:
                await c.subscribe(f"{PREFIX}/speakers/+/ack", qos=1)
                async for m in c.messages:
                    acks_seen.append((str(m.topic.value), bytes(m.payload)))  # type: ignore[arg-type]

        tasks = [asyncio.create_task(x) for x in (hub.run_forever(), eavesdrop(),
                                                  platform_listener())]
        try:
            await asyncio.wait_for(hub.transport.connected.wait(), 5)
            await asyncio.sleep(0.3)  # the eavesdropper and the listener subscribed
            async with aiomqtt.Client("127.0.0.1", port, username=b.username,
                                      password=b.password, identifier="eve2") as eve2:
                await eve2.publish(f"{PREFIX}/speakers/spk_demo/ack",
                                   b'{"message_id": "spm_forged"}', qos=1)
                await eve2.publish(f"{PREFIX}/speakers/spk_other/ack",
                                   b'{"message_id": "spm_own"}', qos=1)

            owner_task = asyncio.create_task(owner.run())
            tasks.append(owner_task)
            await asyncio.wait_for(owner.subscribed.wait(), 5)
            await speakers.announce_payment(db, Event(
                id=new_id("evt"), topic="payment.succeeded", payload={
                    "order_id": new_id("ord"), "merchant_id": demo.merchant_id,
                    "store_id": demo.store_id, "amount": 1250, "channel": "ecny"}),
                settings=settings)

            async def acked() -> bool:
                return [m.status for m in await speakers.search_messages(db)] == ["ACKED"]

            await eventually(acked)
            await asyncio.sleep(0.3)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    assert [p["text"] for p in owner.played] == ["付了码收款十二元五角"]
    assert eavesdropped == []  # nothing of spk_demo's reached spk_other
    # spk_other's write to spk_demo's ack topic never reached the platform; its own did
    assert (f"{PREFIX}/speakers/spk_other/ack", b'{"message_id": "spm_own"}') in acks_seen
    assert not any(b"spm_forged" in payload for _, payload in acks_seen)
    owner_acks = {payload for topic, payload in acks_seen
                  if topic == f"{PREFIX}/speakers/spk_demo/ack"}
    assert owner_acks == {f'{{"message_id":"{owner.played[0]["message_id"]}"}}'.encode()}


def test_the_acl_grants_each_speaker_its_own_topics_and_no_wildcard() -> None:
    from fulema.messaging.broker import acl_text

    text = acl_text("bank/zjg")
    assert "pattern read bank/zjg/speakers/%u/messages" in text
    assert "pattern write bank/zjg/speakers/%u/ack" in text
    assert "topic write bank/zjg/speakers/+/messages" in text
    grants = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not any("#" in line for line in grants)  # no multi-level wildcard anywhere
    assert not any(line.startswith("pattern write") and line.endswith("/messages")
                   for line in grants)  # no speaker may write announcements
