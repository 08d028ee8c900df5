"""WeChat Pay API v3 (direct-merchant mode) as a sandbox, plus the payers' side (`/wallet/...`).

A second, independent implementation of WeChat's protocol (`protocol.py`, written from the
vendor's documentation; nothing is imported from our adapter). The channel API
(fulema.sandbox.wechat.routes) checks request signatures exactly as WeChat
does and answers with WeChat's error shape {code, message}; it signs every answer with the
platform key and sends encrypted, signed callbacks after it has answered. The wallet endpoints
play the payer: scan a QR code, confirm a JSAPI/APP/H5 payment, present a payer code, enter
the password; plus fault injection and a statement-difference switch for tests.
"""

from __future__ import annotations

import html
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from fulema.core.clock import clock
from fulema.sandbox.json_common import (
    answer,
    new_payer,
    payer_code,
    read_json,
    refuse,
    set_faults,
)
from fulema.sandbox.wallet import Refusal, parse_rules
from fulema.sandbox.wechat.applyment import add_applyment_routes
from fulema.sandbox.wechat.config import WechatSandboxConfig
from fulema.sandbox.wechat.oauth import add_oauth_routes
from fulema.sandbox.wechat.protocol import rfc3339
from fulema.sandbox.wechat.routes import api_routes
from fulema.sandbox.wechat.state import (
    V3_REFUSALS,
    Order,
    WechatPayer,
    WechatSandbox,
    new_openid,
)
from fulema.sandbox.wechat.v2 import add_v2_routes

__all__ = ["WechatSandbox", "WechatSandboxConfig", "build_sandbox"]


def build_sandbox(config: WechatSandboxConfig, http: httpx.AsyncClient) -> FastAPI:
    """The sandbox app. Served at its own root (`fulema sandbox wechat`) its paths are
    WeChat's own; mounted under /sandbox/wechat it accepts signatures over either form."""
    sb = WechatSandbox(config, http)
    app = FastAPI(title="WeChat Pay v3 sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sb
    api_routes(app, sb)
    _wallet_routes(app, sb)
    add_v2_routes(app, sb)
    add_oauth_routes(app, sb)
    app.state.applyments = add_applyment_routes(app, sb)  # service-provider onboarding
    return app


def _find(sb: WechatSandbox, body: dict[str, Any]) -> Order | None:
    """The order a payer is looking at: by code_url, prepay_id, h5_url or out_trade_no."""
    for o in sb.orders.values():
        if o.trade_type == "MICROPAY":
            continue
        if (body.get("code_url") and body["code_url"] == o.code_url) \
                or (body.get("prepay_id") and body["prepay_id"] == o.prepay_id) \
                or (body.get("h5_url") and body["h5_url"] == o.h5_url) \
                or (body.get("out_trade_no") and body["out_trade_no"] == o.out_trade_no):
            return o
    return None


def _pay(sb: WechatSandbox, o: Order, payer: WechatPayer) -> Response:
    sb.refresh(o)
    if o.state != "NOTPAY":
        return refuse(400, "ORDERPAID" if o.state in ("SUCCESS", "REFUND") else "ORDER_CLOSED",
                       f"订单状态为{o.state}")
    if clock.now() > o.expire_at:
        return refuse(400, "ORDER_CLOSED", "订单已过支付结束时间")
    if o.trade_type == "JSAPI" and o.openid and o.openid != payer.openid:
        return refuse(403, "BUYER_MISMATCH", "支付者与下单时的openid不一致")
    refused = sb.settle(o, payer)  # a refusal fails this attempt; the order stays NOTPAY
    if refused is Refusal.BALANCE:
        return refuse(403, "NOTENOUGH", "用户余额不足")
    if refused is not None:
        return refuse(403, *V3_REFUSALS[refused])
    return answer(sb.order_view(o))


def _wallet_routes(app: FastAPI, sb: WechatSandbox) -> None:
    @app.post("/wallet/payers")
    async def add_payer(request: Request) -> Response:
        body = await read_json(request)
        fields = new_payer(body, sb.wallet.payers, new_openid, param_code="PARAM_ERROR")
        if isinstance(fields, Response):
            return fields
        pid, balance = fields
        rules = parse_rules(body)
        if isinstance(rules, str):
            return refuse(400, "PARAM_ERROR", rules)
        payer = sb.wallet.add(WechatPayer(
            pid, balance, password_required=bool(body.get("password_required")),
            risk_refused=rules[0], limit_fen=rules[1]))
        return answer(payer.view())

    @app.get("/wallet/payers/{pid}")
    async def get_payer(pid: str) -> Response:
        payer = sb.wallet.get(pid)
        return answer(payer.view()) if payer else refuse(404, "PAYER_NOT_FOUND", pid)

    @app.post("/wallet/payers/{pid}/code")
    async def code(pid: str) -> Response:
        return payer_code(pid, sb.wallet.get(pid), sb.issue_code, rfc3339)

    @app.post("/wallet/payers/{pid}/confirm")
    async def confirm(pid: str, request: Request) -> Response:
        """The payer enters the password for a USERPAYING payer-code payment (or declines)."""
        body = await read_json(request)
        for o in sb.orders.values():
            sb.refresh(o)
        waiting = [o for o in sb.orders.values() if o.openid == pid and o.state == "USERPAYING"
                   and (not body.get("out_trade_no") or o.out_trade_no == body["out_trade_no"])]
        if not waiting:
            return refuse(404, "NOTHING_TO_CONFIRM", "no payment awaits this payer's password")
        o, payer = waiting[-1], sb.wallet.payers[pid]
        if body.get("approve", True) is False:
            o.state, o.state_desc = "PAYERROR", "用户取消支付"
        elif sb.settle(o, payer) is not None:
            o.state, o.state_desc = "PAYERROR", "用户余额不足"
        return answer(sb.order_view(o))

    @app.post("/wallet/scan")
    async def scan(request: Request) -> Response:
        """The payer scanned the QR / confirmed in WeChat: {code_url | prepay_id | h5_url |
        out_trade_no, payer_id}."""
        body = await read_json(request)
        o = _find(sb, body)
        payer = sb.wallet.get(str(body.get("payer_id") or (o.openid if o else "") or ""))
        if o is None:
            return refuse(404, "ORDER_NOT_EXIST", "no such QR / prepay order")
        if payer is None:
            return refuse(404, "PAYER_NOT_FOUND", "no such payer")
        return _pay(sb, o, payer)

    @app.post("/wallet/faults")
    async def faults(request: Request) -> Response:
        return set_faults(sb.faults, await read_json(request), "PARAM_ERROR")

    @app.get("/wallet/orders/{no}")
    async def order(no: str) -> Response:
        o = sb.orders.get(no)
        if o is None:
            return refuse(404, "ORDER_NOT_EXIST", no)
        refunds = [sb.refund_view(r) for r in sb.refunds.values() if r.order is o]
        return answer({**sb.order_view(o), "code_url": o.code_url or None,
                       "prepay_id": o.prepay_id or None, "refunds": refunds})

    @app.get("/wallet/lookup")
    async def lookup(ref: str = "") -> Response:
        """What the payer's app shows on its confirm sheet (sandbox/appshell): the order a
        payment reference names, in one shape for every sandbox."""
        o = next((x for x in sb.orders.values() if ref and ref in (x.prepay_id, x.code_url)),
                 None)
        if o is None:
            return refuse(404, "ORDER_NOT_EXIST", "no such prepay order")
        sb.refresh(o)
        return answer({"amount_fen": o.total, "subject": o.description,
                       "payable": o.state == "NOTPAY"})

    @app.get("/h5pay")
    async def h5_page(prepay_id: str = "") -> HTMLResponse:
        o = next((x for x in sb.orders.values() if x.prepay_id == prepay_id), None)
        if o is None:
            return HTMLResponse("<h1>订单不存在</h1>", 404)
        return HTMLResponse(_PAGE.format(subject=html.escape(o.description),
                                         amount=f"{o.total // 100}.{o.total % 100:02d}",
                                         prepay_id=html.escape(prepay_id)))


_PAGE = """<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>微信支付 (sandbox)</title><h2>{subject}</h2><p>¥{amount}</p>
<button onclick="fetch('wallet/scan',{{method:'POST',headers:{{'Content-Type':'application/json'}},
body:JSON.stringify({{prepay_id:'{prepay_id}',payer_id:'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o'}})}})
.then(r=>r.json()).then(j=>document.getElementById('r').textContent=j.trade_state||j.message)">
确认支付</button><p id="r"></p>"""
