"""The bankpay sandbox's in-memory bank: payers, payer codes, orders, refunds, callbacks.

Split from the routes (bankpay.py, bankpay_wallet.py) so the bank's state and its time-driven
rules read in one place; `BankpaySandbox.api` is the shared front door that checks faults,
signatures, timestamps and nonces before any handler runs, and signs every answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from fastapi import Request
from fastapi.responses import Response

from fulema.core.clock import clock
from fulema.sandbox.bankpay.config import BankpaySandboxConfig
from fulema.sandbox.bankpay.protocol import CST as BANK_TZ
from fulema.sandbox.bankpay.protocol import H_MERCHANT, RequestGuard, iso, sign_headers
from fulema.sandbox.json_common import Faults, with_body
from fulema.sandbox.json_registration import RegistrationBook
from fulema.sandbox.wallet import Payer, PayerBook, Refusal, digits, three_codes

CODE_TTL = timedelta(seconds=60)  # a payer code is valid for one minute, once
CODE_PREFIX, CODE_LENGTH = "88", 18
CONFIRM_TIMEOUT = timedelta(seconds=60)  # a payer who never confirms: the payment fails
CALLBACK_DELAYS = (0.0, 0.2, 1.0, 3.0, 5.0)

# The bank's own codes for a payer its risk engine refuses, whose limit the payment exceeds,
# or whose account is short.
REFUSALS: dict[Refusal, tuple[str, str]] = three_codes(
    risk=("PAYER_RISK_REJECTED", "the bank's risk control refused this payment"),
    limit=("PAYER_LIMIT_EXCEEDED", "the amount is above the payer's payment limit"),
    balance=("BALANCE_NOT_ENOUGH", "the payer's account balance is not enough"))


@dataclass
class BankPayer(Payer):
    """The bank's own customer, paying from one account."""

    account_no: str = ""
    customer_id: str = ""

    def masked(self) -> dict[str, str]:
        return {"account_masked": f"{self.account_no[:6]}******{self.account_no[-4:]}",
                "customer_id_masked": f"{self.customer_id[:2]}****{self.customer_id[-4:]}"}

    def view(self) -> dict[str, Any]:
        return {**super().view(), **self.masked()}


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
    payer: BankPayer | None = None
    awaiting_confirm: bool = False
    success_at: datetime | None = None
    refunded_fen: int = 0
    error_code: str | None = None
    error_message: str | None = None
    code_url: str | None = None
    h5_url: str | None = None
    sub_merchant_id: str = ""  # the partner form: the registered merchant whose order it is


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


# The bank's refusal of a sub-merchant in the partner form (our assumed codes).
SUB_MERCHANT_CODES = {"UNKNOWN": "SUB_MERCHANT_INVALID", "SUSPENDED": "SUB_MERCHANT_FROZEN"}


def err(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"code": code, "message": message}


def ok(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"code": "SUCCESS", "message": "OK", "data": data}


class BankpaySandbox:
    def __init__(self, config: BankpaySandboxConfig, http: httpx.AsyncClient) -> None:
        self.config, self.bank, self.http = config, config, http
        self.public = config.public_url
        self.wallet = PayerBook[BankPayer]()
        self.orders: dict[str, Order] = {}
        self.refunds: dict[str, Refund] = {}
        self.revoked: set[str] = set()  # cancelled before the order ever arrived
        self.faults = Faults()
        self.guard = RequestGuard(config.secret)
        self.tasks: set[asyncio.Task[None]] = set()
        self.registrations = RegistrationBook("BKM")  # merchants whose account the bank verified
        self.add_payer("payer_rich", 100_000_000, password_required=False)
        self.add_payer("payer_poor", 100, password_required=False)
        self.add_payer("payer_pin", 1_000_000, password_required=True)

    # payers ------------------------------------------------------------------
    def add_payer(self, payer_id: str, balance_fen: int, *, password_required: bool,
                  risk_refused: bool = False, limit_fen: int | None = None) -> BankPayer:
        n = len(self.wallet.payers) + 1
        return self.wallet.add(BankPayer(
            payer_id, balance_fen, password_required=password_required,
            risk_refused=risk_refused, limit_fen=limit_fen,
            account_no=f"62305800{n:07d}{digits(4)}", customer_id=f"C{digits(6)}{n:04d}"))

    def issue_code(self, payer: BankPayer) -> tuple[str, datetime | None]:
        return self.wallet.issue_code(payer, CODE_PREFIX, CODE_LENGTH, CODE_TTL)

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
            "sub_merchant_id": o.sub_merchant_id or None,
        }

    def refund_view(self, r: Refund) -> dict[str, Any]:
        return {"merchant_no": self.bank.merchant_no, "out_trade_no": r.order.out_trade_no,
                "trade_no": r.order.trade_no, "out_refund_no": r.out_refund_no,
                "refund_no": r.refund_no, "refund_fen": r.refund_fen, "refund_state": r.state,
                "record_type": r.record_type, "reason": r.reason, "fee_fen": 0,
                "same_day_settlement": True, "success_time": iso(r.success_at),
                "settle_date": r.success_at.astimezone(BANK_TZ).date().isoformat(),
                "error_code": None, "error_message": None,
                "sub_merchant_id": r.order.sub_merchant_id or None}

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

    def settle(self, o: Order, payer: BankPayer) -> Refusal | None:
        """Debit the payer; the refusal (order untouched) when the wallet refuses."""
        refused = payer.pay(o.amount_fen)
        if refused is not None:
            return refused
        o.state, o.payer, o.success_at, o.awaiting_confirm = "SUCCESS", payer, clock.now(), False
        o.error_code = o.error_message = None
        self.notify(o.notify_url, "TRADE.SUCCESS", self.order_view(o))
        return None

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
                     created_at=now, expire_at=expire, auth_code=body.get("auth_code"),
                     sub_merchant_id=str(body.get("sub_merchant_id") or ""))

    def partner_refusal(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """A new payment's sub-merchant (partner form) must be registered and not frozen."""
        return self.registrations.refusal(body.get("sub_merchant_id"), SUB_MERCHANT_CODES)

    @staticmethod
    def mine(o: Order | None, sub: object) -> Order | None:
        """The order if it was made in the form (and for the sub-merchant) now asking."""
        return o if o is not None and o.sub_merchant_id == (sub or "") else None

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
                    **sign_headers(self.bank.secret, body), "Content-Type": "application/json"})
                if resp.status_code == 200 and orjson.loads(resp.content).get("code") == "SUCCESS":
                    return
            except (httpx.HTTPError, orjson.JSONDecodeError, AttributeError):
                pass

    # HTTP answers ------------------------------------------------------------
    def signed(self, status: int, content: bytes, media_type: str) -> Response:
        headers = sign_headers(self.bank.secret, content)
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
        problem = self.guard.check(request.headers, raw)
        status, doc = 200, dict[str, Any]()
        if problem is not None:
            status, doc = err(401, problem, f"request refused: {problem}")
        elif request.headers.get(H_MERCHANT) != self.bank.merchant_no:
            status, doc = err(403, "MERCHANT_INVALID", "unknown merchant_no")
        else:
            status, doc = with_body(raw, "merchant_no", self.bank.merchant_no, handler)
        return self.signed(status, orjson.dumps(doc), "application/json")
