"""Announcements on every database: once per (event, speaker), on the right store's speakers,
sent, resent until acknowledged, caught up, expired; malformed or foreign acks change nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.merchants import service as merchants
from fulema.merchants.domain import TerminalKind
from fulema.messaging import speakers
from fulema.messaging.domain import device_key, verify
from fulema.messaging.hub import SpeakerHub
from fulema.messaging.models import SpeakerMessage
from fulema.messaging.transport import LogFeed


def with_broker(settings: Settings) -> Settings:
    """A tree that names a broker (the consumer then expects acknowledgements); the tests
    hand the hub a recording transport instead of connecting."""
    return settings.model_copy(update={"speaker_mqtt_url": "mqtt://broker.invalid:1883"})


class Recorder:
    """A transport that expects acknowledgements and remembers what it sent."""

    expects_ack = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, speaker_id: str, body: dict[str, Any]) -> None:
        self.sent.append((speaker_id, body))

    async def run(self, on_up: Any) -> None:  # pragma: no cover - not run here
        raise NotImplementedError


def paid(merchant_id: str, *, store_id: str | None, amount: int = 1250,
         event_id: str | None = None) -> Event:
    return Event(id=event_id or new_id("evt"), topic="payment.succeeded", payload={
        "order_id": new_id("ord"), "merchant_id": merchant_id, "store_id": store_id,
        "amount": amount, "channel": "wechat", "status": "SUCCESS",
        "paid_at": clock.now().isoformat()})


async def count(db: Database) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(SpeakerMessage)) or 0)


async def status_of(db: Database, message_id: str) -> SpeakerMessage:
    async with db.transaction() as s:
        m = await s.get(SpeakerMessage, message_id)
        assert m is not None
        return m


async def test_an_event_delivered_twice_announces_once_on_the_store_speaker(
        db: Database, settings: Settings) -> None:
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    event = paid(demo.merchant_id, store_id=demo.store_id)

    assert await speakers.announce_payment(db, event, settings=settings) == 1
    assert await speakers.announce_payment(db, event, settings=settings) == 0

    assert await count(db) == 1
    [m] = await speakers.search_messages(db, order_id=event.payload["order_id"])
    assert m.speaker_id == "spk_demo"
    assert m.text == "付了码收款十二元五角"
    assert m.status == "LOGGED"  # no broker configured: the feed shows it, nothing to await


async def test_an_order_without_a_store_announces_on_the_default_store(
        db: Database, settings: Settings) -> None:
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    other = await merchants.add_store(db, merchant_id=demo.merchant_id, name="二号店",
                                      address="演示路 2 号", operator="t")
    await merchants.add_terminal(db, merchant_id=demo.merchant_id, store_id=other.id,
                                 kind=TerminalKind.SPEAKER, serial_no="S2",
                                 speaker_id="spk_two", operator="t")

    await speakers.announce_payment(db, paid(demo.merchant_id, store_id=None), settings=settings)
    await speakers.announce_payment(db, paid(demo.merchant_id, store_id=other.id),
                                    settings=settings)

    found = {m.speaker_id: m.store_id for m in await speakers.search_messages(db)}
    assert found == {"spk_demo": demo.store_id, "spk_two": other.id}


async def test_a_store_without_speakers_announces_nothing(db: Database,
                                                         settings: Settings) -> None:
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    quiet = await merchants.add_store(db, merchant_id=demo.merchant_id, name="无喇叭",
                                      address="x", operator="t")
    assert await speakers.announce_payment(db, paid(demo.merchant_id, store_id=quiet.id),
                                           settings=settings) == 0
    assert await count(db) == 0


async def test_without_a_broker_the_feed_shows_it_once_and_it_is_final(
        db: Database, settings: Settings) -> None:
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    hub = SpeakerHub(db, settings)
    assert isinstance(hub.transport, LogFeed)
    await speakers.announce_payment(db, paid(demo.merchant_id, store_id=demo.store_id),
                                    settings=settings)

    assert await hub.deliver_due() == 1
    clock.advance(timedelta(minutes=5))
    assert await hub.deliver_due() == 0

    assert hub.feed is not None
    [item] = hub.feed.after(0)
    assert item.text == "付了码收款十二元五角"
    assert item.amount_yuan == "12.50"
    [m] = await speakers.search_messages(db)
    assert m.status == "LOGGED"
    assert m.attempts == 1


async def test_unacknowledged_messages_are_resent_with_backoff_until_acked(
        db: Database, settings: Settings) -> None:
    settings = with_broker(settings)
    clock.freeze()
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    rec = Recorder()
    hub = SpeakerHub(db, settings, transport=rec)
    await speakers.announce_payment(db, paid(demo.merchant_id, store_id=demo.store_id),
                                    settings=settings)

    assert await hub.deliver_due() == 1
    assert await hub.deliver_due() == 0  # not due again before the ack timeout
    clock.advance(timedelta(seconds=settings.speaker_ack_timeout_seconds + 0.1))
    assert await hub.deliver_due() == 1
    first, second = rec.sent
    assert first == second  # the same signed bytes: the device can drop the duplicate
    assert verify(device_key(settings.speaker_secret, "spk_demo"), first[1])

    message_id = first[1]["message_id"]
    await hub.on_up("spk_demo", "ack", f'{{"message_id": "{message_id}"}}'.encode())
    clock.advance(timedelta(minutes=1))
    assert await hub.deliver_due() == 0
    m = await status_of(db, message_id)
    assert m.status == "ACKED"
    assert m.attempts == 2
    assert m.acked_at is not None


async def test_malformed_and_foreign_acks_change_nothing(db: Database,
                                                         settings: Settings) -> None:
    settings = with_broker(settings)
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    hub = SpeakerHub(db, settings, transport=Recorder())
    await speakers.announce_payment(db, paid(demo.merchant_id, store_id=demo.store_id),
                                    settings=settings)
    await hub.deliver_due()
    [m] = await speakers.search_messages(db)

    for raw in (b"garbage", b"{}", b'{"message_id": 5}', b'{"message_id": "spm_unknown"}'):
        await hub.on_up("spk_demo", "ack", raw)
    await hub.on_up("spk_other", "ack", f'{{"message_id": "{m.message_id}"}}'.encode())

    assert (await status_of(db, m.message_id)).status == "SENT"


async def test_a_device_that_comes_back_gets_what_it_missed_within_the_window(
        db: Database, settings: Settings) -> None:
    clock.freeze()
    settings = with_broker(settings).model_copy(update={"speaker_catchup_max": 2,
                                                        "speaker_ack_timeout_seconds": 30.0})
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    rec = Recorder()
    hub = SpeakerHub(db, settings, transport=rec)
    for amount in (100, 200, 300):
        await speakers.announce_payment(db, paid(demo.merchant_id, store_id=demo.store_id,
                                                 amount=amount), settings=settings)
        clock.advance(timedelta(seconds=1))
    await hub.deliver_due()
    rec.sent.clear()

    await hub.on_up("spk_demo", "hello", b"{}")
    await hub.deliver_due()

    # the newest two (the bound), not the oldest
    assert sorted(body["amount"] for _, body in rec.sent) == [200, 300]


async def test_past_the_window_a_message_expires_and_an_operator_can_resend_it(
        db: Database, settings: Settings) -> None:
    settings = with_broker(settings)
    clock.freeze()
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    rec = Recorder()
    hub = SpeakerHub(db, settings, transport=rec)
    await speakers.announce_payment(db, paid(demo.merchant_id, store_id=demo.store_id),
                                    settings=settings)
    await hub.deliver_due()
    clock.advance(timedelta(seconds=settings.speaker_catchup_seconds + 1))
    assert await hub.deliver_due() == 0
    [m] = await speakers.search_messages(db)
    assert m.status == "EXPIRED"

    again = await speakers.resend(db, message_id=m.message_id, operator="alice",
                                  settings=settings)
    assert again.status == "PENDING"
    assert await hub.deliver_due() == 1
    assert (await status_of(db, m.message_id)).status == "SENT"


async def test_an_event_that_is_not_an_order_view_announces_nothing(
        db: Database, settings: Settings) -> None:
    await merchants.onboard_demo_merchant(db, settings=settings)
    for payload in ({}, {"n": 1}, {"merchant_id": "m", "order_id": "o", "amount": "12.50",
                                   "channel": "wechat"}):
        event = Event(id=new_id("evt"), topic="payment.succeeded", payload=payload)
        assert await speakers.announce_payment(db, event, settings=settings) == 0
    assert await count(db) == 0


async def test_two_hubs_claiming_at_once_resend_each_due_message_once(
        db: Database, settings: Settings) -> None:
    settings = with_broker(settings)
    clock.freeze()
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    for amount in range(100, 112):  # twelve payments, none acknowledged
        await speakers.announce_payment(db, paid(demo.merchant_id, store_id=demo.store_id,
                                                 amount=amount), settings=settings)
    first = SpeakerHub(db, settings, transport=Recorder())
    assert await first.deliver_due() == 12
    clock.advance(timedelta(seconds=settings.speaker_ack_timeout_seconds + 0.1))

    a, b = Recorder(), Recorder()
    sent = await asyncio.gather(SpeakerHub(db, settings, transport=a).deliver_due(),
                                SpeakerHub(db, settings, transport=b).deliver_due())
    assert sum(sent) == 12
    ids = [body["message_id"] for _, body in a.sent + b.sent]
    assert len(ids) == len(set(ids)) == 12  # every due message resent once, by one of them
    assert {(await status_of(db, i)).attempts for i in ids} == {2}
    assert await first.deliver_due() == 0  # nothing is due again before the backoff
