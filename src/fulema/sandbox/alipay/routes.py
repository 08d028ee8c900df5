"""HTTP routes of the Alipay sandbox: the gateway, the bill download and the payers' wallet.

Wallet endpoints (JSON, for tests and the demo; not part of Alipay's API):
  POST /wallet/payers                     {payer_id?, balance_fen, password_required?,
                                           risk_refused?, limit_fen?} (sandbox/wallet.py)
  GET  /wallet/payers/{payer_id}
  POST /wallet/payers/{payer_id}/code     -> {"auth_code": 18 digits starting 28, "payer_id"}
  POST /wallet/payers/{payer_id}/confirm  the password payer confirms waiting payments
  POST /wallet/scan                       {code_url | trade_no | out_trade_no | order_id,
                                           payer_id}: scan a QR, confirm my.tradePay, or pay
                                           on the H5 page (code_url = the h5_url)
  POST /wallet/faults                     {mode: none|5xx|slow|garbled|badsign, delay_ms,
                                           statement_diff}
  GET  /wallet/orders/{out_trade_no}
Refusals answer Alipay's own shape: {"code": "40004", "msg", "sub_code", "sub_msg"}.
"""

from __future__ import annotations

import asyncio
import html
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, StrictBool, StrictInt

from fulema.sandbox.alipay.books import WAIT, GatewayError, Refusal
from fulema.sandbox.alipay.protocol import BUSINESS_FAILED, MESSAGES, SUCCESS

if TYPE_CHECKING:
    from fulema.sandbox.alipay.server import AlipaySandbox


class Faults(BaseModel):
    # badsign: a well-formed answer whose signature does not verify (a sandbox extra)
    mode: str = Field(default="none", pattern="^(none|5xx|slow|garbled|badsign)$")
    delay_ms: int = Field(default=0, ge=0, le=60_000)
    statement_diff: dict[str, object] = Field(default_factory=dict)


class NewPayer(BaseModel):
    payer_id: str | None = Field(default=None, pattern=r"^2088\d{12}$")
    balance_fen: int = Field(ge=0)
    password_required: bool = False
    risk_refused: StrictBool = False
    limit_fen: StrictInt | None = Field(default=None, ge=0)


class Scan(BaseModel):
    code_url: str | None = None
    trade_no: str | None = None
    out_trade_no: str | None = None
    order_id: str | None = None
    payer_id: str


def refused(exc: Refusal) -> JSONResponse:
    status = 404 if exc.sub_code in ("ACQ.TRADE_NOT_EXIST", "ACQ.BUYER_NOT_EXIST") else 409
    return JSONResponse({"code": BUSINESS_FAILED, "msg": MESSAGES[BUSINESS_FAILED],
                         "sub_code": exc.sub_code, "sub_msg": exc.sub_msg}, status_code=status)


def _form(raw: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}


def _wap_page(node: dict[str, Any]) -> str:
    esc = {k: html.escape(str(v)) for k, v in node.items()}
    if node.get("code") != SUCCESS:
        return (f"<!doctype html><title>支付宝</title><h1>错误</h1>"
                f"<p>{esc.get('sub_code', '')}: {esc.get('sub_msg', '')}</p>")
    return (f"<!doctype html><meta charset=utf-8><title>支付宝 - 确认付款</title>"
            f"<h1>{esc['subject']}</h1><p>¥{esc['total_amount']}</p>"
            f"<p>商户订单号 {esc['out_trade_no']} · 交易号 {esc['trade_no']}</p>"
            f"<p>Sandbox: pay with POST wallet/scan {{\"out_trade_no\", \"payer_id\"}}.</p>")


def install_routes(app: FastAPI, sb: AlipaySandbox) -> None:
    async def fault() -> Response | None:
        if sb.faults.mode == "5xx":
            return Response("Internal Server Error", status_code=502)
        if sb.faults.mode == "slow":
            await asyncio.sleep(sb.faults.delay_ms / 1000)
        return None

    def wap(params: dict[str, str]) -> dict[str, Any]:
        try:
            biz = sb.check(params)
            return {"code": SUCCESS, **sb.wap_pay(params, biz)}
        except GatewayError as exc:
            return {"code": exc.code, "sub_code": exc.sub_code, "sub_msg": exc.sub_msg}
        except Refusal as exc:
            return {"code": BUSINESS_FAILED, "sub_code": exc.sub_code, "sub_msg": exc.sub_msg}

    @app.api_route("/gateway.do", methods=["GET", "POST"])
    async def gateway(request: Request) -> Response:
        failed = await fault()
        if failed is not None:
            return failed
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(_form(await request.body()))
        if params.get("method") == "alipay.trade.wap.pay":  # the payer's browser: a page
            node = wap(params)
            if "application/json" in request.headers.get("accept", ""):
                return JSONResponse(node)
            return HTMLResponse(_wap_page(node))
        body = sb.answer(params)
        if sb.faults.mode == "garbled":
            body = body[: len(body) // 2]
        elif sb.faults.mode == "badsign":
            body = body.replace('"msg":"', '"msg":" ', 1)
        return Response(body, media_type="application/json;charset=utf-8")

    @app.get("/downloadBillFile.resource")
    async def download(bizDates: str = "", timestamp: str = "",  # Alipay's names
                       token: str = "") -> Response:
        failed = await fault()
        if failed is not None:
            return failed
        found = sb.bill(bizDates, timestamp, token)
        if found is None:
            return HTMLResponse("<h1>链接已失效</h1>", status_code=403)
        name, data = found
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post("/wallet/payers")
    async def new_payer(body: NewPayer) -> dict[str, object]:
        known = sb.books.wallet.get(body.payer_id or "")
        if known is not None:
            return known.as_json()
        return sb.books.add_payer(body.payer_id, body.balance_fen, body.password_required,
                                  body.risk_refused, body.limit_fen).as_json()

    @app.get("/wallet/payers/{payer_id}", response_model=None)
    async def get_payer(payer_id: str) -> dict[str, object] | JSONResponse:
        payer = sb.books.wallet.get(payer_id)
        return payer.as_json() if payer else refused(Refusal("ACQ.BUYER_NOT_EXIST"))

    @app.post("/wallet/payers/{payer_id}/code", response_model=None)
    async def payer_code(payer_id: str) -> dict[str, object] | JSONResponse:
        payer = sb.books.wallet.get(payer_id)
        if payer is None:
            return refused(Refusal("ACQ.BUYER_NOT_EXIST"))
        return {"auth_code": sb.books.issue_code(payer), "payer_id": payer_id}

    @app.post("/wallet/payers/{payer_id}/confirm", response_model=None)
    async def confirm(payer_id: str) -> dict[str, object] | JSONResponse:
        if payer_id not in sb.books.wallet.payers:
            return refused(Refusal("ACQ.BUYER_NOT_EXIST"))
        done = sb.books.confirm(payer_id)
        if not done:
            return refused(Refusal("ACQ.TRADE_NOT_EXIST", "没有等待该付款人确认的交易"))
        for trade in done:
            sb.notifier.notify(trade)
        return {"confirmed": [t.as_json() for t in done]}

    @app.post("/wallet/scan", response_model=None)
    async def scan(body: Scan) -> dict[str, object] | JSONResponse:
        ref = body.code_url or body.trade_no or body.out_trade_no or body.order_id or ""
        if body.code_url and "/gateway.do?" in body.code_url:  # the H5 page's link
            node = wap(dict(parse_qsl(urlsplit(body.code_url).query, keep_blank_values=True)))
            if node["code"] != SUCCESS:
                return JSONResponse({**node, "msg": MESSAGES[node["code"]]}, status_code=400)
            ref = str(node["out_trade_no"])
        trade = sb.books.find_ref(ref)
        if trade is None:
            return refused(Refusal("ACQ.TRADE_NOT_EXIST"))
        try:
            sb.books.scan(trade, body.payer_id)
        except Refusal as exc:
            return refused(exc)
        sb.notifier.notify(trade)
        return {"code": SUCCESS, "msg": MESSAGES[SUCCESS], **trade.as_json()}

    @app.get("/wallet/lookup", response_model=None)
    async def lookup(ref: str = "") -> dict[str, object] | JSONResponse:
        """What the payer's app shows on its confirm sheet (sandbox/appshell): the order a
        payment reference names, in one shape for every sandbox."""
        trade = sb.books.find_ref(ref) if ref else None
        if trade is None:
            return refused(Refusal("ACQ.TRADE_NOT_EXIST"))
        sb.books.expire(trade)
        return {"amount_fen": trade.total_fen, "subject": trade.subject,
                "payable": trade.status == WAIT}

    @app.post("/wallet/faults")
    async def faults(body: Faults) -> dict[str, object]:
        sb.faults = body
        return body.model_dump()

    @app.get("/wallet/orders/{out_trade_no}", response_model=None)
    async def order(out_trade_no: str) -> dict[str, object] | JSONResponse:
        trade = sb.books.trades.get(out_trade_no) or sb.books.find_ref(out_trade_no)
        if trade is None:
            return refused(Refusal("ACQ.TRADE_NOT_EXIST"))
        sb.books.expire(trade)
        return trade.as_json()
