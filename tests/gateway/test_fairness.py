"""Fairness between merchants when one of them floods: the merchant at its usual rate is answered
200 every time, also when the whole process has slowed down so that its usual rate means more
of its requests in flight than its concurrency share.

The limiter and the real `admit_app` run in front of an application that holds every admitted
request until the test releases it (a process that has slowed down), so the in-flight counts are
exact and nothing depends on time: the tests count answers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from fulema.core.channel_settings import RateLimitSection
from fulema.core.errors import FulemaError
from fulema.gateway.protection import Protection, ProtectionMiddleware, admit_app


class SlowApp:
    """Behind the limiter: admits the app named in `x-app` (as the signed door does once the
    signature is good), then holds the request until `release` is set."""

    def __init__(self, protection: Protection) -> None:
        self.state = SimpleNamespace(protection=protection)  # what request.app.state gives
        self.release = asyncio.Event()
        self.settled = asyncio.Event()  # the last request sent is held or was refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        request = Request(scope, receive)
        try:
            await admit_app(request, request.headers["x-app"])
        except FulemaError as exc:
            self.settled.set()
            await _answer(send, 429, exc.code.value)
            return
        self.settled.set()
        await self.release.wait()
        await _answer(send, 200, "OK")


async def _answer(send: Send, status: int, code: str) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": orjson.dumps({"code": code})})


def _scope(app_id: str, source: str) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/api/v1/orders",
            "raw_path": b"/api/v1/orders", "query_string": b"",
            "headers": [(b"x-app", app_id.encode())], "client": (source, 40000),
            "server": ("127.0.0.1", 8000), "scheme": "http", "http_version": "1.1",
            "root_path": "", "state": {}}


class Merchants:
    def __init__(self, protection: Protection) -> None:
        self.protection = protection
        self.app = SlowApp(self.protection)
        self.door = ProtectionMiddleware(self.app, self.protection)
        self.tasks: dict[str, list[asyncio.Task[int]]] = {"A": [], "B": []}

    async def send(self, who: str, n: int) -> None:
        """`n` requests from merchant `who`, each held or refused before the next is sent."""
        for _ in range(n):
            self.app.settled.clear()
            task = asyncio.create_task(self._one(who))
            self.tasks[who].append(task)
            held = asyncio.create_task(self.app.settled.wait())
            # no clock: until it is held behind the door, or answered (refused in front of it)
            await asyncio.wait({task, held}, return_when=asyncio.FIRST_COMPLETED)
            held.cancel()

    async def _one(self, who: str) -> int:
        statuses: list[int] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(message["status"]))

        await self.door(_scope(f"app-{who}", f"198.51.100.{ord(who)}"), receive, send)
        return statuses[0]

    async def answers(self) -> dict[str, Counter[int]]:
        self.app.release.set()
        return {who: Counter(await asyncio.gather(*tasks)) for who, tasks in self.tasks.items()}


async def test_a_merchant_at_its_rate_is_not_refused_because_the_process_is_slow() -> None:
    # A floods past its create bucket; B has six requests in flight, over its share of four,
    # only because every answer is slow. The process has room (floor 64): B gets six 200s.
    m = Merchants(Protection(RateLimitSection(app_create_rate=0.001, app_create_burst=10,
                                              app_concurrency=4, adaptive_min_inflight=64)))
    await m.send("A", 40)
    await m.send("B", 6)
    answers = await m.answers()
    assert answers["B"] == Counter({200: 6})
    assert answers["A"] == Counter({200: 10, 429: 30})  # refused by its rate, not by B's
    assert m.protection.app_inflight == {}
    assert m.protection.inflight == 0


def _pressed(floor: int) -> Protection:
    """A protection whose measured capacity is below `floor`, so its limit is the floor."""
    p = Protection(RateLimitSection(app_create_rate=1000, app_create_burst=1000,
                                    app_concurrency=2, adaptive_min_inflight=floor))
    now = time.monotonic()
    p.window.record(now - 2, 0.001)
    p.window.record(now - 1, 0.001)
    return p


async def test_once_the_process_fills_up_the_app_holding_the_most_is_refused_first() -> None:
    m = Merchants(_pressed(floor=8))  # pressed from 6 in flight (PRESSED = 0.75)
    await m.send("A", 20)  # A takes five slots, then is refused by its share
    await m.send("B", 3)  # B is over its share of two too, but A holds more: B is served
    answers = await m.answers()
    assert answers["A"] == Counter({200: 5, 429: 15})
    assert answers["B"] == Counter({200: 3})
    assert m.protection.app_inflight == {}
    assert m.protection.inflight == 0


async def test_a_pressed_process_refuses_the_biggest_holder_even_when_it_is_the_quiet_one(
        ) -> None:
    # The share is about slots held, not about who flooded: B holding the most while the
    # process is pressed is refused, A (fewer in flight) is not.
    m = Merchants(_pressed(floor=8))
    await m.send("B", 6)
    await m.send("A", 1)
    answers = await m.answers()
    assert answers["B"] == Counter({200: 5, 429: 1})
    assert answers["A"] == Counter({200: 1})
