"""Backup endpoints from FULEMA_<CHANNEL>_BACKUP_BASE_URL, end to end: two real sandboxes over
HTTP, the primary answering 5xx, the registry's router sending calls to the backup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from starlette.middleware.base import RequestResponseEndpoint

from fulema.channels.base import CreatePaymentRequest, TradeState
from fulema.channels.breaker import BreakerState
from fulema.channels.registry import build_channels
from fulema.channels.routing import GuardedChannel
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.sandboxes import sandbox_app
from tests.channels.test_breaker import small

CHANNELS = ["bankpay", "alipay", "unionpay", "ecny"]


@dataclass
class Env:
    name: str
    http: httpx.AsyncClient
    guarded: GuardedChannel
    sandboxes: list[Any]
    paths: list[str] = field(default_factory=list)

    def hits(self, prefix: str) -> list[str]:
        return [p for p in self.paths if p.startswith(prefix + "/") and "/wallet/" not in p]


@pytest.fixture(params=CHANNELS)
async def env(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    name: str = request.param
    monkeypatch.setenv(f"FULEMA_{name.upper()}_BACKUP_BASE_URL",
                       f"http://testserver/sandbox/{name}-backup")
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path,
                        enabled_channels=[name])
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    primary_app = sandbox_app(name, settings, http)
    backup_app = sandbox_app(name, settings, http)
    app.mount(f"/sandbox/{name}-backup", backup_app)
    app.mount(f"/sandbox/{name}", primary_app)
    registry = build_channels(settings, http, small(slow_call_seconds=5.0, slow_call_ratio=1.0))
    guarded = registry.get(name)
    assert isinstance(guarded, GuardedChannel)
    e = Env(name, http, guarded, [primary_app.state.sandbox, backup_app.state.sandbox])

    @app.middleware("http")
    async def record(req: Request, call_next: RequestResponseEndpoint) -> Response:
        e.paths.append(req.url.path)
        return await call_next(req)

    yield e
    for sb in e.sandboxes:
        for task in list(getattr(sb, "tasks", ())):
            task.cancel()
    await http.aclose()


def order() -> CreatePaymentRequest:
    return CreatePaymentRequest(order_id=new_id("ord"), amount=Money(1234), subject="Noodles",
                                way_code=WayCode.QR_DYNAMIC,
                                notify_url="http://testserver/callbacks/x",
                                expire_at=clock.now() + timedelta(minutes=15))


async def test_backup_setting_adds_a_backup_endpoint(env: Env) -> None:
    assert [ep.name for ep in env.guarded.endpoints] == ["primary", "backup"]
    backup = env.guarded.endpoints[1].channel
    assert getattr(backup, "base_url", "").endswith(f"/sandbox/{env.name}-backup")


async def test_primary_5xx_fails_over_to_backup(env: Env) -> None:
    primary, backup = f"/sandbox/{env.name}", f"/sandbox/{env.name}-backup"
    resp = await env.http.post(f"{primary}/wallet/faults", json={"mode": "5xx"})
    assert resp.status_code == 200, resp.text
    # queries are idempotent: each fails on the primary and is answered by the backup
    probe = order().order_id
    for _ in range(10):
        if env.guarded.breaker("primary").state == BreakerState.OPEN:
            break
        result = await env.guarded.query(probe)
        assert result.state == TradeState.NOT_FOUND  # the backup's answer, not a failure
    assert env.guarded.breaker("primary").state == BreakerState.OPEN
    assert env.guarded.breaker("backup").state == BreakerState.CLOSED
    env.paths.clear()

    # with the primary open, a new payment goes to the backup only, and succeeds there
    req = order()
    created = await env.guarded.create(req)
    assert created.code_url
    queried = await env.guarded.query(req.order_id)
    assert queried.state in (TradeState.PAYING, TradeState.NOT_FOUND)
    assert env.hits(backup)
    assert env.hits(primary) == []  # nothing sent to the open primary


async def test_no_backup_setting_means_primary_only(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CHANNELS:
        monkeypatch.delenv(f"FULEMA_{name.upper()}_BACKUP_BASE_URL", raising=False)
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path,
                        enabled_channels=CHANNELS)
    async with httpx.AsyncClient() as http:
        registry = build_channels(settings, http, small())
        for name in CHANNELS:
            guarded = registry.get(name)
            assert isinstance(guarded, GuardedChannel)
            assert [ep.name for ep in guarded.endpoints] == ["primary"]
