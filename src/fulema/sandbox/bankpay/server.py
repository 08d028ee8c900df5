"""The bank's mobile-banking interface as a sandbox: the protocol in docs/channels/bankpay.md.

A separate system in memory (never Fulema's database). It checks request signatures, the
timestamp window and nonces exactly as the bank does, signs every answer and callback, keeps
orders, refunds and payer accounts, and offers `/wallet/...` endpoints that play the payer
(scan a QR, present a payer code, confirm in the app) plus fault injection for tests.

This module is the channel API (the merchant-facing, signed endpoints) and the app factory;
the bank's state is in state.py, its statement in statement.py, the payer side in wallet.py,
and the message security in protocol.py (written from the document, independent of the
adapter's). Served under /sandbox/bankpay or at its own root (`fulema sandbox bankpay`); the
signature covers no path, so both work alike. The names other modules import from here are re-exported.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

from fulema.core.clock import clock
from fulema.sandbox.bankpay.config import BankpaySandboxConfig
from fulema.sandbox.bankpay.protocol import CST as BANK_TZ
from fulema.sandbox.bankpay.state import CALLBACK_DELAYS as CALLBACK_DELAYS
from fulema.sandbox.bankpay.state import CODE_TTL as CODE_TTL
from fulema.sandbox.bankpay.state import CONFIRM_TIMEOUT as CONFIRM_TIMEOUT
from fulema.sandbox.bankpay.state import REFUSALS as REFUSALS
from fulema.sandbox.bankpay.state import BankPayer as BankPayer
from fulema.sandbox.bankpay.state import BankpaySandbox as BankpaySandbox
from fulema.sandbox.bankpay.state import Order as Order
from fulema.sandbox.bankpay.state import Refund as Refund
from fulema.sandbox.bankpay.state import err, ok
from fulema.sandbox.bankpay.statement import STATEMENT_COLUMNS as STATEMENT_COLUMNS
from fulema.sandbox.bankpay.statement import statement_csv as statement_csv
from fulema.sandbox.bankpay.statement import statement_rows as statement_rows
from fulema.sandbox.bankpay.wallet import install_wallet
from fulema.sandbox.json_common import order_fields, positive_int
from fulema.sandbox.json_registration import add_registration_routes
from fulema.sandbox.wallet import CodeRefusal


def _create(sb: BankpaySandbox, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    way = body.get("way_code")
    if way not in ("QR_DYNAMIC", "QR_STATIC", "H5"):
        return err(400, "PARAM_INVALID", "way_code must be QR_DYNAMIC, QR_STATIC or H5")
    bad = order_fields(body) or sb.partner_refusal(body)
    if bad:
        return bad
    found = sb.orders.get(body["out_trade_no"])
    if found is not None:
        if found.amount_fen != body["amount_fen"] or found.way_code != way:
            return err(409, "ORDER_EXISTS", "out_trade_no was used with other parameters")
        return ok(sb.order_view(found))
    o = sb.new_order(body, way)
    link = f"{sb.public}/pay/{o.trade_no}"
    if way == "H5":
        o.h5_url = link + "?h5=1"
    else:
        o.code_url = link
    sb.orders[o.out_trade_no] = o
    return ok(sb.order_view(o))


def _barcode(sb: BankpaySandbox, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    bad = order_fields(body) or sb.partner_refusal(body)
    if bad:
        return bad
    code = body.get("auth_code")
    if not isinstance(code, str) or not code:
        return err(400, "PARAM_INVALID", "auth_code is required")
    if body["out_trade_no"] in sb.revoked:
        return err(409, "ORDER_REVOKED", "this out_trade_no was cancelled")
    found = sb.orders.get(body["out_trade_no"])
    if found is not None:
        if found.amount_fen != body["amount_fen"] or found.auth_code != code:
            return err(409, "ORDER_EXISTS", "out_trade_no was used with other parameters")
        return ok(sb.order_view(found))
    o = sb.new_order(body, "BARCODE")
    sb.orders[o.out_trade_no] = o
    payer = sb.wallet.redeem(code)
    if len(code) != 18 or not code.startswith("88") or not code.isdigit() \
            or payer is CodeRefusal.UNKNOWN:
        sb.fail(o, "AUTH_CODE_INVALID", "unknown or already used payer code")
    elif isinstance(payer, CodeRefusal):
        sb.fail(o, "AUTH_CODE_EXPIRED", "the payer code has expired; refresh it in the app")
    else:
        o.payer = payer
        # Refused before the payer is asked to confirm; the balance only once confirmed.
        # `payer_auth: PASSWORD`: the acquirer's risk control asks for the password step even
        # where the payer waived it for small amounts
        need_password = payer.password_required or body.get("payer_auth") == "PASSWORD"
        refused = payer.refusal(o.amount_fen, balance=not need_password)
        if refused is None and need_password:
            o.awaiting_confirm = True  # PAYING until the payer confirms in the app
        elif (refused := refused or sb.settle(o, payer)) is not None:
            sb.fail(o, *REFUSALS[refused])
    return ok(sb.order_view(o))


def _close(sb: BankpaySandbox, no: str, *, cancel: bool, sub: object = None
           ) -> tuple[int, dict[str, Any]]:
    o = sb.mine(sb.orders.get(no), sub)
    if o is None:
        if cancel:  # cancel before arrival: refuse a late payment with this number
            sb.revoked.add(no)
            return ok({"merchant_no": sb.bank.merchant_no, "out_trade_no": no,
                        "trade_state": "REVOKED", "same_day_settlement": True})
        return err(404, "ORDER_NOT_FOUND", "no such order")
    sb.refresh(o)
    if o.state == "REFUND":
        return err(409, "ORDER_REFUNDED", "a refunded order cannot be closed or cancelled")
    if o.state == "SUCCESS":
        if not cancel:
            return err(409, "ORDER_PAID", "the order is paid; refund it instead")
        assert o.payer is not None
        # reversal: the whole amount goes back at once
        o.payer.reverse(o.amount_fen, o.success_at or clock.now())
        r = Refund(f"REVOKE-{o.out_trade_no}", f"BR{secrets.token_hex(8).upper()}", o,
                   o.amount_fen, "cancel", "REVOKE", clock.now())
        sb.refunds[r.out_refund_no] = r
        o.refunded_fen = o.amount_fen
    if o.state in ("PAYING", "SUCCESS") or (cancel and o.state in ("FAILED", "CLOSED")):
        o.state, o.awaiting_confirm = ("REVOKED" if cancel else "CLOSED"), False
    return ok(sb.order_view(o))


def _refund(sb: BankpaySandbox, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    no, rno = body.get("out_trade_no"), body.get("out_refund_no")
    amount, total = positive_int(body, "refund_fen"), positive_int(body, "total_fen")
    if not isinstance(no, str) or not isinstance(rno, str) or not 6 <= len(rno) <= 64:
        return err(400, "PARAM_INVALID", "out_trade_no and out_refund_no (6-64) are required")
    if amount is None or total is None:
        return err(400, "PARAM_INVALID", "refund_fen and total_fen must be positive integers")
    o = sb.mine(sb.orders.get(no), body.get("sub_merchant_id"))
    if o is None:
        return err(404, "ORDER_NOT_FOUND", "no such order")
    found = sb.refunds.get(rno)
    if found is not None:
        if found.order is not o or found.refund_fen != amount:
            return err(409, "REFUND_EXISTS", "out_refund_no was used with other parameters")
        return ok(sb.refund_view(found))
    sb.refresh(o)
    if o.state not in ("SUCCESS", "REFUND") or o.payer is None:
        return err(409, "ORDER_NOT_PAID", f"the order is {o.state}")
    if total != o.amount_fen:
        return err(400, "PARAM_INVALID", "total_fen does not match the order amount")
    if amount > o.amount_fen - o.refunded_fen:
        return err(409, "REFUND_AMOUNT_EXCEEDED", "more than is left to refund")
    # The bank credits its own customer's account at once: refunds succeed synchronously.
    r = Refund(rno, f"BR{secrets.token_hex(8).upper()}", o, amount,
               str(body.get("reason", ""))[:80], "REFUND", clock.now())
    sb.refunds[rno] = r
    o.payer.credit(amount)
    o.refunded_fen += amount
    o.state = "REFUND"
    view = sb.refund_view(r)
    sb.notify(body.get("notify_url") or o.notify_url, "REFUND.SUCCESS", view)
    return ok(view)


def build_sandbox(config: BankpaySandboxConfig, http: httpx.AsyncClient) -> FastAPI:
    sb = BankpaySandbox(config, http)
    app = FastAPI(title="bankpay sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sb
    _api_routes(app, sb)
    install_wallet(app, sb)
    # merchants registered once the bank verified their settlement account (our assumption)
    app.state.registrations = add_registration_routes(app, sb.api, "/api/merchants",
                                                      sb.registrations)
    return app


def _api_routes(app: FastAPI, sb: BankpaySandbox) -> None:
    @app.post("/api/orders")
    async def create(request: Request) -> Response:
        return await sb.api(request, lambda b: _create(sb, b))

    @app.post("/api/orders/barcode")
    async def barcode(request: Request) -> Response:
        return await sb.api(request, lambda b: _barcode(sb, b))

    @app.get("/api/orders/{no}")
    async def query(no: str, request: Request) -> Response:
        def handle(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            o = sb.mine(sb.orders.get(no), request.query_params.get("sub_merchant_id"))
            return ok(sb.order_view(o)) if o else err(404, "ORDER_NOT_FOUND", "no such order")
        return await sb.api(request, handle)

    @app.post("/api/orders/{no}/close")
    async def close(no: str, request: Request) -> Response:
        return await sb.api(request, lambda b: _close(sb, no, cancel=False,
                                                      sub=b.get("sub_merchant_id")))

    @app.post("/api/orders/{no}/cancel")
    async def cancel(no: str, request: Request) -> Response:
        return await sb.api(request, lambda b: _close(sb, no, cancel=True,
                                                      sub=b.get("sub_merchant_id")))

    @app.post("/api/refunds")
    async def refund(request: Request) -> Response:
        return await sb.api(request, lambda b: _refund(sb, b))

    @app.get("/api/refunds/{rno}")
    async def refund_query(rno: str, request: Request) -> Response:
        def handle(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            r = sb.refunds.get(rno)
            if r is not None and not sb.mine(r.order, request.query_params.get("sub_merchant_id")):
                r = None  # another merchant's (or the other form's) refund
            return ok(sb.refund_view(r)) if r else err(404, "REFUND_NOT_FOUND", "no such refund")
        return await sb.api(request, handle)

    @app.get("/api/statements/{day}")
    async def statement(day: str, request: Request) -> Response:
        try:
            when = datetime.strptime(day, "%Y%m%d").replace(tzinfo=BANK_TZ).date()
        except ValueError:
            when = None
        csv_body: list[bytes] = []

        def handle(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if when is None:
                return err(400, "PARAM_INVALID", "the day is yyyymmdd")
            csv_body.append(statement_csv(statement_rows(sb, when)))
            return 200, {}
        resp = await sb.api(request, handle)
        if csv_body and resp.status_code == 200:
            return sb.signed(200, csv_body[0], "text/csv; charset=utf-8")
        return resp


Handler = Callable[[dict[str, Any]], Awaitable[Response]]
