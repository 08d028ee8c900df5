"""The operating institution's e-CNY merchant interface as a sandbox (docs/channels/ecny.md).

A separate system in memory, written from that document (its message security is
`security.py`, independent of the adapter's). It verifies SM2 request signatures (method,
path, timestamp, nonce, body), the window and nonces, decrypts the merchant's SM4 payee
envelope, applies wallet levels and limits (wallet.py), signs every answer and callback with
the institution's SM2 key and encrypts payer data. Wallet and fault endpoints live in
routes.py. Served under /sandbox/ecny or at its own root (`fulema sandbox ecny`); under the
mount a request signed over the path with or without the mount prefix is accepted.
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
from fastapi import FastAPI, Request
from fastapi.responses import Response

from fulema.core.clock import clock
from fulema.sandbox.ecny.config import EcnySandboxConfig
from fulema.sandbox.ecny.security import CST as ECNY_TZ
from fulema.sandbox.ecny.security import (
    H_MERCHANT,
    InstitutionSigner,
    RequestGuard,
    aad,
    mask_wallet,
    seal,
    unseal,
)
from fulema.sandbox.ecny.wallet import (
    CODE_LENGTH,
    CODE_PREFIX,
    Wallet,
    new_wallet_id,
    refusal_answer,
)
from fulema.sandbox.json_common import Faults, Result, with_body
from fulema.sandbox.json_registration import RegistrationBook
from fulema.sandbox.wallet import PayerBook

CODE_TTL = timedelta(seconds=60)
CONFIRM_TIMEOUT = timedelta(seconds=60)
REFUND_DELAY_SECONDS = 0.05  # refunds answer PROCESSING and settle a moment later
CALLBACK_DELAYS = (0.0, 0.2, 1.0, 3.0, 5.0)
PAID = ("SUCCESS", "REFUND_PART", "REFUND_FULL")


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
    status: str = "WAIT_PAY"
    wallet: Wallet | None = None
    success_at: datetime | None = None
    refunded_fen: int = 0  # including refunds still PROCESSING
    error_code: str | None = None
    error_message: str | None = None
    code_url: str | None = None
    sub_merchant_id: str = ""  # the partner form: the registered merchant whose order it is


@dataclass
class Refund:
    out_refund_no: str
    refund_no: str
    order: Order
    refund_fen: int
    reason: str
    record_type: str  # REFUND, or REVERSE for a reversed paid order
    created_at: datetime
    notify_url: str | None
    status: str = "PROCESSING"
    success_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None


# The institution's refusal of a sub-merchant in the partner form (our assumed codes).
SUB_MERCHANT_CODES = {"UNKNOWN": "SUB_MERCHANT_NOT_REGISTERED",
                      "SUSPENDED": "SUB_MERCHANT_SUSPENDED"}


def err(status: int, code: str, message: str) -> Result:
    return status, {"code": code, "message": message}


def ok(data: dict[str, Any]) -> Result:
    return 200, {"code": "SUCCESS", "message": "OK", "data": data}


def iso(at: datetime) -> str:
    return at.astimezone(ECNY_TZ).isoformat(timespec="seconds")


class EcnySandbox:
    def __init__(self, config: EcnySandboxConfig, http: httpx.AsyncClient) -> None:
        self.config, self.ecny, self.http = config, config, http
        self.signer = InstitutionSigner.from_private(config.institution_private_key)
        self.public = config.public_url
        self.wallet = PayerBook[Wallet]()
        self.orders: dict[str, Order] = {}
        self.refunds: dict[str, Refund] = {}
        self.revoked: set[str] = set()
        self.faults = Faults()
        self.guard = RequestGuard(config.merchant_public_key)
        self.tasks: set[asyncio.Task[None]] = set()
        self.registrations = RegistrationBook("ECNYM")  # merchants the institution registered
        self.add_wallet("payer_rich", 100_000_000, level=1, name="王*明")
        self.add_wallet("payer_anon", 500_000, level=4, name=None)
        self.add_wallet("payer_poor", 100, level=2, name="李*")
        self.add_wallet("payer_pin", 1_000_000, level=2, name="张*", password_required=True)

    # wallets -----------------------------------------------------------------
    def add_wallet(self, payer_id: str, balance_fen: int, *, level: int, name: str | None,
                   password_required: bool = False, risk_refused: bool = False,
                   limit_fen: int | None = None) -> Wallet:
        return self.wallet.add(Wallet(payer_id, new_wallet_id(), level, balance_fen,
                                      password_required, name, risk_refused=risk_refused,
                                      limit_fen=limit_fen))

    def issue_code(self, w: Wallet) -> tuple[str, datetime | None]:
        return self.wallet.issue_code(w, CODE_PREFIX, CODE_LENGTH, CODE_TTL)

    def try_pay(self, o: Order, w: Wallet) -> tuple[str, str] | None:
        """Pay the order from the wallet, or the operator's (code, message) refusal. The daily
        limit counts today's standing payments: a reversal gives the headroom back."""
        refused = w.pay(o.amount_fen)
        if refused is not None:
            return refusal_answer(w, refused)
        o.status, o.wallet, o.success_at = "SUCCESS", w, clock.now()
        o.error_code = o.error_message = None
        self.notify(o.notify_url, "TRADE.SUCCESS", self.order_view(o))
        return None

    def fail(self, o: Order, code: str, message: str) -> None:
        o.status, o.error_code, o.error_message = "FAILED", code, message
        self.notify(o.notify_url, "TRADE.FAILED", self.order_view(o))

    def refresh(self, o: Order) -> None:
        now = clock.now()
        if o.status == "USER_PAYING" and now - o.created_at > CONFIRM_TIMEOUT:
            self.fail(o, "PAYER_CONFIRM_TIMEOUT", "the payer did not confirm in the wallet")
        elif o.status == "WAIT_PAY" and now > o.expire_at:
            o.status, o.error_code, o.error_message = "CLOSED", "ORDER_EXPIRED", "expired unpaid"

    # views -------------------------------------------------------------------
    def order_view(self, o: Order) -> dict[str, Any]:
        self.refresh(o)
        payer = None
        if o.wallet is not None and o.status not in ("WAIT_PAY", "USER_PAYING"):
            w = o.wallet
            payer = {"wallet_id_masked": mask_wallet(w.wallet_id), "wallet_level": w.level,
                     "encrypted": seal(self.config.data_key, self.config.data_key_id,
                                       self.config.field_cipher,
                                       {"wallet_id": w.wallet_id, "payer_name": w.name,
                                        "wallet_level": w.level},
                                       aad(self.config.merchant_id, o.out_trade_no))}
        return {
            "merchant_id": self.ecny.merchant_id, "out_trade_no": o.out_trade_no,
            "trade_no": o.trade_no, "trade_status": o.status, "way_code": o.way_code,
            "amount_fen": o.amount_fen, "currency": "CNY", "refunded_fen": o.refunded_fen,
            "fee_fen": 0, "subject": o.subject, "create_time": iso(o.created_at),
            "expire_time": iso(o.expire_at),
            "success_time": iso(o.success_at) if o.success_at else None,
            "payer": payer, "error_code": o.error_code, "error_message": o.error_message,
            "code_url": o.code_url, "sub_merchant_id": o.sub_merchant_id or None,
        }

    def refund_view(self, r: Refund) -> dict[str, Any]:
        return {"merchant_id": self.ecny.merchant_id, "out_trade_no": r.order.out_trade_no,
                "trade_no": r.order.trade_no, "out_refund_no": r.out_refund_no,
                "refund_no": r.refund_no, "refund_fen": r.refund_fen, "refund_status": r.status,
                "record_type": r.record_type, "reason": r.reason, "fee_fen": 0,
                "create_time": iso(r.created_at),
                "success_time": iso(r.success_at) if r.success_at else None,
                "error_code": r.error_code, "error_message": r.error_message,
                "sub_merchant_id": r.order.sub_merchant_id or None}

    # callbacks ---------------------------------------------------------------
    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def notify(self, url: str | None, event_type: str, data: dict[str, Any]) -> None:
        if url:
            doc = {"event_id": f"EV{secrets.token_hex(10)}", "event_type": event_type,
                   "create_time": iso(clock.now()), "data": data}
            self.spawn(self._deliver(url, orjson.dumps(doc)))

    async def _deliver(self, url: str, body: bytes) -> None:
        for delay in CALLBACK_DELAYS:
            await asyncio.sleep(delay)
            with contextlib.suppress(httpx.HTTPError, orjson.JSONDecodeError, AttributeError):
                resp = await self.http.post(url, content=body, timeout=5.0, headers={
                    **self.signer.sign_message(body), "Content-Type": "application/json"})
                if resp.status_code == 200 and orjson.loads(resp.content).get("code") == "SUCCESS":
                    return

    async def settle_refund(self, r: Refund) -> None:
        await asyncio.sleep(REFUND_DELAY_SECONDS)
        o, w = r.order, r.order.wallet
        assert w is not None
        if w.frozen:
            r.status, r.error_code = "FAILED", "WALLET_CLOSED"
            r.error_message = "the payer's wallet is closed; settle with the payer offline"
            o.refunded_fen -= r.refund_fen
            o.status = "REFUND_PART" if o.refunded_fen else "SUCCESS"
            self.notify(r.notify_url, "REFUND.FAILED", self.refund_view(r))
            return
        w.credit(r.refund_fen)
        r.status, r.success_at = "SUCCESS", clock.now()
        self.notify(r.notify_url, "REFUND.SUCCESS", self.refund_view(r))

    # HTTP --------------------------------------------------------------------
    def signed(self, status: int, content: bytes, media_type: str) -> Response:
        headers = self.signer.sign_message(content)
        if self.faults.mode == "garbled":
            content = content[: len(content) // 2] + b"\x00garbled"
        return Response(content=content, status_code=status, media_type=media_type,
                        headers=headers)

    async def api(self, request: Request, handler: Callable[[dict[str, Any]], Result]) -> Response:
        if self.faults.mode == "slow":
            await asyncio.sleep(self.faults.delay_ms / 1000)
        if self.faults.mode == "5xx":
            return Response(b'{"code":"SYSTEM_BUSY","message":"try later"}', 503,
                            media_type="application/json")
        raw = await request.body()
        problem = self.guard.check(request.headers, request.method, api_paths(request), raw)
        if problem is not None:
            status, doc = err(401, problem, f"request refused: {problem}")
        elif request.headers.get(H_MERCHANT) != self.ecny.merchant_id:
            status, doc = err(403, "MERCHANT_INVALID", "unknown merchant_id")
        else:
            status, doc = with_body(raw, "merchant_id", self.ecny.merchant_id, handler)
        return self.signed(status, orjson.dumps(doc), "application/json")

    def check_payee(self, body: dict[str, Any]) -> Result | None:
        try:
            payee = unseal(self.config.data_key, self.config.data_key_id, body.get("payee"),
                           aad(self.config.merchant_id, str(body.get("out_trade_no"))))
        except ValueError as exc:
            return err(400, "DECRYPT_FAILED", f"payee envelope: {exc}")
        if payee.get("wallet_id") != self.ecny.merchant_wallet_id:
            return err(400, "PAYEE_WALLET_INVALID", "not the merchant's registered wallet")
        return None

    def new_order(self, body: dict[str, Any], way_code: str) -> Order:
        now = clock.now()
        expire = now + timedelta(minutes=15)
        if isinstance(body.get("expire_time"), str):
            with contextlib.suppress(ValueError):
                parsed = datetime.fromisoformat(body["expire_time"])
                expire = parsed if parsed.tzinfo is not None else expire
        trade_no = f"EC{now.astimezone(ECNY_TZ):%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"
        return Order(body["out_trade_no"], trade_no, body["amount_fen"],
                     str(body.get("subject", ""))[:128], way_code,
                     body.get("notify_url") or None, now, expire, body.get("auth_code"),
                     sub_merchant_id=str(body.get("sub_merchant_id") or ""))

    def partner_refusal(self, body: dict[str, Any]) -> Result | None:
        """A new payment's sub-merchant (partner form) must be registered and not suspended."""
        return self.registrations.refusal(body.get("sub_merchant_id"), SUB_MERCHANT_CODES)

    @staticmethod
    def mine(o: Order | None, sub: object) -> Order | None:
        """The order if it was made in the form (and for the sub-merchant) now asking."""
        return o if o is not None and o.sub_merchant_id == (sub or "") else None


def api_paths(request: Request) -> list[str]:
    """What the merchant may have signed as API-PATH, query included: the path after the
    mount (the institution's own path, as at its own root) and the full path with the mount
    prefix (a client whose base URL ends at the host)."""
    full, root = request.url.path, request.scope.get("root_path", "")
    query = f"?{request.url.query}" if request.url.query else ""
    inner = full[len(root):] if root and full.startswith(root) else full
    return [inner + query, full + query]


def build_sandbox(config: EcnySandboxConfig, http: httpx.AsyncClient) -> FastAPI:
    from fulema.sandbox.ecny.routes import install_api, install_wallet
    from fulema.sandbox.json_registration import add_registration_routes

    sb = EcnySandbox(config, http)
    app = FastAPI(title="e-CNY sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sb
    install_api(app, sb)
    install_wallet(app, sb)
    # the institution's merchant registration (our documented assumption)
    app.state.registrations = add_registration_routes(app, sb.api, "/v1/merchants",
                                                      sb.registrations)
    return app
