"""`python -m bench.speakers`: from a payment's success to the cloud speaker's acknowledgement,
through the real Mosquitto broker, with 1,000 simulated speakers connected.

What is timed, per payment: `paid_at` (the moment the payment succeeded, written into the
payment.succeeded event in the transaction that commits it) to `acked_at` (the moment the
platform recorded the speaker's acknowledgement). In between: the outbox dispatcher wakes on
the commit, the `messaging.speaker` consumer records the signed message, the speaker hub sends
it (QoS 1), the broker delivers it, the device checks the signature and acknowledges (QoS 1),
the hub reads the ack and records it. Printed beside: the broker's own round trip and the
database's own (a one-row read), each from a process of its own, in the same run, and the
platform process's CPU time per payment; with the load average before and after.

Payments arrive at a fixed rate (default 30/s, about the full payment cycle's rate in
docs/performance.md), open loop (each starts on its schedule whether or not the ones before
have committed), on stores chosen at random among the 1,000, each with its own speaker.
The speakers run in `--procs` processes of their own (250 each by default), so the platform's
process holds only the platform: its dispatcher, consumer and speaker hub.

Beside it, in the same run and on the same broker, the broker's own round trip, from a process
of its own: one client publishes QoS 1 to a topic another client answers on (message and
acknowledgement, as a speaker does), timed with nothing of the platform in between, idle and
while the payments flow. Both print p50 / p95 / p99 / max
in milliseconds, and the ratio of the platform's figure to the broker's.

Usage: python -m bench.speakers [--speakers 1000] [--rate 30] [--seconds 10]
       [--db sqlite|postgres] [--broker 127.0.0.1:1883]
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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
from sqlalchemy import insert, select, text

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Dispatcher, publish
from fulema.core.ids import new_id
from fulema.merchants import service as merchants
from fulema.messaging import jobs as messaging_jobs
from fulema.messaging.device import SpeakerDevice
from fulema.messaging.domain import device_key
from fulema.messaging.hub import SpeakerHub
from fulema.messaging.models import SpeakerMessage
from fulema.messaging.transport import NO_DELAY


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> str:
    return (f"n={len(values)} p50 {pct(values, 0.50):.1f} p95 {pct(values, 0.95):.1f} "
            f"p99 {pct(values, 0.99):.1f} max {max(values):.1f} ms")


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
    return demo.merchant_id, [s["id"] for s in stores]


async def broker_round_trip(host: str, port: int, prefix: str, n: int) -> list[float]:
    """QoS 1 there and QoS 1 back between two clients: what the broker alone costs."""
    got: asyncio.Queue[float] = asyncio.Queue()
    ready = asyncio.Event()

    async def echo() -> None:
        async with aiomqtt.Client(host, port, identifier=f"bench-echo-{secrets.token_hex(4)}",
                                  socket_options=NO_DELAY) as c:
            await c.subscribe(f"{prefix}/rtt/ping", qos=1)
            ready.set()
            async for m in c.messages:
                await c.publish(f"{prefix}/rtt/pong", m.payload, qos=1)

    async def pinger() -> list[float]:
        out = []
        async with aiomqtt.Client(host, port, identifier=f"bench-ping-{secrets.token_hex(4)}",
                                  socket_options=NO_DELAY) as c:
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


async def device_worker(args: argparse.Namespace) -> None:
    """A process of simulated speakers bspk-<first>..: connects them a hundred at a time,
    prints "ready", and on standard input closing prints what they played and exits."""
    host, _, port_text = args.broker.partition(":")
    secret = Settings(environment="test").speaker_secret
    devices = [SpeakerDevice(speaker_id=f"bspk-{i}", key=device_key(secret, f"bspk-{i}"),
                             host=host, port=int(port_text or 1883), prefix=args.prefix,
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
    host, _, port_text = args.broker.partition(":")
    values = await broker_round_trip(host, int(port_text or 1883), args.prefix, args.count)
    print(json.dumps(values), flush=True)


async def spawn(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.speakers", *argv, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)


async def rtt_in_own_process(broker: str, prefix: str, n: int) -> list[float]:
    return await values_of(await spawn("--rtt-worker", "--count", str(n), "--prefix", prefix,
                                       "--broker", broker))


async def values_of(proc: asyncio.subprocess.Process) -> list[float]:
    out, _ = await proc.communicate()
    values: list[float] = json.loads(out.decode().strip().splitlines()[-1])
    return values


async def run(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.speakers * 2 + 256)),
                                                hard))
    host, _, port_text = args.broker.partition(":")
    port = int(port_text or 1883)
    prefix = f"fulema-bench/{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix="fulema-speakers-"))
    url = (f"sqlite+aiosqlite:///{tmp / 'bench.db'}" if args.db == "sqlite"
           else os.environ.get("FULEMA_TEST_POSTGRES_URL", ""))
    if not url:
        raise SystemExit("--db postgres needs FULEMA_TEST_POSTGRES_URL")
    settings = Settings(environment="test", database_url=url, run_background=False,
                        seed_demo=False, speaker_mqtt_url=f"mqtt://{host}:{port}",
                        speaker_topic_prefix=prefix, speaker_ack_timeout_seconds=2.0)
    import fulema.app  # noqa: F401 - registers every table

    db = Database(url)
    await db.drop_all()
    await db.create_all()
    merchant_id, stores = await seed_stores(db, settings, args.speakers)
    print(f"{args.speakers} stores with a speaker each on {db.dialect}; broker {host}:{port}")

    t0 = time.perf_counter()
    per = -(-args.speakers // args.procs)
    workers = [await spawn("--device-worker", "--first", str(first), "--count",
                           str(min(per, args.speakers - first)), "--prefix", prefix,
                           "--broker", args.broker)
               for first in range(0, args.speakers, per)]
    for w in workers:
        assert w.stdout is not None
        line = await asyncio.wait_for(w.stdout.readline(), 300)
        assert line.strip() == b"ready", line
    print(f"{args.speakers} speakers in {len(workers)} processes connected and subscribed in "
          f"{time.perf_counter() - t0:.1f} s")

    dispatcher = Dispatcher(db, messaging_jobs.consumers(settings), poll_seconds=0.5)
    await dispatcher.register()
    hub = SpeakerHub(db, settings)
    platform = [asyncio.create_task(dispatcher.run_forever()),
                asyncio.create_task(hub.run_forever())]
    transport: Any = hub.transport
    await asyncio.wait_for(transport.connected.wait(), 10)

    idle_rtt = await rtt_in_own_process(args.broker, prefix, 100)

    n = int(args.rate * args.seconds)
    interval = 1.0 / args.rate
    load_before = os.getloadavg()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    rtt_task = asyncio.create_task(rtt_in_own_process(args.broker, prefix,
                                                      max(50, int(args.seconds * 30))))
    db_rtt_task = asyncio.create_task(values_of(await spawn(
        "--db-rtt-worker", "--count", str(max(50, int(args.seconds * 25))), "--url", url)))
    # On PostgreSQL the payments commit through a pool of their own, as the payment core's
    # processes do in production (`fulema serve` apart from `fulema worker`): they neither
    # queue the dispatcher's and the hub's transactions behind theirs for a connection nor
    # wake them in process; the worker hears them by LISTEN/NOTIFY. SQLite is the embedded
    # default: one process, one database, woken in process.
    payments_db = Database(url) if db.dialect == "postgresql" else db

    async def pay() -> None:
        async with payments_db.transaction() as s:
            now = clock.now()
            publish(s, "payment.succeeded", {
                "order_id": new_id("ord"), "merchant_id": merchant_id,
                "store_id": random.choice(stores), "amount": random.randint(1, 500_000),
                "channel": "bankpay", "status": "SUCCESS", "paid_at": now.isoformat()})

    # Open loop: each payment starts on its schedule in a task of its own, as requests from
    # many tills do, whether or not the ones before have committed (a generator that waited
    # for each commit offered less than the rate whenever the database was slow).
    start = time.perf_counter()
    paying = []
    for i in range(n):
        paying.append(asyncio.create_task(pay()))
        delay = start + (i + 1) * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    offered_for = time.perf_counter() - start
    await asyncio.gather(*paying)
    sent_for = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_used = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime
                                                             - cpu_before.ru_stime)
    rtt_during = await rtt_task
    db_rtt = await db_rtt_task

    deadline = time.monotonic() + 30
    latencies: list[float] = []
    while time.monotonic() < deadline:
        async with db.transaction() as s:
            rows = (await s.execute(select(SpeakerMessage.paid_at, SpeakerMessage.acked_at,
                                           SpeakerMessage.created_at,
                                           SpeakerMessage.attempts)
                                    .where(SpeakerMessage.status == "ACKED"))).all()
        if len(rows) >= n:
            break
        await asyncio.sleep(0.2)
    latencies = [(r.acked_at - r.paid_at).total_seconds() * 1000 for r in rows]
    # where the time goes: event committed -> the consumer recorded the announcement (numbered,
    # consumer woken, claimed, recorded); recorded -> acknowledgement recorded (the record's
    # commit, the hub's QoS 1 publish, the broker, the device, its ack, the ack's batch write).
    # The consumer claims the first send in its own transaction (`last_sent_at` = recorded), so
    # the hub's pickup is inside the second stage; first sends only.
    first = [r for r in rows if r.attempts == 1]
    stages = {
        "dispatch (paid -> recorded)": [(r.created_at - r.paid_at).total_seconds() * 1000
                                        for r in rows],
        "recorded -> ack recorded": [(r.acked_at - r.created_at).total_seconds() * 1000
                                     for r in first],
    }

    for t in platform:
        t.cancel()
    for t in platform:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    await db.dispose()
    if payments_db is not db:
        await payments_db.dispose()

    played = dupes = 0
    for w in workers:
        out, _ = await w.communicate(b"")
        words = out.decode().split()
        played += int(words[words.index("played") + 1])
        dupes += int(words[words.index("duplicates") + 1])
    print(f"{n} payments offered at {n / offered_for:.1f}/s, committed at {n / sent_for:.1f}/s "
          f"(the last {sent_for:.1f} s after the first); acknowledged "
          f"{len(latencies)}; played {played}, duplicates dropped {dupes}")
    print(f"payment success -> speaker ack   {summary(latencies)}")
    for name, values in stages.items():
        if values:
            print(f"  {name:<30} {summary(values)}")
    print(f"broker round trip, idle          {summary(idle_rtt)}")
    print(f"broker round trip, under load    {summary(rtt_during)}")
    print(f"database round trip, under load {summary(db_rtt)} (BEGIN; SELECT 1; COMMIT)")
    print(f"ratio p50 platform/broker(load)  {pct(latencies, .5) / pct(rtt_during, .5):.1f}x; "
          f"p99 {pct(latencies, .99) / pct(rtt_during, .99):.1f}x; goal p99 <= 200 ms: "
          f"{'met' if pct(latencies, .99) <= 200 else 'NOT met'}")
    print(f"mean {statistics.fmean(latencies):.1f} ms")
    print(f"platform process CPU while paying: {cpu_used:.1f} s in {sent_for:.1f} s "
          f"({100 * cpu_used / sent_for:.0f}% of one core, {1000 * cpu_used / n:.1f} ms a "
          f"payment, the load generator's own commits included)")
    print(f"load average before {fmt_load(load_before)}, after {fmt_load(os.getloadavg())} "
          f"({os.cpu_count()} cores)")


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.speakers", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--speakers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=30.0, help="payments per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--broker", default="127.0.0.1:1883")
    p.add_argument("--procs", type=int, default=4, help="processes the speakers run in")
    p.add_argument("--device-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rtt-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    p.add_argument("--url", default="", help=argparse.SUPPRESS)
    p.add_argument("--db-rtt-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.device_worker:
        asyncio.run(device_worker(args))
    elif args.db_rtt_worker:
        asyncio.run(db_rtt_worker(args))
    elif args.rtt_worker:
        asyncio.run(rtt_worker(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
