"""`fulema demo`: the whole story, step by step, over HTTP like any merchant and payer would.

Against a running `fulema serve` (`--url`), or in process: then a private server on a free
port with its own SQLite file. A small local web server plays the merchant's notify endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.demo_onboarding import onboard
from fulema.gateway.signing import sign_request, verify_notification
from fulema.merchants.domain import uscc_check_char

console = Console()
WECHAT_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47 NetType/WIFI")
PAYER = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _serve(app: Any, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await task


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.app = FastAPI()
        self.app.add_api_route("/notify", self.handle, methods=["POST"])

    async def handle(self, request: Request) -> PlainTextResponse:
        self.got.append((dict(request.headers), await request.body()))
        return PlainTextResponse("SUCCESS")


@dataclass(frozen=True)
class DemoOutcome:
    """What the story ended with, as the merchant saw it (the e2e test checks it)."""

    paid: dict[str, Any]  # the order once the payer paid
    refund: dict[str, Any]  # the refund once it settled
    final: dict[str, Any]  # the order queried at the end
    notifications: list[dict[str, Any]]  # every body received, with "signature_valid"
    registrations: list[dict[str, Any]] = field(default_factory=list)  # at the channels
    bills: list[dict[str, Any]] = field(default_factory=list)  # the demo biller's sandbox bill
    charity: list[dict[str, Any]] = field(default_factory=list)  # the seeded projects


def step(n: int, text: str) -> None:
    console.rule(f"[bold cyan]{n}. {text}")


def show(data: dict[str, Any], keys: list[str]) -> None:
    table = Table(show_header=False, box=None)
    for k in keys:
        v = data.get(k)
        table.add_row(f"[dim]{k}", str(v) if v is not None else "—")
    console.print(table)


async def run_demo(url: str | None, settings: Settings) -> DemoOutcome:
    """The story against `url`, or against a private in-process platform built from a copy of
    `settings` (its own SQLite file, data dir and port)."""
    receiver = Receiver()
    notify_port = _free_port()
    async with _serve(receiver.app, notify_port):
        if url:
            return await _story(url.rstrip("/"), settings.operator_token, receiver,
                                notify_port)
        with tempfile.TemporaryDirectory(prefix="fulema-demo-") as tmp:
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            settings = settings.model_copy(update={
                "database_url": f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}",
                "data_dir": Path(tmp) / "data", "public_base_url": base, "port": port,
                "operator_token": "demo-operator-token"})
            from fulema.app import create_app
            from fulema.migrate import upgrade

            await asyncio.to_thread(upgrade, settings.database_url)
            console.print(f"[dim]in-process platform at {base} (SQLite in {tmp})")
            async with _serve(create_app(settings), port):
                return await _story(base, settings.operator_token, receiver, notify_port)


async def _story(base: str, operator_token: str, receiver: Receiver, notify_port: int
                 ) -> DemoOutcome:
    ops = {"Authorization": f"Bearer {operator_token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        async def op(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            r = await http.request(method, path, json=body, headers=ops)
            if r.status_code >= 400:
                raise SystemExit(f"{method} {path} -> {r.status_code} {r.text}")
            data: dict[str, Any] = r.json()
            return data

        console.print(Panel.fit("付了码 Fulema — one QR code, every payer's app", style="bold red"))
        step(1, "A noodle shop applies to the bank (商户进件)")
        body17 = "91320582" + str(clock.timestamp())[-9:]  # 张家港 division code
        licence = body17 + uscc_check_char(body17)
        m = await op("POST", "/ops/v1/merchants", {
            "name": "张家港老街面馆", "short_name": "老街面馆", "licence_no": licence,
            "legal_person": "王小明", "settlement_account": "6228480402564890018",
            "settlement_account_name": "王小明", "contact_name": "王小明",
            "contact_phone": "13812345678", "mcc": "5812"})
        mid = m.get("merchant_id") or m["id"]
        show(m, ["name", "licence_no", "status"])
        step(2, "The bank reviews and approves; the merchant is activated")
        await op("POST", f"/ops/v1/merchants/{mid}/approve", {})
        m = await op("POST", f"/ops/v1/merchants/{mid}/activate", {})
        show(m, ["status"])
        step(3, "A store, an API credential and a QR plate (收款码牌)")
        store = await op("POST", f"/ops/v1/merchants/{mid}/stores",
                         {"name": "老街店", "address": "张家港市步行街 8 号"})
        store_id = store.get("store_id") or store["id"]
        app = await op("POST", f"/ops/v1/merchants/{mid}/apps", {
            "notify_url": f"http://127.0.0.1:{notify_port}/notify"})
        app_id, secret = app["app_id"], app["secret"]
        speaker_id = f"spk-{licence[-7:-1]}"  # the counter's cloud speaker (云喇叭)
        await op("POST", f"/ops/v1/merchants/{mid}/stores/{store_id}/terminals", {
            "kind": "SPEAKER", "serial_no": f"SPK{licence[-7:-1]}", "speaker_id": speaker_id})
        plate = await op("POST", f"/ops/v1/merchants/{mid}/plates", {"store_id": store_id})
        code = plate.get("code") or plate["plate_code"]
        console.print(f"plate [bold]{code}[/] → {base}/pay/q/{code}  (PNG: /ops/v1/plates/{code}.png)")

        step(4, "Registered at WeChat Pay and Alipay as a sub-merchant (进件/报备)")
        registrations = await onboard(console, http, op, mid)

        step(5, "A payer scans the plate with WeChat and enters ¥12.50")
        page = await http.get(f"/pay/q/{code}", headers={"User-Agent": WECHAT_UA})
        while page.status_code == 302:  # WeChat's silent OAuth (snsapi_base) for the openid
            location = page.headers["location"]
            console.print(f"[dim]→ {location[:100]}")
            if "/connect/oauth2/authorize" in location:
                location += f"&payer_id={PAYER}"  # the sandbox app: who is scanning
            page = await http.get(location, headers={"User-Agent": WECHAT_UA})
        token = re.search(r'name="payer_id" value="([^"]*)"', page.text)
        console.print(f"cashier page: HTTP {page.status_code}, shows merchant: "
                      f"{'张家港老街面馆' in page.text}, payer identified: "
                      f"{bool(token and token.group(1))}")
        handed = await http.post(f"/pay/q/{code}", headers={"User-Agent": WECHAT_UA}, data={
            "amount": "12.50", "payer_id": token.group(1) if token else ""})
        found = re.search(r'data-order-id="([^"]+)"', handed.text)
        if handed.status_code != 200 or not found:
            raise SystemExit(f"cashier refused: {handed.status_code} {handed.text[:300]}")
        order_id = found.group(1)

        async def api(method: str, path: str, body: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
            raw = orjson.dumps(body) if body is not None else b""
            headers = sign_request(app_id=app_id, secret=secret, method=method, path=path,
                                   body=raw, timestamp=clock.timestamp())
            r = await http.request(method, path, content=raw, headers=headers)
            data: dict[str, Any] = r.json()
            if r.status_code >= 400:
                raise SystemExit(f"{method} {path} -> {r.status_code} {data}")
            return data

        order = await api("GET", f"/api/v1/orders/{order_id}")
        show(order, ["order_id", "status", "amount", "channel", "way_code"])
        prepay = str((order.get("pay_params") or {}).get("package", "")).removeprefix("prepay_id=")
        step(6, "The payer confirms in the WeChat sandbox wallet")
        paid = await http.post("/sandbox/wechat/wallet/scan",
                               json={"prepay_id": prepay, "payer_id": PAYER})
        console.print(f"wallet: HTTP {paid.status_code} {paid.json().get('trade_state', '')}")
        for _ in range(100):
            order = await api("GET", f"/api/v1/orders/{order_id}")
            if order["status"] == "SUCCESS":
                break
            await asyncio.sleep(0.1)
        show(order, ["status", "amount", "channel_trade_no", "paid_at"])
        paid_order = order

        step(7, "The merchant's notify endpoint receives the signed notification, and the "
                "counter's cloud speaker speaks")
        await _wait_for(receiver, "payment.succeeded")
        _print_notifications(receiver, secret)

        await _print_announcement(http, speaker_id)

        step(8, "A partial refund of ¥2.50")
        refund = await api("POST", f"/api/v1/orders/{order_id}/refunds",
                           {"out_refund_no": f"RF{clock.timestamp()}", "amount": 250,
                            "reason": "少放了一份浇头"})
        show(refund, ["refund_id", "status", "amount"])
        for _ in range(100):
            refund = await api("GET", f"/api/v1/refunds/{refund['refund_id']}")
            if refund["status"] != "PROCESSING":
                break
            await asyncio.sleep(0.1)
        await _wait_for(receiver, "refund.succeeded")
        _print_notifications(receiver, secret)

        step(9, "The merchant queries the order")
        order = await api("GET", f"/api/v1/orders/by-out-trade-no/{order['out_trade_no']}")
        show(order, ["order_id", "status", "amount", "refunded_amount", "paid_at"])
        step(10, "The same platform takes bill payments and donations (缴费与公益)")
        extras = await _bills_and_charity(http)
        console.print(Panel.fit("paid ¥12.50, refunded ¥2.50, merchant told twice, "
                                "every message signed", style="bold green"))
        received = [{**orjson.loads(body), "signature_valid": verify_notification(
            secret, headers.get("fulema-signature", ""), body, now=clock.timestamp())}
            for headers, body in receiver.got]
        return DemoOutcome(paid=paid_order, refund=refund, final=order, notifications=received,
                           registrations=registrations, bills=extras["bills"],
                           charity=extras["charity"])


async def _bills_and_charity(http: httpx.AsyncClient) -> dict[str, list[dict[str, Any]]]:
    """The seeded water company's bill for the demo account and the charity projects (a
    platform seeded before they existed shows none)."""
    from fulema.billing.demo_seed import DEMO_BILL_ACCOUNT, DEMO_BILLER_CODE

    found: dict[str, list[dict[str, Any]]] = {"bills": [], "charity": []}
    r = await http.get(f"/bills/v1/billers/{DEMO_BILLER_CODE}/accounts/{DEMO_BILL_ACCOUNT}/bills")
    if r.status_code == 200:
        found["bills"] = r.json()["data"]
        for bill in found["bills"]:
            show(bill, ["bill_id", "account_no", "period", "amount", "due_date"])
    r = await http.get("/charity/v1/projects")
    if r.status_code == 200:
        found["charity"] = r.json()["data"]
        for project in found["charity"]:
            show(project, ["name", "organisation", "target_amount", "raised_amount"])
    return found


async def _print_announcement(http: httpx.AsyncClient, speaker_id: str) -> None:
    """What the store's cloud speaker said, from the live feed (no broker configured); with a
    broker the speaker itself says it (`fulema speaker --device <id>`)."""
    for _ in range(50):
        r = await http.get("/messages/feed.json")
        if r.status_code != 200:
            console.print(f"cloud speaker {speaker_id}: announced over MQTT")
            return
        said = [i for i in r.json()["items"] if i["speaker_id"] == speaker_id]
        if said:
            console.print(f"cloud speaker {speaker_id} says: [bold]{said[-1]['text']}[/]")
            return
        await asyncio.sleep(0.1)
    console.print(f"cloud speaker {speaker_id}: nothing announced yet")


async def _wait_for(receiver: Receiver, kind: str, seconds: float = 20) -> None:
    for _ in range(int(seconds * 10)):
        if any(orjson.loads(b).get("type") == kind for _, b in receiver.got):
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"no {kind} notification arrived within {seconds}s")


def _print_notifications(receiver: Receiver, secret: str) -> None:
    headers, body = receiver.got[-1]
    ok = verify_notification(secret, headers.get("fulema-signature", ""), body,
                             now=clock.timestamp())
    doc = orjson.loads(body)
    console.print(f"[bold]{doc['type']}[/] signature valid: [green]{ok}[/]  "
                  f"Fulema-Signature: {headers.get('fulema-signature', '')[:40]}…")
