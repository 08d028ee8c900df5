"""The bank's mobile-banking interface as a sandbox: the protocol in docs/channels/bankpay.md.

A separate system in memory (never Fulema's database). It checks request signatures, the
timestamp window and nonces exactly as the bank does, signs every answer and callback, keeps
orders, refunds and payer accounts, and offers `/wallet/...` endpoints that play the payer
(scan a QR, present a payer code, confirm in the app) plus fault injection for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import html
import io
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from fulema.channels.bankpay import (
    BANK_TZ,
    HEADER_MERCHANT,
    BankpaySettings,
    ReplayGuard,
    iso,
    signed_headers,
)
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.sandbox.json_common import (
    Faults,
    answer,
    new_payer,
    order_fields,
    payer_code,
    positive_int,
    read_json,
    refuse,
    set_faults,
    with_body,
)
from fulema.sandbox.payer_controls import PayerControls, Refused, parse_controls

CODE_TTL = timedelta(seconds=60)  # a payer code is valid for one minute, once
CONFIRM_TIMEOUT = timedelta(seconds=60)  # a payer who never confirms: the payment fails
CALLBACK_DELAYS = (0.0, 0.2, 1.0, 3.0, 5.0)
STATEMENT_COLUMNS = ["trade_date", "trade_time", "merchant_no", "record_type", "out_trade_no",
                     "trade_no", "out_refund_no", "refund_no", "way_code", "amount_fen",
                     "fee_fen", "settle_fen", "settle_date", "same_day_settlement",
                     "payer_account", "state"]


@dataclass
class Payer:
    payer_id: str
    balance_fen: int
    password_required: bool
    account_no: str
    customer_id: str
    controls: PayerControls = field(default_factory=PayerControls)

    def masked(self) -> dict[str, str]:
        return {"account_masked": f"{self.account_no[:6]}******{self.account_no[-4:]}",
                "customer_id_masked": f"{self.customer_id[:2]}****{self.customer_id[-4:]}"}

    def view(self) -> dict[str, Any]:
        return {"payer_id": self.payer_id, "balance_fen": self.balance_fen,
                "password_required": self.password_required, **self.masked(),
                **self.controls.view()}


@dataclass
class Order:
    out_trade_no: str
    trade_no: str
    amount_fen: int
    subject: str
    way_code: str
    notify_url: str | None
    created_at: datetime
    expire_at: datetime
    auth_code: str | None = None
    state: str = "PAYING"
    payer: Payer | None = None
    awaiting_confirm: bool = False
    success_at: datetime | None = None
    refunded_fen: int = 0
    error_code: str | None = None
    error_message: str | None = None
    code_url: str | None = None
    h5_url: str | None = None


@dataclass
class Refund:
    out_refund_no: str
    refund_no: str
    order: Order
    refund_fen: int
    reason: str
    record_type: str  # REFUND, or REVOKE for a cancelled paid payer-code payment
    success_at: datetime
    state: str = "SUCCESS"


def _err(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"code": code, "message": message}


def _ok(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"code": "SUCCESS", "message": "OK", "data": data}


class BankpaySandbox:
    def __init__(self, settings: Settings, http: httpx.AsyncClient, bank: BankpaySettings) -> None:
        self.settings, self.http, self.bank = settings, http, bank
        self.public = settings.sandbox_url("bankpay")
        self.payers: dict[str, Payer] = {}
        self.codes: dict[str, tuple[str, datetime]] = {}
        self.orders: dict[str, Order] = {}
        self.refunds: dict[str, Refund] = {}
        self.revoked: set[str] = set()  # cancelled before the order ever arrived
        self.faults = Faults()
        self.guard = ReplayGuard()
        self.tasks: set[asyncio.Task[None]] = set()
        self.add_payer("payer_rich", 100_000_000, password_required=False)
        self.add_payer("payer_poor", 100, password_required=False)
        self.add_payer("payer_pin", 1_000_000, password_required=True)

    # payers ------------------------------------------------------------------
    def add_payer(self, payer_id: str, balance_fen: int, *, password_required: bool,
                  controls: PayerControls | None = None) -> Payer:
        n = len(self.payers) + 1
        payer = Payer(payer_id, balance_fen, password_required,
                      account_no=f"62305800{n:07d}{secrets.randbelow(10_000):04d}",
                      customer_id=f"C{secrets.randbelow(10**6):06d}{n:04d}",
                      controls=controls or PayerControls())
        self.payers[payer_id] = payer
        return payer

    def issue_code(self, payer: Payer) -> tuple[str, datetime]:
        code = "88" + "".join(secrets.choice("0123456789") for _ in range(16))
        expires = clock.now() + CODE_TTL
        self.codes[code] = (payer.payer_id, expires)
        return code, expires

    # orders ------------------------------------------------------------------
    def order_view(self, o: Order) -> dict[str, Any]:
        self.refresh(o)
        return {
            "merchant_no": self.bank.merchant_no, "out_trade_no": o.out_trade_no,
            "trade_no": o.trade_no, "trade_state": o.state, "way_code": o.way_code,
            "amount_fen": o.amount_fen, "currency": "CNY", "refunded_fen": o.refunded_fen,
            "fee_fen": 0, "same_day_settlement": True,
            "settle_date": o.success_at.astimezone(BANK_TZ).date().isoformat()
            if o.success_at else None,
            "payer": o.payer.masked() if o.payer and o.state != "PAYING" else None,
            "subject": o.subject, "create_time": iso(o.created_at),
            "expire_time": iso(o.expire_at),
            "success_time": iso(o.success_at) if o.success_at else None,
            "error_code": o.error_code, "error_message": o.error_message,
            "code_url": o.code_url, "h5_url": o.h5_url,
        }

    def refund_view(self, r: Refund) -> dict[str, Any]:
        return {"merchant_no": self.bank.merchant_no, "out_trade_no": r.order.out_trade_no,
                "trade_no": r.order.trade_no, "out_refund_no": r.out_refund_no,
                "refund_no": r.refund_no, "refund_fen": r.refund_fen, "refund_state": r.state,
                "record_type": r.record_type, "reason": r.reason, "fee_fen": 0,
                "same_day_settlement": True, "success_time": iso(r.success_at),
                "settle_date": r.success_at.astimezone(BANK_TZ).date().isoformat(),
                "error_code": None, "error_message": None}

    def refresh(self, o: Order) -> None:
        """Time-driven transitions, applied whenever the order is looked at."""
        now = clock.now()
        if o.state != "PAYING":
            return
        if o.awaiting_confirm and now - o.created_at > CONFIRM_TIMEOUT:
            self.fail(o, "PAYER_CONFIRM_TIMEOUT", "the payer did not confirm in time")
        elif not o.awaiting_confirm and now > o.expire_at:
            o.state, o.error_code, o.error_message = "CLOSED", "ORDER_EXPIRED", "expired unpaid"

    def fail(self, o: Order, code: str, message: str) -> None:
        o.state, o.error_code, o.error_message, o.awaiting_confirm = "FAILED", code, message, False
        self.notify(o.notify_url, "TRADE.FAILED", self.order_view(o))

    def settle(self, o: Order, payer: Payer) -> bool:
        """Debit the payer; False (order untouched) when the balance is short."""
        if payer.balance_fen < o.amount_fen:
            return False
        payer.balance_fen -= o.amount_fen
        o.state, o.payer, o.success_at, o.awaiting_confirm = "SUCCESS", payer, clock.now(), False
        o.error_code = o.error_message = None
        self.notify(o.notify_url, "TRADE.SUCCESS", self.order_view(o))
        return True

    def new_order(self, body: dict[str, Any], way_code: str) -> Order:
        now = clock.now()
        trade_no = f"BP{now.astimezone(BANK_TZ):%Y%m%d%H%M%S}{secrets.randbelow(10**8):08d}"
        expire = now + timedelta(minutes=15)
        if isinstance(body.get("expire_time"), str):
            with contextlib.suppress(ValueError):
                parsed = datetime.fromisoformat(body["expire_time"])
                expire = parsed if parsed.tzinfo is not None else expire
        return Order(out_trade_no=body["out_trade_no"], trade_no=trade_no,
                     amount_fen=body["amount_fen"], subject=str(body.get("subject", ""))[:128],
                     way_code=way_code, notify_url=body.get("notify_url") or None,
                     created_at=now, expire_at=expire, auth_code=body.get("auth_code"))

    # callbacks ---------------------------------------------------------------
    def notify(self, url: str | None, event_type: str, data: dict[str, Any]) -> None:
        if not url:
            return
        doc = {"event_id": f"EVT{secrets.token_hex(10)}", "event_type": event_type,
               "create_time": iso(clock.now()), "data": data}
        task = asyncio.get_running_loop().create_task(self._deliver(url, orjson.dumps(doc)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, body: bytes) -> None:
        for delay in CALLBACK_DELAYS:
            await asyncio.sleep(delay)
            try:
                # signed afresh per attempt: a retry is a new message with a new nonce
                resp = await self.http.post(url, content=body, timeout=5.0, headers={
                    **signed_headers(self.bank.secret, body), "Content-Type": "application/json"})
                if resp.status_code == 200 and orjson.loads(resp.content).get("code") == "SUCCESS":
                    return
            except (httpx.HTTPError, orjson.JSONDecodeError, AttributeError):
                pass

    # HTTP answers ------------------------------------------------------------
    def signed(self, status: int, content: bytes, media_type: str) -> Response:
        headers = signed_headers(self.bank.secret, content)
        if self.faults.mode == "garbled":
            content = content[: len(content) // 2] + b"\x00garbled"
        return Response(content=content, status_code=status, media_type=media_type,
                        headers=headers)

    async def api(self, request: Request,
                  handler: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]) -> Response:
        """Faults, then signature, merchant and JSON checks, then the handler; signed answer."""
        if self.faults.mode == "slow":
            await asyncio.sleep(self.faults.delay_ms / 1000)
        if self.faults.mode == "5xx":
            return Response(b'{"code":"SYSTEM_ERROR","message":"try later"}', 503,
                            media_type="application/json")
        raw = await request.body()
        problem = self.guard.check(dict(request.headers), raw, self.bank.secret)
        status, doc = 200, dict[str, Any]()
        if problem is not None:
            status, doc = _err(401, problem, f"request refused: {problem}")
        elif request.headers.get(HEADER_MERCHANT) != self.bank.merchant_no:
            status, doc = _err(403, "MERCHANT_INVALID", "unknown merchant_no")
        else:
            status, doc = with_body(raw, "merchant_no", self.bank.merchant_no, handler)
        return self.signed(status, orjson.dumps(doc), "application/json")


# ------------------------------------------------------------------ channel API handlers

def _create(sb: BankpaySandbox, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    way = body.get("way_code")
    if way not in ("QR_DYNAMIC", "QR_STATIC", "H5"):
        return _err(400, "PARAM_INVALID", "way_code must be QR_DYNAMIC, QR_STATIC or H5")
    bad = order_fields(body)
    if bad:
        return bad
    found = sb.orders.get(body["out_trade_no"])
    if found is not None:
        if found.amount_fen != body["amount_fen"] or found.way_code != way:
            return _err(409, "ORDER_EXISTS", "out_trade_no was used with other parameters")
        return _ok(sb.order_view(found))
    o = sb.new_order(body, way)
    link = f"{sb.public}/pay/{o.trade_no}"
    if way == "H5":
        o.h5_url = link + "?h5=1"
    else:
        o.code_url = link
    sb.orders[o.out_trade_no] = o
    return _ok(sb.order_view(o))


# The bank's own codes for a payer its risk engine refuses or whose limit the payment exceeds.
REFUSALS: dict[Refused, tuple[str, str]] = {
    Refused.RISK: ("PAYER_RISK_REJECTED", "the bank's risk control refused this payment"),
    Refused.LIMIT: ("PAYER_LIMIT_EXCEEDED", "the amount is above the payer's payment limit"),
}


def _barcode(sb: BankpaySandbox, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    bad = order_fields(body)
    if bad:
        return bad
    code = body.get("auth_code")
    if not isinstance(code, str) or not code:
        return _err(400, "PARAM_INVALID", "auth_code is required")
    if body["out_trade_no"] in sb.revoked:
        return _err(409, "ORDER_REVOKED", "this out_trade_no was cancelled")
    found = sb.orders.get(body["out_trade_no"])
    if found is not None:
        if found.amount_fen != body["amount_fen"] or found.auth_code != code:
            return _err(409, "ORDER_EXISTS", "out_trade_no was used with other parameters")
        return _ok(sb.order_view(found))
    o = sb.new_order(body, "BARCODE")
    sb.orders[o.out_trade_no] = o
    entry = sb.codes.pop(code, None)
    if len(code) != 18 or not code.startswith("88") or not code.isdigit() or entry is None:
        sb.fail(o, "AUTH_CODE_INVALID", "unknown or already used payer code")
    elif entry[1] < clock.now():
        sb.fail(o, "AUTH_CODE_EXPIRED", "the payer code has expired; refresh it in the app")
    else:
        payer = sb.payers[entry[0]]
        o.payer = payer
        refused = payer.controls.refusal(o.amount_fen)
        if refused is not None:
            sb.fail(o, *REFUSALS[refused])
        elif payer.password_required:
            o.awaiting_confirm = True  # PAYING until the payer confirms in the app
        elif not sb.settle(o, payer):
            sb.fail(o, "BALANCE_NOT_ENOUGH", "the payer's account balance is not enough")
    return _ok(sb.order_view(o))


def _close(sb: BankpaySandbox, no: str, *, cancel: bool) -> tuple[int, dict[str, Any]]:
    o = sb.orders.get(no)
    if o is None:
        if cancel:  # cancel before arrival: refuse a late payment with this number
            sb.revoked.add(no)
            return _ok({"merchant_no": sb.bank.merchant_no, "out_trade_no": no,
                        "trade_state": "REVOKED", "same_day_settlement": True})
        return _err(404, "ORDER_NOT_FOUND", "no such order")
    sb.refresh(o)
    if o.state == "REFUND":
        return _err(409, "ORDER_REFUNDED", "a refunded order cannot be closed or cancelled")
    if o.state == "SUCCESS":
        if not cancel:
            return _err(409, "ORDER_PAID", "the order is paid; refund it instead")
        assert o.payer is not None
        o.payer.balance_fen += o.amount_fen  # reversal: the whole amount goes back at once
        r = Refund(f"REVOKE-{o.out_trade_no}", f"BR{secrets.token_hex(8).upper()}", o,
                   o.amount_fen, "cancel", "REVOKE", clock.now())
        sb.refunds[r.out_refund_no] = r
        o.refunded_fen = o.amount_fen
    if o.state in ("PAYING", "SUCCESS") or (cancel and o.state in ("FAILED", "CLOSED")):
        o.state, o.awaiting_confirm = ("REVOKED" if cancel else "CLOSED"), False
    return _ok(sb.order_view(o))


def _refund(sb: BankpaySandbox, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    no, rno = body.get("out_trade_no"), body.get("out_refund_no")
    amount, total = positive_int(body, "refund_fen"), positive_int(body, "total_fen")
    if not isinstance(no, str) or not isinstance(rno, str) or not 6 <= len(rno) <= 64:
        return _err(400, "PARAM_INVALID", "out_trade_no and out_refund_no (6-64) are required")
    if amount is None or total is None:
        return _err(400, "PARAM_INVALID", "refund_fen and total_fen must be positive integers")
    o = sb.orders.get(no)
    if o is None:
        return _err(404, "ORDER_NOT_FOUND", "no such order")
    found = sb.refunds.get(rno)
    if found is not None:
        if found.order is not o or found.refund_fen != amount:
            return _err(409, "REFUND_EXISTS", "out_refund_no was used with other parameters")
        return _ok(sb.refund_view(found))
    sb.refresh(o)
    if o.state not in ("SUCCESS", "REFUND") or o.payer is None:
        return _err(409, "ORDER_NOT_PAID", f"the order is {o.state}")
    if total != o.amount_fen:
        return _err(400, "PARAM_INVALID", "total_fen does not match the order amount")
    if amount > o.amount_fen - o.refunded_fen:
        return _err(409, "REFUND_AMOUNT_EXCEEDED", "more than is left to refund")
    # The bank credits its own customer's account at once: refunds succeed synchronously.
    r = Refund(rno, f"BR{secrets.token_hex(8).upper()}", o, amount,
               str(body.get("reason", ""))[:80], "REFUND", clock.now())
    sb.refunds[rno] = r
    o.payer.balance_fen += amount
    o.refunded_fen += amount
    o.state = "REFUND"
    view = sb.refund_view(r)
    sb.notify(body.get("notify_url") or o.notify_url, "REFUND.SUCCESS", view)
    return _ok(view)


def statement_rows(sb: BankpaySandbox, day: date) -> list[dict[str, Any]]:
    """The day's bookings (China Standard Time): payments and reversals, then the diff."""
    rows: list[dict[str, Any]] = []
    for o in sb.orders.values():
        if o.success_at and o.success_at.astimezone(BANK_TZ).date() == day and o.payer:
            rows.append(_row(sb, o, o.success_at, "PAY", "", "", o.amount_fen))
    for r in sb.refunds.values():
        if r.success_at.astimezone(BANK_TZ).date() == day:
            rows.append(_row(sb, r.order, r.success_at, r.record_type, r.out_refund_no,
                             r.refund_no, r.refund_fen))
    diff = sb.faults.statement_diff
    drop = set(diff.get("drop", []))
    amounts = diff.get("amount", {})
    kept = []
    for row in rows:
        key = row["out_refund_no"] or row["out_trade_no"]
        if key in drop:
            continue
        if key in amounts:
            row["amount_fen"] = int(amounts[key])
            row["settle_fen"] = row["amount_fen"] * (1 if row["record_type"] == "PAY" else -1)
        kept.append(row)
    for extra in diff.get("extra", []):
        fake = Order(str(extra["out_trade_no"]), f"BP{secrets.token_hex(6)}",
                     int(extra["amount_fen"]), "", "QR_DYNAMIC", None, clock.now(), clock.now())
        payer = next(iter(sb.payers.values()))
        fake.payer = payer
        at = datetime.combine(day, datetime.min.time(), BANK_TZ) + timedelta(hours=12)
        kept.append(_row(sb, fake, at, "PAY", "", "", fake.amount_fen))
    kept.sort(key=lambda r: (r["trade_date"], r["trade_time"], r["out_trade_no"]))
    return kept


def _row(sb: BankpaySandbox, o: Order, at: datetime, kind: str, rno: str, refund_no: str,
         amount: int) -> dict[str, Any]:
    local = at.astimezone(BANK_TZ)
    return {"trade_date": local.date().isoformat(), "trade_time": local.strftime("%H:%M:%S"),
            "merchant_no": sb.bank.merchant_no, "record_type": kind,
            "out_trade_no": o.out_trade_no, "trade_no": o.trade_no, "out_refund_no": rno,
            "refund_no": refund_no, "way_code": o.way_code, "amount_fen": amount, "fee_fen": 0,
            "settle_fen": amount if kind == "PAY" else -amount,
            "settle_date": local.date().isoformat(), "same_day_settlement": "true",
            "payer_account": o.payer.masked()["account_masked"] if o.payer else "",
            "state": "SUCCESS"}


def statement_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STATEMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


# ------------------------------------------------------------------ the app

def build_sandbox(settings: Settings, http: httpx.AsyncClient,
                  bank: BankpaySettings | None = None) -> FastAPI:
    sb = BankpaySandbox(settings, http, bank or BankpaySettings())
    app = FastAPI(title="bankpay sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sb
    _api_routes(app, sb)
    _wallet_routes(app, sb)
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
            o = sb.orders.get(no)
            return _ok(sb.order_view(o)) if o else _err(404, "ORDER_NOT_FOUND", "no such order")
        return await sb.api(request, handle)

    @app.post("/api/orders/{no}/close")
    async def close(no: str, request: Request) -> Response:
        return await sb.api(request, lambda _: _close(sb, no, cancel=False))

    @app.post("/api/orders/{no}/cancel")
    async def cancel(no: str, request: Request) -> Response:
        return await sb.api(request, lambda _: _close(sb, no, cancel=True))

    @app.post("/api/refunds")
    async def refund(request: Request) -> Response:
        return await sb.api(request, lambda b: _refund(sb, b))

    @app.get("/api/refunds/{rno}")
    async def refund_query(rno: str, request: Request) -> Response:
        def handle(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            r = sb.refunds.get(rno)
            return _ok(sb.refund_view(r)) if r else _err(404, "REFUND_NOT_FOUND", "no such refund")
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
                return _err(400, "PARAM_INVALID", "the day is yyyymmdd")
            csv_body.append(statement_csv(statement_rows(sb, when)))
            return 200, {}
        resp = await sb.api(request, handle)
        if csv_body and resp.status_code == 200:
            return sb.signed(200, csv_body[0], "text/csv; charset=utf-8")
        return resp


Handler = Callable[[dict[str, Any]], Awaitable[Response]]


def _wallet_routes(app: FastAPI, sb: BankpaySandbox) -> None:
    @app.post("/wallet/payers")
    async def add_payer(request: Request) -> Response:
        body = await read_json(request)
        fields = new_payer(body, sb.payers, lambda: f"payer_{secrets.token_hex(4)}")
        if isinstance(fields, Response):
            return fields
        pid, balance = fields
        controls = parse_controls(body)
        if isinstance(controls, str):
            return refuse(400, "PARAM_INVALID", controls)
        payer = sb.add_payer(pid, balance, password_required=bool(body.get("password_required")),
                             controls=controls)
        return answer(payer.view())

    @app.get("/wallet/payers/{pid}")
    async def get_payer(pid: str) -> Response:
        payer = sb.payers.get(pid)
        return answer(payer.view()) if payer else refuse(404, "PAYER_NOT_FOUND", pid)

    @app.post("/wallet/payers/{pid}/code")
    async def code(pid: str) -> Response:
        return payer_code(pid, sb.payers.get(pid), sb.issue_code, iso)

    @app.post("/wallet/payers/{pid}/confirm")
    async def confirm(pid: str, request: Request) -> Response:
        body = await read_json(request)
        for o in sb.orders.values():
            sb.refresh(o)
        waiting = [o for o in sb.orders.values() if o.payer and o.payer.payer_id == pid
                   and o.awaiting_confirm and o.state == "PAYING"]
        if body.get("out_trade_no"):
            waiting = [o for o in waiting if o.out_trade_no == body["out_trade_no"]]
        if not waiting:
            return refuse(404, "NOTHING_TO_CONFIRM", "no payment awaits this payer")
        o = waiting[-1]
        payer = sb.payers[pid]
        if body.get("approve", True) is False:
            sb.fail(o, "PAYER_DECLINED", "the payer declined in the app")
        elif not sb.settle(o, payer):
            sb.fail(o, "BALANCE_NOT_ENOUGH", "the payer's account balance is not enough")
        return answer(sb.order_view(o))

    @app.post("/wallet/scan")
    async def scan(request: Request) -> Response:
        body = await read_json(request)
        ref = str(body.get("code_url") or body.get("h5_url") or "").split("?")[0].rsplit("/", 1)
        trade_no = ref[-1] if ref[-1] else None
        o = next((x for x in sb.orders.values() if x.trade_no == trade_no
                  or x.out_trade_no == body.get("out_trade_no")), None)
        payer = sb.payers.get(str(body.get("payer_id", "payer_rich")))
        if o is None or o.way_code == "BARCODE":
            return refuse(404, "ORDER_NOT_FOUND", "no such QR / H5 order")
        if payer is None:
            return refuse(404, "PAYER_NOT_FOUND", "no such payer")
        sb.refresh(o)
        if o.state != "PAYING":
            return refuse(409, f"ORDER_{o.state}", f"the order is {o.state}")
        # A refusal fails this attempt only: the order stays PAYING, as in the app
        refused = payer.controls.refusal(o.amount_fen)
        if refused is not None:
            return refuse(409, *REFUSALS[refused])
        if not sb.settle(o, payer):
            return refuse(409, "BALANCE_NOT_ENOUGH",
                           "the payer's account balance is not enough")
        return answer({"code": "SUCCESS", **sb.order_view(o)})

    @app.post("/wallet/faults")
    async def faults(request: Request) -> Response:
        return set_faults(sb.faults, await read_json(request), "PARAM_INVALID")

    @app.get("/wallet/orders/{no}")
    async def order(no: str) -> Response:
        o = sb.orders.get(no)
        if o is None:
            return refuse(404, "ORDER_NOT_FOUND", no)
        refunds = [sb.refund_view(r) for r in sb.refunds.values() if r.order is o]
        return answer({**sb.order_view(o), "refunds": refunds})

    @app.get("/pay/{trade_no}")
    async def pay_page(trade_no: str) -> HTMLResponse:
        o = next((x for x in sb.orders.values() if x.trade_no == trade_no), None)
        if o is None:
            return HTMLResponse("<h1>No such order</h1>", 404)
        amount = f"{o.amount_fen // 100}.{o.amount_fen % 100:02d}"
        return HTMLResponse(_PAGE.format(subject=html.escape(o.subject), amount=amount,
                                         trade_no=html.escape(trade_no)))


_PAGE = """<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Bank app (sandbox)</title><h2>{subject}</h2><p>¥{amount}</p>
<select id="p"><option>payer_rich</option><option>payer_poor</option></select>
<button onclick="fetch('../wallet/scan',{{method:'POST',headers:{{'Content-Type':'application/json'}},
body:JSON.stringify({{code_url:'{trade_no}',payer_id:document.getElementById('p').value}})}})
.then(r=>r.json()).then(j=>document.getElementById('r').textContent=j.code||j.trade_state)">
Pay from my account</button><p id="r"></p>"""
