"""The production split (docs/scaling.md): API processes started with
FULEMA_RUN_BACKGROUND=false serve requests only, and `fulema worker` (`run_worker`) runs every
event consumer and every scheduled job for them. What an operator checks, on SQLite and
PostgreSQL (where the worker is woken by the API processes' NOTIFY): orders taken by an API
process without a worker stay unprocessed (no consumer moves, no job runs there); once a
worker runs, every declared consumer reaches the head and every declared job is taken; an order
taken while it runs reaches every consumer too; and a worker that is stopped gives its job
leases back at once, so its replacement does not wait for them to run out. On PostgreSQL the
API process wakes the workers with a NOTIFY sent after its commits, not one inside each of
its transactions: an order create costs it the statements of a process that runs its own
dispatcher."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select

from fulema.app import create_app, declared_consumers
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import EVENTS_CHANNEL, Database
from fulema.core.events import ConsumerState, OutboxEvent
from fulema.core.events.outbox import STREAM, EventStream
from fulema.gateway.signing import sign_request
from fulema.merchants import credentials
from fulema.merchants import service as merchants
from fulema.ops.scheduler import ScheduledJob
from fulema.ops.worker import declared_jobs, run_worker
from tests.conftest import open_database

APP_ID, SECRET = "app_demo", "demo-secret-change-me"
BASE = "http://testserver"


@pytest.fixture(params=["sqlite", "postgres"])
async def split_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(request.param, tmp_path)
    yield database
    await database.dispose()


async def create_order(http: httpx.AsyncClient) -> None:
    raw = orjson.dumps({"out_trade_no": f"T{secrets.token_hex(6)}", "amount": 1250,
                        "subject": "Noodles", "way_code": "QR_DYNAMIC", "channel": "bankpay",
                        "notify_url": f"{BASE}/merchant/notify"})
    headers = sign_request(app_id=APP_ID, secret=SECRET, method="POST", path="/api/v1/orders",
                           body=raw, timestamp=clock.timestamp())
    resp = await http.post("/api/v1/orders", content=raw, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "PAYING"


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def state(db: Database) -> tuple[int, int, dict[str, int], dict[str, str | None]]:
    """Events published, the stream's head, each consumer's position, each job's holder."""
    async with db.transaction() as s:
        events = int(await s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
        stream = await s.get(EventStream, STREAM)
        positions = {c.name: c.position for c in (await s.scalars(select(ConsumerState)))}
        jobs = {j.name: j.owner for j in (await s.scalars(select(ScheduledJob)))
                if j.last_started_at is not None}
    return events, stream.last_seq if stream else 0, positions, jobs


async def test_api_processes_without_background_run_nothing_and_the_worker_runs_it_all(
        split_db: Database, settings: Settings) -> None:
    settings = settings.model_copy(update={"database_url": split_db.url,
                                           "enabled_channels": ["bankpay"],
                                           "run_background": False})
    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url=BASE)
    api = create_app(settings, db=split_db, http=http)
    transport.app = api
    await merchants.onboard_demo_merchant(split_db, settings=settings)
    async with api.router.lifespan_context(api):
        assert api.state.background == []
        for _ in range(3):
            await create_order(http)
        # longer than a poll and a linger: an in-process dispatcher would have moved by now
        await asyncio.sleep(1.5)
        events, head, positions, jobs = await state(split_db)
        assert events >= 3
        assert head == 0  # nothing numbered
        assert all(p == 0 for p in positions.values()), positions  # no consumer moved
        assert jobs == {}  # no job was taken

        # the worker: its own connections, like a process of its own; its outbound calls
        # (the merchants' notifications) reach this test's host
        worker_db = Database(split_db.url)
        worker_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=BASE)
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, db=worker_db, http=worker_http,
                                                stop=stop))
        consumers = {c.name for c in declared_consumers(settings)[0]}
        job_names = {j.name for j in declared_jobs(api)}
        try:
            async def all_served() -> bool:
                events, head, positions, jobs = await state(split_db)
                return (head == events and set(positions) >= consumers
                        and all(positions[c] == head for c in consumers)
                        and set(jobs) >= job_names)

            await eventually(all_served, "every consumer at the head and every job taken")
            _, _, _, jobs = await state(split_db)
            assert all(owner is not None for name, owner in jobs.items()
                       if name in {"notify", "orders"}), jobs  # frequent jobs keep a lease

            await create_order(http)  # taken while the worker runs: woken, or found at a poll
            first = (await state(split_db))[0]

            async def new_one_served() -> bool:
                events, head, positions, _ = await state(split_db)
                return head == events >= first and all(positions[c] == head
                                                       for c in consumers)

            await eventually(new_one_served, "the new order's events reach every consumer")
        finally:
            stop.set()
            await asyncio.wait_for(worker, 30)
        _, _, _, jobs = await state(split_db)
        assert set(jobs) >= job_names
        assert all(owner is None for owner in jobs.values()), jobs  # leases given back


async def test_an_api_process_wakes_the_workers_without_a_notify_in_its_transactions(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    db = await open_database("postgres", tmp_path)  # skipped without PostgreSQL
    import asyncpg

    # the app's credential stays cached across the creates counted below, however slow a busy
    # CI machine makes them (a re-read after 10 s once made one statement more)
    monkeypatch.setattr(credentials, "CREDENTIAL_CACHE_SECONDS", 3600.0)
    sent: list[str] = []  # this database's statements only, whatever else the process runs

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _sent(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(" ".join(statement.split())[:80])

    settings = settings.model_copy(update={"database_url": db.url, "run_background": False,
                                           "enabled_channels": ["bankpay"],
                                           "risk_ruleset_ttl_seconds": 3600.0})
    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url=BASE)
    api = create_app(settings, db=db, http=http)
    transport.app = api
    await merchants.onboard_demo_merchant(db, settings=settings)
    heard: list[str] = []
    listener = await asyncpg.connect(db.engine.url.set(drivername="postgresql")
                                     .render_as_string(hide_password=False))
    await listener.add_listener(EVENTS_CHANNEL, lambda *args: heard.append(args[2]))
    try:
        async with api.router.lifespan_context(api):
            await create_order(http)  # warm: credential, rule set, merchant facts
            sent.clear()
            for _ in range(3):
                await create_order(http)
            # the request's own statements: the order with its merchant check, nonce, event and
            # risk decision in one, the channel's acceptance in another, both in autocommit
            # (no BEGIN, NOTIFY, COMMIT around them)
            assert len(sent) == 3 * 2, sent

            async def woken() -> bool:
                return bool(heard)

            await eventually(woken, "a NOTIFY for the workers", seconds=10)
            assert set(heard) == {EVENTS_CHANNEL}
    finally:
        await listener.close()
        await db.dispose()


async def test_two_workers_split_the_consumers_and_only_the_speakers_worker_runs_the_hub(
        split_db: Database, settings: Settings) -> None:
    """FULEMA_WORKER_CONSUMERS: a worker of the message center's own (the speakers off the CPU
    the ledger, points and risk rounds take) beside one for the rest; between them every
    consumer reaches the head, and only the first sends announcements."""
    settings = settings.model_copy(update={"database_url": split_db.url,
                                           "enabled_channels": ["bankpay"],
                                           "run_background": False})
    everyone = {c.name for c in declared_consumers(settings)[0]}
    messaging = {n for n in everyone if n.startswith("messaging.")}
    assert messaging
    assert everyone - messaging
    shapes = {}
    for patterns in (["messaging.*"], ["!messaging.*"]):
        app = create_app(settings.model_copy(update={"run_background": True,
                                                     "worker_consumers": patterns}),
                         db=split_db)
        async with app.router.lifespan_context(app):
            shapes[patterns[0]] = (set(app.state.dispatcher.consumers),
                                   len(app.state.background))
    assert shapes["messaging.*"] == (messaging, 3)  # dispatcher, jobs, the speaker hub
    assert shapes["!messaging.*"] == (everyone - messaging, 2)  # no hub

    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url=BASE)
    api = create_app(settings, db=split_db, http=http)
    transport.app = api
    await merchants.onboard_demo_merchant(split_db, settings=settings)
    stop = asyncio.Event()
    workers = []
    async with api.router.lifespan_context(api):
        for patterns in (["messaging.*"], ["!messaging.*"]):
            worker_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=BASE)
            workers.append(asyncio.create_task(run_worker(
                settings.model_copy(update={"worker_consumers": patterns}),
                db=Database(split_db.url), http=worker_http, stop=stop)))
        try:
            for _ in range(3):
                await create_order(http)

            async def all_served() -> bool:
                events, head, positions, _ = await state(split_db)
                return (events >= 3 and head == events and set(positions) >= everyone
                        and all(positions[c] == head for c in everyone))

            await eventually(all_served, "every consumer at the head, served by one worker or the other")
        finally:
            stop.set()
            for w in workers:
                await asyncio.wait_for(w, 30)
