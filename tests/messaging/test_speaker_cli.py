"""`fulema speaker --device ID` as a shop owner would run it: against the real broker it prints
each announcement once and acknowledges it; `fulema speaker-credentials` prints what to
provision."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys

from typer.testing import CliRunner

from fulema.cli import app
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.merchants import service as merchants
from fulema.messaging import speakers
from fulema.messaging.domain import device_password
from fulema.messaging.hub import SpeakerHub
from fulema.messaging.transport import MqttTransport
from tests.messaging.mqtt_helpers import eventually, need_shared_broker


async def test_the_simulator_prints_an_announcement_once_and_acknowledges_it(
        sqlite_db: Database, settings: Settings) -> None:
    need_shared_broker()
    db = sqlite_db
    prefix = f"h8test/{secrets.token_hex(6)}"
    settings = settings.model_copy(update={"speaker_mqtt_url": "mqtt://127.0.0.1:1883",
                                           "speaker_topic_prefix": prefix,
                                           "speaker_ack_timeout_seconds": 60.0})
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    env = {**os.environ, "FULEMA_SPEAKER_TOPIC_PREFIX": prefix,
           "FULEMA_SPEAKER_MQTT_URL": "mqtt://127.0.0.1:1883"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fulema.cli", "speaker", "--device", "spk_demo", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    hub = SpeakerHub(db, settings)
    assert isinstance(hub.transport, MqttTransport)
    task = asyncio.create_task(hub.run_forever())
    try:
        assert proc.stderr is not None
        assert proc.stdout is not None
        banner = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"speaker spk_demo listening" in banner
        await asyncio.wait_for(hub.transport.connected.wait(), 5)
        await asyncio.sleep(0.5)  # its subscription is in place shortly after the banner
        await speakers.announce_payment(db, Event(
            id=new_id("evt"), topic="payment.succeeded", payload={
                "order_id": new_id("ord"), "merchant_id": demo.merchant_id,
                "store_id": demo.store_id, "amount": 100101, "channel": "ecny"}),
            settings=settings)
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()

        async def acked() -> bool:
            return [m.status for m in await speakers.search_messages(db)] == ["ACKED"]

        await eventually(acked)
    finally:
        proc.terminate()
        await proc.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert line.rstrip().endswith("1001.01 ecny 付了码收款一千零一元零一分")


def test_speaker_credentials_prints_the_password_key_and_acl() -> None:
    result = CliRunner().invoke(app, ["speaker-credentials", "--device", "spk_demo"],
                                env={"FULEMA_SPEAKER_SECRET": "bank-secret"})
    assert result.exit_code == 0, result.output
    assert f"password {device_password('bank-secret', 'spk_demo')}" in result.output
    assert "pattern read fulema/speakers/%u/messages" in result.output
