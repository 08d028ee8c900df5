"""`python -m bench.speakers`: from a payment's success to the cloud speaker's acknowledgement,
through the real Mosquitto broker, with 1,000 simulated speakers connected.

What is timed, per payment: `paid_at` (the moment the payment succeeded, written into the
payment.succeeded event in the transaction that commits it) to `acked_at` (the moment the
platform recorded the speaker's acknowledgement). In between: the outbox dispatcher wakes on
the commit, the `messaging.speaker` consumer records the signed message, the speaker hub sends
it (QoS 1), the broker delivers it, the device checks the signature and acknowledges (QoS 1),
the hub reads the ack and records it. Printed beside: the broker's own round trip and the
database's own (a one-row read), each from a process of its own, in the same run, and the
platform's CPU time, SQL statements and transactions per payment; with the load average.

Payments arrive at a fixed rate (default 30/s, about the full payment cycle's rate in
docs/performance.md), open loop (each starts on its schedule whether or not the ones before
have committed), on stores chosen at random among the 1,000, each with its own speaker.
The speakers run in `--procs` processes of their own (250 each by default).

On PostgreSQL the platform (dispatcher, consumers, speaker hub) runs in a process of its own,
as `fulema worker` does, with its own connection pool, woken by LISTEN/NOTIFY; the payments
commit from this process through another pool, as the API processes do. On SQLite (the
embedded default: one process, one database) it runs in this process, woken in process.

`--private-broker` starts a Mosquitto of our own on a free port, configured as
docs/messaging.md tells production to be (passwords, the speakers' ACL, `set_tcp_nodelay
true`; tests/messaging/mqtt_helpers.py), and measures on it; the shared broker's round trip
(127.0.0.1:1883, Nagle on) is printed beside it. `--base REF` (PostgreSQL) runs the platform
process alternately from REF's `src/` (extracted by `git archive`) and from the tree's, in
`--rounds` rounds (A B, B A, ...), on the same connected speakers, database and broker, and
prints each run and each side's pooled figures: an A/B in the same minutes.

Usage: python -m bench.speakers [--speakers 1000] [--rate 30] [--seconds 10]
       [--db sqlite|postgres] [--broker 127.0.0.1:1883 | --private-broker]
       [--base REF --rounds 2]
PostgreSQL: the database FULEMA_BENCH_DB (created if missing, its tables dropped and made
again) on 127.0.0.1, else FULEMA_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
from sqlalchemy import event, insert, select, text

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database, StatementCounter
from fulema.core.events import Dispatcher, publish
from fulema.core.heap import freeze_startup_heap
from fulema.core.ids import new_id
from fulema.merchants import service as merchants
from fulema.messaging import jobs as messaging_jobs
from fulema.messaging.broker import PLATFORM_USER
from fulema.messaging.device import SpeakerDevice
from fulema.messaging.domain import device_key, device_password
from fulema.messaging.hub import SpeakerHub
from fulema.messaging.models import SpeakerMessage
from fulema.messaging.transport import NO_DELAY

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHARED_BROKER = "127.0.0.1:1883"
PLATFORM_PASSWORD = "bench-platform-" + "0" * 8
RTT_USER, RTT_PASSWORD = "bench-rtt", "bench-rtt-password"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summary(values: list[float]) -> str:
    if not values:
        return "n=0"
    return (f"n={len(values)} p50 {pct(values, 0.50):.1f} p95 {pct(values, 0.95):.1f} "
            f"p99 {pct(values, 0.99):.1f} max {max(values):.1f} ms")


@dataclass(frozen=True)
class Broker:
    """Where the speakers, the platform and the round-trip clients connect, and as whom."""

    host: str
    port: int
    private: bool  # passwords and ACL (the private Mosquitto) or anonymous (the shared one)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def platform_url(self) -> str:
        if self.private:
            return f"mqtt://{PLATFORM_USER}:{PLATFORM_PASSWORD}@{self.host}:{self.port}"
        return f"mqtt://{self.host}:{self.port}"


def parse_broker(text_: str, private: bool = False) -> Broker:
    host, _, port = text_.partition(":")
    return Broker(host=host, port=int(port or 1883), private=private)


@contextlib.contextmanager
def private_broker(prefix: str, speakers: int, secret: str) -> Iterator[Broker]:
    """A Mosquitto of our own, as production should run it: each speaker with its password,
    the platform's user, the ACL, TCP_NODELAY on (the tests' helper)."""
    from tests.messaging.mqtt_helpers import private_mosquitto

    users = {f"bspk-{i}": device_password(secret, f"bspk-{i}") for i in range(speakers)}
    users[PLATFORM_USER] = PLATFORM_PASSWORD
    users[RTT_USER] = RTT_PASSWORD
    tmp = Path(tempfile.mkdtemp(prefix="fulema-mosquitto-"))
    extra = f"\n# the benchmark's round-trip clients\nuser {RTT_USER}\ntopic readwrite {prefix}/rtt/#\n"
    with private_mosquitto(tmp, prefix=prefix, users=users, extra_acl=extra) as port:
        yield Broker(host="127.0.0.1", port=port, private=True)


async def seed_stores(db: Database, settings: Settings, n: int) -> tuple[str, list[str]]:
    """The demo merchant with n stores, each with one speaker (`bspk-<i>`). The stores and
    terminals go in through the merchants service for the first, then in bulk (setting up a
    thousand stores one transaction at a time would take longer than the measurement)."""
    from fulema.merchants.models import Store, Terminal  # the bench's own set-up, not a context

    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    now = clock.now()
    stores, terminals = [], []
    for i in range(n):
        sid = new_id("sto")
        stores.append({"id": sid, "merchant_id": demo.merchant_id, "name": f"门店{i}",
                       "address": "bench", "active": True, "created_at": now, "updated_at": now})
        spk = f"bspk-{i}"
        terminals.append({"id": new_id("trm"), "merchant_id": demo.merchant_id, "store_id": sid,
                          "kind": "SPEAKER", "serial_no": spk, "speaker_id": spk, "active": True,
                          "active_serial_key": f"SPEAKER:{spk}", "active_speaker_id": spk,
                          "created_at": now, "updated_at": now})
    async with db.transaction() as s:
        await s.execute(insert(Store), stores)
        await s.execute(insert(Terminal), terminals)
    return demo.merchant_id, [str(row["id"]) for row in stores]


async def broker_round_trip(broker: Broker, prefix: str, n: int) -> list[float]:
    """QoS 1 there and QoS 1 back between two clients: what the broker alone costs."""
    got: asyncio.Queue[float] = asyncio.Queue()
    ready = asyncio.Event()
    auth: dict[str, Any] = ({"username": RTT_USER, "password": RTT_PASSWORD} if broker.private
                            else {})

    async def echo() -> None:
        async with aiomqtt.Client(broker.host, broker.port,
                                  identifier=f"bench-echo-{secrets.token_hex(4)}",
                                  socket_options=NO_DELAY, **auth) as c:
            await c.subscribe(f"{prefix}/rtt/ping", qos=1)
            ready.set()
            async for m in c.messages:
                await c.publish(f"{prefix}/rtt/pong", m.payload, qos=1)

    async def pinger() -> list[float]:
        out = []
        async with aiomqtt.Client(broker.host, broker.port,
                                  identifier=f"bench-ping-{secrets.token_hex(4)}",
                                  socket_options=NO_DELAY, **auth) as c:
            await c.subscribe(f"{prefix}/rtt/pong", qos=1)

            async def reader() -> None:
                async for _m in c.messages:
                    await got.put(time.perf_counter())

            r = asyncio.create_task(reader())
            await ready.wait()
            for _ in range(n):
                t0 = time.perf_counter()
                await c.publish(f"{prefix}/rtt/ping", b"x" * 200, qos=1)
                t1 = await asyncio.wait_for(got.get(), 5)
                out.append((t1 - t0) * 1000)
                await asyncio.sleep(0.01)
            r.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await r
        return out

    e = asyncio.create_task(echo())
    try:
        return await pinger()
    finally:
        e.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await e


# --- the worker processes ----------------------------------------------------------------


async def device_worker(args: argparse.Namespace) -> None:
    """A process of simulated speakers bspk-<first>..: connects them a hundred at a time,
    prints "ready", and on standard input closing prints what they played and exits."""
    broker = parse_broker(args.broker, args.private)
    secret = Settings(environment="test").speaker_secret
    heard: dict[str, float] = {}  # order id -> ms from the announcement's recording to here

    def played(body: dict[str, Any]) -> None:
        heard[str(body.get("order_id"))] = time.time() * 1000 - float(body["ts"])

    devices = [SpeakerDevice(speaker_id=f"bspk-{i}", key=device_key(secret, f"bspk-{i}"),
                             host=broker.host, port=broker.port, prefix=args.prefix,
                             password=device_password(secret, f"bspk-{i}") if broker.private
                             else None, on_play=played,
                             client_id=f"bench-{secrets.token_hex(4)}-{i}")
               for i in range(args.first, args.first + args.count)]
    tasks = []
    for start in range(0, len(devices), 100):
        batch = devices[start:start + 100]
        tasks += [asyncio.create_task(d.run()) for d in batch]
        await asyncio.wait_for(asyncio.gather(*(d.subscribed.wait() for d in batch)), 120)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(f"played {sum(len(d.played) for d in devices)} "
          f"duplicates {sum(d.duplicates for d in devices)}", flush=True)
    print(json.dumps(heard), flush=True)
    for t in tasks:
        t.cancel()


async def db_rtt_worker(args: argparse.Namespace) -> None:
    """The database's own round trip, from a process of its own: a transaction that reads one
    row, every 30 ms, while the payments flow (what any query of the path costs at least)."""
    db = Database(args.url)
    out = []
    try:
        for _ in range(args.count):
            t0 = time.perf_counter()
            async with db.transaction() as s:
                await s.execute(text("SELECT 1"))
            out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.03)
    finally:
        await db.dispose()
    print(json.dumps(out), flush=True)


async def rtt_worker(args: argparse.Namespace) -> None:
    values = await broker_round_trip(parse_broker(args.broker, args.private), args.prefix,
                                     args.count)
    print(json.dumps(values), flush=True)


@dataclass
class Counts:
    """What the platform's own process spent: CPU seconds, SQL statements, transactions."""

    cpu: float = 0.0
    statements: int = 0
    transactions: int = 0

    def minus(self, other: Counts) -> Counts:
        return Counts(self.cpu - other.cpu, self.statements - other.statements,
                      self.transactions - other.transactions)


def _transactions(db: Database) -> list[int]:
    """A counter of the transactions this database's engine begins (each BEGIN and its
    COMMIT or ROLLBACK are round trips of their own beside the statements); one per engine."""
    counter = db.memo.get("bench.transactions")
    if isinstance(counter, list):
        return counter
    counter = db.memo["bench.transactions"] = [0]

    def begun(*_args: Any) -> None:
        counter[0] += 1

    event.listen(db.engine.sync_engine, "begin", begun)
    return counter


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Platform:
    """The dispatcher (with the message center's consumers) and the speaker hub, as a worker
    process runs them; counted from `start_counting`."""

    def __init__(self, db: Database, url: str, prefix: str, mqtt_url: str, *,
                 own_db: bool, every_consumer: bool = False) -> None:
        self.settings = Settings(environment="test", database_url=url, run_background=False,
                                 seed_demo=False, speaker_mqtt_url=mqtt_url,
                                 speaker_topic_prefix=prefix, speaker_ack_timeout_seconds=2.0)
        self.db = db
        self.own_db = own_db
        self.every_consumer = every_consumer
        self.tx = _transactions(db)
        self.tasks: list[asyncio.Task[None]] = []
        self.stages: StageTrace | None = None

    def now(self) -> Counts:
        return Counts(_cpu(), StatementCounter.total, self.tx[0])

    async def start(self) -> None:
        import fulema.app  # noqa: F401 - registers every table

        consumers = messaging_jobs.consumers(self.settings)
        linger = 0.0
        if self.every_consumer:  # the ledger, points, risk, billing... beside the speakers
            from fulema.app import declared_consumers

            consumers, linger = declared_consumers(self.settings)[0], 0.5
        if os.environ.get("FULEMA_BENCH_STAGES"):  # where an announcement's time goes
            self.stages = StageTrace(self.db)
            consumers = [self.stages.watch(c) for c in consumers]
        dispatcher = Dispatcher(self.db, consumers, poll_seconds=0.5, linger_seconds=linger)
        await dispatcher.register()
        if self.stages is not None:
            self.stages.attach(dispatcher)
        hub = SpeakerHub(self.db, self.settings)
        self._time_sends(hub)
        self.tasks = [asyncio.create_task(dispatcher.run_forever()),
                      asyncio.create_task(hub.run_forever())]
        transport: Any = hub.transport
        await asyncio.wait_for(transport.connected.wait(), 30)
        if os.environ.get("FULEMA_GC_FREEZE", "true").lower() not in ("0", "false", "no"):
            freeze_startup_heap()  # as the app's lifespan does (settings.gc_freeze)

    def _time_sends(self, hub: SpeakerHub) -> None:
        """Where the hub's time goes, per first send: recorded -> publish called, and the
        publish itself (QoS 1: until the broker's PUBACK)."""
        self.to_send: list[float] = []
        self.publish: list[float] = []
        send = hub.transport.send

        async def timed(speaker_id: str, body: dict[str, Any]) -> None:
            start = time.time() * 1000
            self.to_send.append(start - float(body.get("ts", start)))
            await send(speaker_id, body)
            self.publish.append(time.time() * 1000 - start)
            if self.stages is not None:
                self.stages.sent[str(body.get("order_id"))] = (start, time.time() * 1000)

        hub.transport.send = timed  # type: ignore[method-assign]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.own_db:
            await self.db.dispose()


class StageTrace:
    """With FULEMA_BENCH_STAGES=1, the platform process times each stage of an announcement's
    path, per payment (all clocks are this machine's wall clock, in ms): paid (the event's
    `paid_at`) -> the wake-up heard (NOTIFY) -> numbering started -> numbered (committed) ->
    the speaker consumer's claim or resume started -> its batch read -> handler started ->
    handler committed -> the hub calls publish -> PUBACK. It wraps the tree's dispatcher parts
    (`core/events/sequencer.py`, `claims.py`); on another layout (`--base`) it times nothing."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.wakes: list[float] = []
        self.numbering: list[tuple[float, float, int, int]] = []  # start, end, first, last
        self.reads: list[tuple[float, float, int, int, str]] = []  # start, end, first, last
        self.handled: dict[int, tuple[float, float, str, float]] = {}  # seq -> start, end,
        self.sent: dict[str, tuple[float, float]] = {}  # order -> publish called, PUBACK
        self.settles: list[tuple[float, float]] = []

    @staticmethod
    def ms() -> float:
        return time.time() * 1000

    def watch(self, consumer: Any) -> Any:
        """The speaker consumer with its handlers timed (per event: start, commit)."""
        import dataclasses

        if consumer.name != "messaging.speaker":
            return consumer
        one, many = consumer.handler, consumer.batch_handler

        def note(events: list[Any], start: float) -> None:
            end = self.ms()
            for e in events:
                paid = datetime.fromisoformat(e.payload["paid_at"]).timestamp() * 1000
                self.handled[e.seq] = (start, end, str(e.payload["order_id"]), paid)

        async def timed_one(db: Database, event: Any) -> None:
            start = self.ms()
            await one(db, event)
            note([event], start)

        async def timed_many(db: Database, events: list[Any]) -> None:
            start = self.ms()
            await many(db, events)
            note(events, start)

        return dataclasses.replace(consumer, handler=timed_one,
                                   batch_handler=timed_many if many else None)

    def attach(self, dispatcher: Any) -> None:
        sequencer = getattr(dispatcher, "sequencer", None)
        if sequencer is None:
            return
        from fulema.core.events import claims

        committed = self.db.committed
        notify = committed.notify

        def heard() -> None:
            self.wakes.append(self.ms())
            notify()

        committed.notify = heard  # type: ignore[method-assign]
        locked = sequencer._sequence_locked

        async def numbering() -> int:
            start = self.ms()
            n = int(await locked())
            if n:
                head = dispatcher.positions.head
                self.numbering.append((start, self.ms(), head - n + 1, head))
            return n

        sequencer._sequence_locked = numbering
        for kind in ("claim", "resume"):
            self._time_read(claims, kind)
        settle = claims.settle

        async def timed_settle(*a: Any, **kw: Any) -> Any:
            start = self.ms()
            try:
                return await settle(*a, **kw)
            finally:
                if a[1].name == "messaging.speaker":
                    self.settles.append((start, self.ms()))

        claims.settle = timed_settle  # type: ignore[assignment]

    def _time_read(self, claims: Any, kind: str) -> None:
        original = getattr(claims, kind, None)
        if original is None:  # a layout without it (resume: before leases were kept)
            return

        async def timed(db: Database, consumer: Any, **kw: Any) -> Any:
            start = self.ms()
            got = await original(db, consumer, **kw)
            if consumer.name == "messaging.speaker" and got is not None and got[1]:
                self.reads.append((start, self.ms(), got[1][0].seq, got[1][-1].seq, kind))
            return got

        setattr(claims, kind, timed)

    def report(self, out: Any) -> None:
        """Each stage's percentiles over the run's payments, and the slowest payments'
        stages one by one."""
        import bisect

        wakes = sorted(self.wakes)
        rows: list[dict[str, float]] = []
        for seq, (h0, h1, order, paid) in self.handled.items():
            numbered = next((n for n in self.numbering if n[2] <= seq <= n[3]), None)
            read = next((r for r in self.reads if r[2] <= seq <= r[3]), None)
            if numbered is None or read is None:
                continue
            i = bisect.bisect_left(wakes, paid)
            woke = wakes[i] if i < len(wakes) else float("nan")
            sent = self.sent.get(order, (float("nan"), float("nan")))
            rows.append({"paid->woken": woke - paid, "woken->numbering": numbered[0] - woke,
                         "numbering": numbered[1] - numbered[0],
                         "numbered->read started": read[0] - numbered[1],
                         "read (claim/resume)": read[1] - read[0],
                         "read->handler": h0 - read[1], "handler": h1 - h0,
                         "handler->publish": sent[0] - h1, "publish->PUBACK": sent[1] - sent[0],
                         "paid->handler committed": h1 - paid})
        if not rows:
            print("stages: nothing traced", file=out, flush=True)
            return
        print(f"stages of {len(rows)} payments (ms; claims {sum(r[4] == 'claim' for r in self.reads)},"
              f" resumes {sum(r[4] == 'resume' for r in self.reads)}, settles "
              f"{summary([b - a for a, b in self.settles])}):", file=out)
        for key in rows[0]:
            print(f"  {key:<24} {summary([r[key] for r in rows if r[key] == r[key]])}", file=out)
        worst = sorted(rows, key=lambda r: -r["paid->handler committed"])[:max(3, len(rows) // 100)]
        print("  slowest:", file=out)
        for r in worst:
            print("   " + " ".join(f"{k.split('->')[-1][:9]}={v:.0f}" for k, v in r.items()),
                  file=out)
        out.flush()


async def platform_worker(args: argparse.Namespace) -> None:
    """The platform in a process of its own (PostgreSQL): "ready" once connected, counts
    from "go" to "stop" on standard input, then prints them as JSON and exits."""
    platform = Platform(Database(args.url), args.url, args.prefix, args.mqtt_url, own_db=True,
                        every_consumer=args.all_consumers)
    await platform.start()
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    assert (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "go"
    zero = platform.now()
    profile = None
    if os.environ.get("FULEMA_BENCH_PROFILE"):  # where the platform's CPU goes (stderr)
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    await loop.run_in_executor(None, sys.stdin.readline)
    spent = platform.now().minus(zero)
    print(f"recorded -> hub publishes {summary(platform.to_send)}; "
          f"publish until PUBACK {summary(platform.publish)}", file=sys.stderr, flush=True)
    if platform.stages is not None:
        platform.stages.report(sys.stderr)
    if profile is not None:
        import pstats

        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    await platform.stop()
    print(json.dumps({"cpu": spent.cpu, "statements": spent.statements,
                      "transactions": spent.transactions}), flush=True)


async def spawn(*argv: str, src: Path | None = None) -> asyncio.subprocess.Process:
    env = dict(os.environ)
    if src is not None:  # the platform from another tree's src/ (--base)
        env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.speakers", *argv, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, env=env)


async def values_of(proc: asyncio.subprocess.Process) -> list[float]:
    out, _ = await proc.communicate()
    values: list[float] = json.loads(out.decode().strip().splitlines()[-1])
    return values


async def rtt_in_own_process(broker: Broker, prefix: str, n: int) -> list[float]:
    return await values_of(await spawn("--rtt-worker", "--count", str(n), "--prefix", prefix,
                                       "--broker", broker.address,
                                       *(["--private"] if broker.private else [])))


def extract_base(ref: str) -> tuple[Path, str]:
    """REF's src/ under bench/results/ (git-ignored), for the platform process of side A."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], check=True,
                         capture_output=True, text=True).stdout.strip()
    dest = RESULTS / f"speakers-base-{sha}"
    if not (dest / "src" / "fulema").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src", sha


# --- one measured run --------------------------------------------------------------------


@dataclass
class Run:
    variant: str
    offered: float = 0.0
    committed_for: float = 0.0
    n: int = 0
    latencies: list[float] = field(default_factory=list)
    dispatch: list[float] = field(default_factory=list)
    to_ack: list[float] = field(default_factory=list)
    rtt: list[float] = field(default_factory=list)
    db_rtt: list[float] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    orders: list[str] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before, after


@dataclass
class Bench:
    args: argparse.Namespace
    url: str
    db: Database
    payments_db: Database
    broker: Broker
    prefix: str
    merchant_id: str
    stores: list[str]

    async def pay_all(self, run: Run) -> list[str]:
        """The payments of one run, open loop on schedule: each starts in a task of its own
        whether or not the ones before have committed (a generator that waited for each
        commit offered less than the rate whenever the database was slow)."""
        n = int(self.args.rate * self.args.seconds)
        interval = 1.0 / self.args.rate
        orders = [new_id("ord") for _ in range(n)]

        async def pay(order_id: str) -> None:
            async with self.payments_db.transaction() as s:
                publish(s, "payment.succeeded", {
                    "order_id": order_id, "merchant_id": self.merchant_id,
                    "store_id": random.choice(self.stores), "amount": random.randint(1, 500_000),
                    "channel": "bankpay", "status": "SUCCESS",
                    "paid_at": clock.now().isoformat()})

        start = time.perf_counter()
        paying = []
        for i, order_id in enumerate(orders):
            paying.append(asyncio.create_task(pay(order_id)))
            delay = start + (i + 1) * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        run.offered = n / (time.perf_counter() - start)
        await asyncio.gather(*paying)
        run.committed_for = time.perf_counter() - start
        run.n = n
        return orders

    async def collect(self, run: Run, orders: list[str]) -> None:
        """Wait (at most 30 s) for every announcement of the run to be acknowledged, then
        read the times: paid -> recorded (dispatch) -> acknowledged."""
        wanted = set(orders)
        deadline = time.monotonic() + 30
        rows: list[Any] = []
        while time.monotonic() < deadline:
            async with self.db.transaction() as s:
                rows = [r for r in (await s.execute(
                    select(SpeakerMessage.order_id, SpeakerMessage.paid_at,
                           SpeakerMessage.acked_at, SpeakerMessage.created_at,
                           SpeakerMessage.attempts)
                    .where(SpeakerMessage.status == "ACKED"))).all() if r.order_id in wanted]
            if len(rows) >= len(orders):
                break
            await asyncio.sleep(0.2)
        run.latencies = [(r.acked_at - r.paid_at).total_seconds() * 1000 for r in rows]
        run.dispatch = [(r.created_at - r.paid_at).total_seconds() * 1000 for r in rows]
        run.to_ack = [(r.acked_at - r.created_at).total_seconds() * 1000 for r in rows
                      if r.attempts == 1]

    async def measure(self, variant: str, src: Path | None, in_process: bool) -> Run:
        run = Run(variant=variant)
        platform: Platform | None = None
        worker: asyncio.subprocess.Process | None = None
        if in_process:
            # one database, woken in process (SQLite, the embedded default)
            platform = Platform(self.db, self.url, self.prefix, self.broker.platform_url(),
                                own_db=False, every_consumer=self.args.all_consumers)
            await platform.start()
            zero = platform.now()
        else:
            worker = await spawn("--platform-worker", "--url", self.url, "--prefix", self.prefix,
                                 "--mqtt-url", self.broker.platform_url(),
                                 *(["--all-consumers"] if self.args.all_consumers else []),
                                 src=src)
            assert worker.stdout is not None
            assert worker.stdin is not None
            while (line := await asyncio.wait_for(worker.stdout.readline(), 60)).strip() \
                    != b"ready":  # its log lines before it is ready
                assert line, "the platform process ended before it was ready"
                print(f"[{variant}] platform: {line.decode().rstrip()}")
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        seconds = self.args.seconds
        rtt_task = asyncio.create_task(rtt_in_own_process(self.broker, self.prefix,
                                                          max(50, int(seconds * 30))))
        db_rtt_task = asyncio.create_task(values_of(await spawn(
            "--db-rtt-worker", "--count", str(max(50, int(seconds * 25))), "--url", self.url)))
        load_before = os.getloadavg()
        orders = run.orders = await self.pay_all(run)
        run.rtt = await rtt_task
        run.db_rtt = await db_rtt_task
        await self.collect(run, orders)
        if platform is not None:
            run.counts = platform.now().minus(zero)
            await platform.stop()
        elif worker is not None:
            assert worker.stdin is not None
            worker.stdin.write(b"stop\n")
            out, _ = await worker.communicate()
            spent = json.loads(out.decode().strip().splitlines()[-1])
            run.counts = Counts(spent["cpu"], spent["statements"], spent["transactions"])
        run.load = (load_before[0], os.getloadavg()[0])
        report(run)
        return run


def report(run: Run) -> None:
    n = max(1, run.n)
    c = run.counts
    print(f"[{run.variant}] {run.n} payments offered at {run.offered:.1f}/s, all committed in "
          f"{run.committed_for:.1f} s; acknowledged {len(run.latencies)}")
    print(f"[{run.variant}]   payment success -> speaker ack  {summary(run.latencies)}")
    print(f"[{run.variant}]     paid -> recorded (dispatch)   {summary(run.dispatch)}")
    print(f"[{run.variant}]     recorded -> ack recorded      {summary(run.to_ack)}")
    print(f"[{run.variant}]   broker round trip (same run)    {summary(run.rtt)}")
    print(f"[{run.variant}]   database round trip (same run)  {summary(run.db_rtt)}")
    print(f"[{run.variant}]   platform per payment: {1000 * c.cpu / n:.2f} ms CPU, "
          f"{c.statements / n:.1f} SQL statements, {c.transactions / n:.2f} transactions; "
          f"load average {run.load[0]:.2f} before, {run.load[1]:.2f} after")


def pooled(runs: list[Run], variant: str) -> None:
    mine = [r for r in runs if r.variant == variant]
    lat = [v for r in mine for v in r.latencies]
    n = sum(r.n for r in mine) or 1
    cpu = sum(r.counts.cpu for r in mine)
    stm = sum(r.counts.statements for r in mine)
    trx = sum(r.counts.transactions for r in mine)
    p99s = ", ".join(f"{pct(r.latencies, .99):.0f}" for r in mine)
    print(f"{variant:>5}: {summary(lat)} (p99 per run {p99s}); dispatch p50 "
          f"{pct([v for r in mine for v in r.dispatch], .5):.1f} ms; per payment "
          f"{1000 * cpu / n:.2f} ms CPU, {stm / n:.1f} statements, {trx / n:.2f} transactions; "
          f"broker p50 {pct([v for r in mine for v in r.rtt], .5):.1f} ms")


async def run(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.speakers * 2 + 256)),
                                                hard))
    prefix = f"fulema-bench/{secrets.token_hex(4)}"
    with contextlib.ExitStack() as stack:
        secret = Settings(environment="test").speaker_secret
        broker = (stack.enter_context(private_broker(prefix, args.speakers, secret))
                  if args.private_broker else parse_broker(args.broker))
        await measure_all(args, broker, prefix)


def database_url(args: argparse.Namespace, tmp: Path) -> str:
    if args.db == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    name = os.environ.get("FULEMA_BENCH_DB")
    if name:
        from bench import dbstats

        dbstats.ensure_database(name)
        return dbstats.pg_url(name)
    url = os.environ.get("FULEMA_TEST_POSTGRES_URL", "")
    if not url:
        raise SystemExit("--db postgres needs FULEMA_BENCH_DB or FULEMA_TEST_POSTGRES_URL")
    return url


async def measure_all(args: argparse.Namespace, broker: Broker, prefix: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fulema-speakers-"))
    url = database_url(args, tmp)
    in_process = args.db == "sqlite"
    if args.base and in_process:
        raise SystemExit("--base needs --db postgres (the platform then runs in its own process)")
    settings = Settings(environment="test", database_url=url, run_background=False,
                        seed_demo=False)
    import fulema.app  # noqa: F401 - registers every table

    db = Database(url)
    await db.drop_all()
    await db.create_all()
    merchant_id, stores = await seed_stores(db, settings, args.speakers)
    print(f"{args.speakers} stores with a speaker each on {db.dialect}; broker {broker.address}"
          f" ({'private: passwords, ACL, set_tcp_nodelay true' if broker.private else 'shared'})")

    t0 = time.perf_counter()
    per = -(-args.speakers // args.procs)
    workers = [await spawn("--device-worker", "--first", str(first), "--count",
                           str(min(per, args.speakers - first)), "--prefix", prefix,
                           "--broker", broker.address, *(["--private"] if broker.private else []))
               for first in range(0, args.speakers, per)]
    for w in workers:
        assert w.stdout is not None
        line = await asyncio.wait_for(w.stdout.readline(), 300)
        assert line.strip() == b"ready", line
    print(f"{args.speakers} speakers in {len(workers)} processes connected and subscribed in "
          f"{time.perf_counter() - t0:.1f} s")

    idle_rtt = await rtt_in_own_process(broker, prefix, 100)
    shared_rtt: list[float] = []
    if broker.private:
        with contextlib.suppress(Exception):  # the shared broker may be absent: said below
            shared_rtt = await rtt_in_own_process(parse_broker(SHARED_BROKER), prefix, 100)
    payments_db = Database(url) if not in_process else db

    variants: list[tuple[str, Path | None]] = [("tree", None)]
    if args.base:
        base_src, sha = extract_base(args.base)
        variants = [(f"base {sha}", base_src), ("tree", None)]
    bench = Bench(args=args, url=url, db=db, payments_db=payments_db, broker=broker,
                  prefix=prefix, merchant_id=merchant_id, stores=stores)
    runs: list[Run] = []
    for i in range(args.rounds):
        for name, src in (variants if i % 2 == 0 else list(reversed(variants))):
            runs.append(await bench.measure(name, src, in_process))

    await db.dispose()
    if payments_db is not db:
        await payments_db.dispose()
    played = dupes = 0
    heard: dict[str, float] = {}
    for w in workers:
        out, _ = await w.communicate(b"")
        lines = out.decode().strip().splitlines()
        words = lines[-2].split()
        played += int(words[words.index("played") + 1])
        dupes += int(words[words.index("duplicates") + 1])
        heard.update(json.loads(lines[-1]))
    for r in runs:  # recorded -> played on the device (its clock is this machine's)
        values = [heard[o] for o in r.orders if o in heard]
        print(f"[{r.variant}] recorded -> heard by the device  {summary(values)}")

    print(f"\nall runs: played {played}, duplicates dropped {dupes}")
    for name, _ in variants:
        pooled(runs, name)
    print(f"broker round trip, idle ({broker.address})  {summary(idle_rtt)}")
    if broker.private:
        print(f"shared broker round trip, idle ({SHARED_BROKER}, Nagle on)  "
              f"{summary(shared_rtt) if shared_rtt else 'not reachable'}")
    tree = [v for r in runs if r.variant == "tree" for v in r.latencies]
    rtt = [v for r in runs if r.variant == "tree" for v in r.rtt]
    if tree and rtt:
        print(f"tree: ratio to the broker's round trip p50 {pct(tree, .5) / pct(rtt, .5):.1f}x, "
              f"p99 {pct(tree, .99) / pct(rtt, .99):.1f}x; goal p99 <= 200 ms: "
              f"{'met' if pct(tree, .99) <= 200 else 'NOT met'}; mean {statistics.fmean(tree):.1f}"
              f" ms; load average now {fmt_load(os.getloadavg())} ({os.cpu_count()} cores)")


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.speakers", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--speakers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=30.0, help="payments per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--broker", default=SHARED_BROKER)
    p.add_argument("--private-broker", action="store_true",
                   help="start a Mosquitto of our own (passwords, ACL, set_tcp_nodelay true)")
    p.add_argument("--base", default="", help="git ref: A/B its src/ against the tree's")
    p.add_argument("--rounds", type=int, default=1, help="runs per side (alternated)")
    p.add_argument("--procs", type=int, default=4, help="processes the speakers run in")
    p.add_argument("--device-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rtt-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--db-rtt-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--all-consumers", action="store_true",
                   help="the platform runs every declared consumer with the app's linger, as "
                        "`fulema worker` does (else only the message center's)")
    p.add_argument("--platform-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--private", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    p.add_argument("--url", default="", help=argparse.SUPPRESS)
    p.add_argument("--mqtt-url", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.device_worker:
        asyncio.run(device_worker(args))
    elif args.db_rtt_worker:
        asyncio.run(db_rtt_worker(args))
    elif args.rtt_worker:
        asyncio.run(rtt_worker(args))
    elif args.platform_worker:
        asyncio.run(platform_worker(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
