"""The front as merchants, payers and channels meet it: nginx started with the configuration
`fulema gateway nginx-config` writes, in a temporary folder on free ports, in front of the real
application served by uvicorn. The application's own limits are off here, so every 429 seen is
the front's (refused before Python), and the orders in the database show nothing refused was
half-written. Skipped, saying so, where nginx is not installed (scripts/test.sh installs it)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from bench.server import Proc, free_port, stop
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from bench import front
from fulema.app import create_app
from fulema.core.channel_settings import RateLimitSection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.gateway.signing import sign_request
from fulema.merchants import service as merchants
from fulema.payments.models import Order
from tests.channels.live_server import START_SECONDS, bound_socket
from tests.merchants.factories import OPERATOR, active_with_store

pytestmark = pytest.mark.skipif(front.nginx_binary() is None, reason=front.NGINX_MISSING)

# What the front is written from: creates per app tight, the cashier per IP tight, the rest
# far away. The application behind it runs with its own limits off.
FRONT_LIMITS = RateLimitSection(app_create_rate=0.01, app_create_burst=3,
                                cashier_ip_rate=0.01, cashier_ip_burst=4,
                                cashier_poll_ip_rate=100, cashier_poll_ip_burst=100)
CLIENT_SECONDS = 60.0  # nginx's own wait for the API process
MERCHANT_A, MERCHANT_B, FORGER = "198.51.100.10", "203.0.113.20", "192.0.2.66"


@dataclass
class Front:
    http: httpx.AsyncClient  # to nginx
    db: Database
    folder: Path
    apps: dict[str, tuple[str, str]]  # merchant -> (app id, secret)
    seen_forwarded: list[str]

    async def create(self, who: str, *, source: str, secret: str | None = None
                     ) -> httpx.Response:
        app_id, own = self.apps[who]
        secret = secret or own
        body = orjson.dumps({"out_trade_no": f"F{secrets.token_hex(6)}", "amount": 1250,
                             "subject": "Noodles", "way_code": "QR_DYNAMIC",
                             "channel": "bankpay"})
        signed = sign_request(app_id=app_id, secret=secret, method="POST",
                              path="/api/v1/orders", body=body, timestamp=clock.timestamp())
        return await self.http.post("/api/v1/orders", content=body,
                                    headers={**signed, "X-Forwarded-For": source})


async def _serve(app: FastAPI) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """uvicorn in this test's event loop, on a socket bound before its port is known (no gap
    in which another of the suite's processes could take the port)."""
    sock = bound_socket()
    port = int(sock.getsockname()[1])
    # a request still in flight at the end is cancelled after 10 s (uvicorn's default is to
    # wait for it without end, which would stall the suite rather than fail one test)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=10))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = asyncio.get_running_loop().time() + START_SECONDS
    while not server.started:
        if task.done():
            raise AssertionError(f"uvicorn stopped before it started: {task.exception()!r}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"uvicorn did not start within {START_SECONDS:.0f} s")
        await asyncio.sleep(0.02)
    return server, task, port


@pytest.fixture
async def served(db: Database, settings: Settings, tmp_path: Path
                 ) -> AsyncIterator[tuple[FastAPI, int, dict[str, Any]]]:
    settings = settings.model_copy(update={
        "enabled_channels": ["bankpay"], "ratelimit": RateLimitSection(enabled=False)})
    transport = httpx.ASGITransport(app=FastAPI())
    inner = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    app = create_app(settings, db=db, http=inner)
    transport.app = app
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    merchant_b, _ = await active_with_store(db)
    issued = await merchants.create_app_credential(db, merchant_id=merchant_b, operator=OPERATOR)
    apps = {"A": ("app_demo", "demo-secret-change-me", demo.merchant_id),
            "B": (issued.app.app_id, issued.secret, merchant_b)}
    server, task, port = await _serve(app)
    try:
        yield app, port, apps
    finally:
        server.should_exit = True
        await task
        await inner.aclose()
        await asyncio.to_thread(_show_logs, tmp_path)


def _show_logs(folder: Path) -> None:
    """nginx's logs on stderr, which pytest shows beside a failed test."""
    for name in ("error.log", "nginx.out", front.TIMING_LOG):
        for log in sorted(folder.rglob(name)):
            sys.stderr.write(f"--- {log}\n{log.read_text(errors='replace')[-4000:]}\n")


async def _front(served: tuple[FastAPI, int, dict[str, Any]], db: Database, folder: Path,
                 limits: RateLimitSection) -> AsyncIterator[Front]:
    app, port, apps = served
    seen: list[str] = []

    async def forwarded(request: Request) -> JSONResponse:
        seen.append(request.headers.get("x-forwarded-for", ""))
        return JSONResponse({"ok": True})

    app.add_api_route("/echo/forwarded", forwarded, methods=["GET"])
    nginx: Proc = await asyncio.to_thread(front.start, folder, limits, [f"127.0.0.1:{port}"])
    try:
        # a request's time is not what these tests check; a CI machine running the suite's
        # other worker and a browser beside them has taken over 10 s for one create
        async with httpx.AsyncClient(base_url=nginx.url, timeout=CLIENT_SECONDS) as http:
            yield Front(http, db, folder, {k: (v[0], v[1]) for k, v in apps.items()}, seen)
    finally:
        await asyncio.to_thread(stop, nginx)


@pytest.fixture
async def gate(served: tuple[FastAPI, int, dict[str, Any]], db: Database, tmp_path: Path
               ) -> AsyncIterator[Front]:
    async for f in _front(served, db, tmp_path / "nginx", FRONT_LIMITS):
        yield f


async def _orders(db: Database, merchant_id: str) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(Order)
                                  .where(Order.merchant_id == merchant_id)) or 0)


async def test_one_apps_burst_is_refused_at_the_front_while_another_app_and_callbacks_pass(
        gate: Front, served: tuple[FastAPI, int, dict[str, Any]]) -> None:
    _, _, apps = served
    answers = [await gate.create("A", source=MERCHANT_A) for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 3 + [429] * 5, answers[-1].text
    refused = answers[-1]
    body = refused.json()
    assert body["code"] == "RATE_LIMITED"
    assert set(body) == {"code", "message", "request_id"}
    assert body["request_id"] == refused.headers["X-Request-Id"]
    assert refused.headers["content-type"].startswith("application/json")
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-Content-Type-Options"] == "nosniff"
    # the second merchant's app at the same moment: its own bucket
    theirs = await gate.create("B", source=MERCHANT_B)
    assert theirs.status_code == 200, theirs.text
    # channel callbacks are never limited, however many come
    callbacks = [await gate.http.post("/callbacks/bankpay", content=b"{}") for _ in range(30)]
    assert all(c.status_code != 429 for c in callbacks)
    # nothing refused reached the application: three orders for A, one for B
    assert await _orders(gate.db, apps["A"][2]) == 3
    assert await _orders(gate.db, apps["B"][2]) == 1
    await asyncio.sleep(1.2)  # the refusal log is written at least once a second
    counted = front.refusals(gate.folder)
    assert counted == {"front": 5, "in_process": 0}


async def test_a_caller_naming_another_apps_id_spends_only_its_own_addresss_bucket(
        gate: Front) -> None:
    # the app id header is not proven at the front: a forger floods with A's app id (without
    # A's secret: the application refuses the three the front lets through)
    forged = [await gate.create("A", source=FORGER, secret="not-the-secret") for _ in range(6)]
    assert [f.status_code for f in forged] == [401] * 3 + [429] * 3
    mine = await gate.create("A", source=MERCHANT_A)  # A, from its own address: untouched
    assert mine.status_code == 200, mine.text


async def test_the_cashier_is_limited_per_payer_with_a_page_and_polling_keeps_its_own_budget(
        gate: Front) -> None:
    phone = {"X-Forwarded-For": "100.64.0.7"}
    pages = [await gate.http.get("/pay/q/NOSUCHPLATE", headers=phone) for _ in range(7)]
    assert [p.status_code == 429 for p in pages] == [False] * 4 + [True] * 3
    page = pages[-1]
    assert page.headers["content-type"].startswith("text/html")
    assert "请" in page.text
    assert "Too many requests" in page.text
    assert int(page.headers["Retry-After"]) >= 1
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    poll = await gate.http.get("/pay/result/ord_x/status", headers=phone)
    assert poll.status_code != 429  # the result page's poll is not the submit budget
    other_phone = await gate.http.get("/pay/q/NOSUCHPLATE",
                                      headers={"X-Forwarded-For": "100.64.0.8"})
    assert other_phone.status_code != 429


async def test_the_application_sees_the_payers_address_and_nothing_else(gate: Front) -> None:
    await gate.http.get("/echo/forwarded", headers={"X-Forwarded-For": "198.51.100.77"})
    assert gate.seen_forwarded == ["198.51.100.77"]


async def test_without_a_trusted_balancer_a_claimed_address_is_replaced_by_the_peers(
        served: tuple[FastAPI, int, dict[str, Any]], db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    app, port, _ = served
    seen: list[str] = []

    async def forwarded(request: Request) -> JSONResponse:
        seen.append(request.headers.get("x-forwarded-for", ""))
        return JSONResponse({"ok": True})

    app.add_api_route("/echo/forwarded", forwarded, methods=["GET"])
    nginx = await asyncio.to_thread(front.start, folder, FRONT_LIMITS,
                                    [f"127.0.0.1:{port}"], real_ip_from=())
    try:
        async with httpx.AsyncClient(base_url=nginx.url, timeout=CLIENT_SECONDS) as http:
            await http.get("/echo/forwarded", headers={"X-Forwarded-For": "198.51.100.77"})
    finally:
        await asyncio.to_thread(stop, nginx)
    assert seen == ["127.0.0.1"]


async def test_a_body_over_the_limit_is_refused_at_the_front_in_our_format(
        gate: Front) -> None:
    answer = await gate.http.post("/api/v1/orders", content=b"x" * (64 * 1024 + 1),
                                  headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["code"] == "BODY_TOO_LARGE"


async def test_the_timing_log_times_every_answer_without_the_payers_address(
        gate: Front) -> None:
    answers = [await gate.create("B", source=MERCHANT_B) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    await asyncio.sleep(1.2)  # written at least once a second
    text = (gate.folder / front.TIMING_LOG).read_text()
    assert MERCHANT_B not in text
    creates = [e for e in map(orjson.loads, text.splitlines()) if e["class"] == "create"]
    assert [e["status"] for e in creates] == [200, 200]
    assert {e["app_id"] for e in creates} == {gate.apps["B"][0]}
    for e in creates:  # nginx's whole time and the API process's part of it, in seconds
        assert isinstance(e["request_time"], float)
        assert float(e["upstream_response_time"]) >= 0
        assert e["upstream_status"] == "200"


async def test_with_no_api_process_to_reach_the_front_answers_in_our_format(
        tmp_path: Path) -> None:
    # a port held bound and never listened on: no process can take it, and none answers
    held = bound_socket()
    nothing_there = f"127.0.0.1:{held.getsockname()[1]}"
    nginx = await asyncio.to_thread(front.start, tmp_path / "down", FRONT_LIMITS,
                                    [nothing_there])
    try:
        async with httpx.AsyncClient(base_url=nginx.url, timeout=CLIENT_SECONDS) as http:
            answers = [await http.post("/api/v1/orders", content=b"{}",
                                       headers={"X-Request-Id": "merchant-req-1"}),
                       await http.post("/callbacks/bankpay", content=b"{}")]
    finally:
        await asyncio.to_thread(stop, nginx)
        held.close()
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("application/json")
        body = answer.json()
        assert body["code"] == "UPSTREAM_UNAVAILABLE"
        assert set(body) == {"code", "message", "request_id"}
        assert body["request_id"] == answer.headers["X-Request-Id"]
        assert int(answer.headers["Retry-After"]) >= 1
    assert answers[0].json()["request_id"] == "merchant-req-1"


def test_a_port_taken_in_the_gap_before_nginx_binds_it_is_not_mistaken_for_the_front(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # another process answers HTTP on the port handed to nginx (as the suite's other worker
    # can, between the port's choice and nginx's bind): start tries another port, and the
    # front it returns is nginx itself
    taken = bound_socket()
    taken.listen()
    # the taken port first, then free ones as start chooses them (a second port named here
    # could itself be taken by the suite's other worker before nginx binds it)
    planted = [taken.getsockname()[1]]
    choose = free_port
    monkeypatch.setattr(front, "free_port", lambda: planted.pop() if planted else choose())
    stranger = threading.Thread(target=_answer_404, args=(taken,), daemon=True)
    stranger.start()
    nginx = front.start(tmp_path / "gap", FRONT_LIMITS, ["127.0.0.1:9"])
    try:
        assert nginx.port != taken.getsockname()[1]
        answer = httpx.post(f"{nginx.url}/api/v1/orders", content=b"x" * (64 * 1024 + 1),
                            timeout=CLIENT_SECONDS)
        assert answer.json()["code"] == "BODY_TOO_LARGE"
    finally:
        stop(nginx)
        taken.close()


def _answer_404(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while True:
            conn, _ = sock.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
