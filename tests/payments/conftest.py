"""A whole platform in process: the real app, its mounted channel sandboxes, the demo merchant
and a merchant-side notify receiver, all reached over HTTP through one ASGI transport."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from fulema.app import create_app
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.gateway.signing import sign_request
from fulema.merchants import service as merchants
from fulema.ops.worker import run_all_once

APP_ID = "app_demo"
SECRET = "demo-secret-change-me"


@dataclass
class Receiver:
    """The merchant's notify endpoint: records what arrives; can be told to fail."""

    received: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0

    async def handle(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        self.received.append({"headers": dict(request.headers), "body": body,
                              "json": orjson.loads(body)})
        if self.fail_next > 0:
            self.fail_next -= 1
            return PlainTextResponse("busy", status_code=500)
        return PlainTextResponse("SUCCESS")


@dataclass
class Platform:
    app: FastAPI
    http: httpx.AsyncClient
    db: Database
    settings: Settings
    receiver: Receiver
    merchant_id: str

    async def call(self, method: str, path: str, body: dict[str, Any] | bytes | None = None, *,
                   app_id: str = APP_ID, secret: str = SECRET,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else (orjson.dumps(body) if body is not None else b"")
        signed = sign_request(app_id=app_id, secret=secret, method=method, path=path, body=raw,
                              timestamp=clock.timestamp())
        return await self.http.request(method, path, content=raw,
                                       headers={**signed, **(headers or {})})

    async def order(self, **overrides: Any) -> httpx.Response:
        body = {"out_trade_no": f"T{secrets.token_hex(6)}",
                "amount": 1250, "subject": "Noodles", "way_code": "QR_DYNAMIC",
                "channel": "bankpay", "notify_url": "http://testserver/merchant/notify"}
        body.update(overrides)
        return await self.call("POST", "/api/v1/orders", body)

    async def wallet(self, channel: str, path: str, body: dict[str, Any] | None = None
                     ) -> httpx.Response:
        return await self.http.post(f"/sandbox/{channel}/wallet{path}", json=body or {})

    async def settle_background(self, rounds: int = 3) -> None:
        """Let sandbox callbacks land, then run every job once (outbox, polls, notifications)."""
        for _ in range(rounds):
            await asyncio.sleep(0.05)
            await run_all_once(self.app)

    async def wait_status(self, order_id: str, status: str, *, tries: int = 40) -> dict[str, Any]:
        view: dict[str, Any] = {}
        for _ in range(tries):
            resp = await self.call("GET", f"/api/v1/orders/{order_id}")
            view = resp.json()
            if view.get("status") == status:
                return view
            await asyncio.sleep(0.05)
        raise AssertionError(f"order {order_id} is {view.get('status')}, never {status}")


@asynccontextmanager
async def built_platform(db: Database, settings: Settings, channels: list[str]
                         ) -> AsyncIterator[Platform]:
    """The whole app over HTTP with `channels` enabled and the demo merchant onboarded: the one
    builder the payments and onboarding fixtures share."""
    settings = settings.model_copy(update={"enabled_channels": channels})
    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    app = create_app(settings, db=db, http=http)
    transport.app = app
    receiver = Receiver()
    app.add_api_route("/merchant/notify", receiver.handle, methods=["POST"])
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    try:
        yield Platform(app=app, http=http, db=db, settings=settings, receiver=receiver,
                       merchant_id=demo.merchant_id)
    finally:
        await http.aclose()


@pytest.fixture
async def platform(db: Database, settings: Settings) -> AsyncIterator[Platform]:
    async with built_platform(db, settings, ["wechat", "bankpay"]) as p:
        yield p
