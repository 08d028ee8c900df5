"""Events reach the bank's other systems through NATS JetStream, in order, none lost and none
stored twice, across a broker restart.

The test starts its own nats-server on a free port with its own store directory (never the
shared one on 4222), so stopping and restarting it disturbs nothing else."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import Consumer, Dispatcher, Poison, admin, publish
from fulema.ops.bus import CONSUMER_NAME, NatsPublisher

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
pytestmark = pytest.mark.skipif(not Path(NATS_SERVER).exists(),
                                reason="nats-server is not installed on this machine")
nats = pytest.importorskip("nats", reason="nats-py is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateNats:
    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own test broker
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            import time

            time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "jetstream")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def publisher(broker: PrivateNats) -> AsyncIterator[NatsPublisher]:
    pub = NatsPublisher(broker.url, stream="FULEMA_TEST", subject_prefix="fulema.events",
                        ack_timeout=1.0)
    yield pub
    await pub.close()


async def stored(url: str) -> list[tuple[str, str, int]]:
    """(Nats-Msg-Id, subject, seq header) of every message the stream holds, in order."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("FULEMA_TEST")
        out = []
        for n in range(1, info.state.last_seq + 1):
            msg = await js.get_msg("FULEMA_TEST", n)
            assert msg.headers is not None
            out.append((msg.headers["Nats-Msg-Id"], msg.subject,
                        int(msg.headers["Fulema-Event-Seq"])))
        return out
    finally:
        await nc.close()


async def publish_events(db: Database, ns: range) -> list[str]:
    ids = []
    for n in ns:
        async with db.transaction() as s:
            ids.append(publish(s, "payment.succeeded", {"n": n, "amount": 1250}))
        clock.advance(timedelta(milliseconds=1))
    return ids


async def test_events_are_published_once_in_order_across_a_broker_restart(
        db: Database, broker: PrivateNats, publisher: NatsPublisher) -> None:
    clock.freeze()
    consumer = Consumer(CONSUMER_NAME, publisher.publish, on_poison=Poison.STOP, max_attempts=3)
    d = Dispatcher(db, [consumer])
    first = await publish_events(db, range(5))
    await d.drain()
    assert [m[0] for m in await stored(broker.url)] == first

    broker.stop()
    second = await publish_events(db, range(5, 10))
    await d.drain()  # the broker is gone: nothing is marked published
    status = {c["name"]: c for c in await admin.consumer_status(db, d.consumers)}
    assert status[CONSUMER_NAME]["position"] == 5
    assert status[CONSUMER_NAME]["lag"] == 5
    assert status[CONSUMER_NAME]["attempts"] >= 1

    broker.start()  # same port, same store
    for _ in range(40):  # the client reconnects on its own; each round is a retry
        clock.advance(timedelta(minutes=10))
        await d.drain()
        status = {c["name"]: c for c in await admin.consumer_status(db, d.consumers)}
        if status[CONSUMER_NAME]["lag"] == 0:
            break
        await asyncio.sleep(0.25)
    assert status[CONSUMER_NAME]["lag"] == 0
    messages = await stored(broker.url)
    assert [m[0] for m in messages] == first + second  # all of them, once each, in order
    assert [m[2] for m in messages] == list(range(1, 11))
    assert {m[1] for m in messages} == {"fulema.events.payment.succeeded"}


async def test_a_republished_event_is_stored_once(db: Database, broker: PrivateNats,
                                                  publisher: NatsPublisher) -> None:
    """At-least-once on our side (a crash after the broker's ack, before our position moved)
    becomes exactly-once in the stream: the event id is the message id."""
    consumer = Consumer(CONSUMER_NAME, publisher.publish, on_poison=Poison.STOP)
    d = Dispatcher(db, [consumer])
    ids = await publish_events(db, range(3))
    await d.drain()
    await admin.replay(db, d.consumers, CONSUMER_NAME, operator="ops", from_seq=1, to_seq=3)
    assert [m[0] for m in await stored(broker.url)] == ids
