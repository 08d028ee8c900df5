"""The merchant's notify endpoint for the full-cycle scenario, run as its own process.

A raw ASGI callable rather than a FastAPI app: it must cost the machine as little as possible,
since every CPU cycle here is taken from the server being measured. It verifies each
notification's signature as a merchant must (`verify_notification`), acknowledges with
`SUCCESS`, and lets the load generator long-poll `GET /wait/{order_id}` until that order's
`payment.succeeded` has arrived, so a cycle's latency ends when the merchant was told.

Run: `uvicorn bench.receiver:app --port P` (the harness does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson

from fulema.gateway.signing import verify_notification

SECRET = os.environ.get("BENCH_APP_SECRET", "demo-secret-change-me")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class State:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}  # order id -> time.monotonic() of first arrival
        self.waiters: dict[str, asyncio.Event] = {}
        self.received = 0
        self.duplicates = 0
        self.bad_signature = 0

    def record(self, order_id: str) -> None:
        if order_id in self.arrived:
            self.duplicates += 1
            return
        self.arrived[order_id] = time.monotonic()
        event = self.waiters.pop(order_id, None)
        if event is not None:
            event.set()


STATE = State()


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, ctype: bytes = b"text/plain") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _notify(scope: Scope, receive: Receive, send: Send) -> None:
    body = await _body(receive)
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    STATE.received += 1
    if not verify_notification(SECRET, headers.get("fulema-signature", ""), body,
                               now=int(time.time())):
        STATE.bad_signature += 1
        await _answer(send, 400, b"bad signature")
        return
    doc = orjson.loads(body)
    if doc.get("type") == "payment.succeeded":
        STATE.record(str(doc["data"]["order_id"]))
    await _answer(send, 200, b"SUCCESS")


async def _wait(order_id: str, wait_s: float, send: Send) -> None:
    if order_id not in STATE.arrived:
        event = STATE.waiters.setdefault(order_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), wait_s)
    at = STATE.arrived.get(order_id)
    if at is None:
        await _answer(send, 404, b"not yet")
    else:
        await _answer(send, 200, orjson.dumps({"arrived_monotonic": at}), b"application/json")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path, method = scope["path"], scope["method"]
    if method == "POST" and path == "/notify":
        await _notify(scope, receive, send)
    elif method == "GET" and path.startswith("/wait/"):
        query = parse_qs(scope.get("query_string", b"").decode())
        await _wait(path[len("/wait/"):], float(query.get("timeout", ["30"])[0]), send)
    elif method == "GET" and path == "/stats":
        await _answer(send, 200, orjson.dumps({
            "received": STATE.received, "payments": len(STATE.arrived),
            "duplicates": STATE.duplicates, "bad_signature": STATE.bad_signature}),
            b"application/json")
    elif path == "/ping":
        await _answer(send, 200, b"pong")
    else:
        await _answer(send, 404, b"not found")
