"""bankpay: the bank's own mobile-banking channel (payer pays from an account at this bank).

There is no public protocol to follow: this is the bank's core/mobile-banking interface, and
the protocol is ours, documented in docs/channels/bankpay.md. JSON over HTTPS, amounts in
integer fen, every request, response and callback signed with HMAC-SHA256 over
`timestamp + "\\n" + nonce + "\\n" + body + "\\n"` (headers X-Bank-Timestamp, X-Bank-Nonce,
X-Bank-Signature), replay refused by nonce and a 5-minute window. The bank settles its own
accounts the same day, so every order object carries `same_day_settlement: true` and
`fee_fen: 0`; both become typed fields of the `TradeResult` (`same_day_settlement`,
`fee_waived`) and still reach `raw` unchanged.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson

from fulema.channels.base import (
    BarcodePayRequest,
    CallbackAck,
    CallbackResult,
    Channel,
    ChannelError,
    ChannelUnavailable,
    CreatePaymentRequest,
    CreatePaymentResult,
    RefundRequest,
    RefundResult,
    RefundState,
    TradeResult,
    TradeState,
    event_callback,
    with_backup,
)
from fulema.channels.transport import (
    answer_for,
    notified_sub,
    partner_request,
    raise_download_error,
    send,
)
from fulema.core.channel_settings import (
    PUBLISHED,
    BankpaySection,
    published_values,
    refuse_outside_development,
)
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.crypto import hmac_sha256_hex, hmac_sha256_verify
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.text import is_ascii_digits
from fulema.core.vocab import ChannelName, WayCode

HEADER_TIMESTAMP = "X-Bank-Timestamp"
HEADER_NONCE = "X-Bank-Nonce"
HEADER_SIGNATURE = "X-Bank-Signature"
HEADER_MERCHANT = "X-Bank-Merchant-No"
WINDOW_SECONDS = 300
BANK_TZ = timezone(timedelta(hours=8), "CST")  # the bank books in China Standard Time

# The bank's trade states -> ours. ONE exhaustive table: a state not listed is UNKNOWN (query
# again), never guessed. REFUND means "paid, then (partly) refunded": the payment succeeded.
TRADE_STATES: dict[str, TradeState] = {
    "PAYING": TradeState.PAYING,  # created, or waiting for the payer to confirm in the app
    "SUCCESS": TradeState.SUCCESS,
    "REFUND": TradeState.SUCCESS,
    "FAILED": TradeState.FAILED,  # the bank refused: balance, frozen account, bad payer code
    "CLOSED": TradeState.CLOSED,  # closed unpaid (merchant close or expiry)
    "REVOKED": TradeState.CLOSED,  # payer-code payment cancelled (撤销); reversed if paid
}
REFUND_STATES: dict[str, RefundState] = {
    "PROCESSING": RefundState.PROCESSING,
    "SUCCESS": RefundState.SUCCESS,
    "FAILED": RefundState.FAILED,
}
SUPPORTED_WAYS = {WayCode.QR_DYNAMIC, WayCode.QR_STATIC, WayCode.H5}  # create(); and barcode_pay()
# The bank refusing the sub-merchant itself (partner form; our assumed codes)
SUB_MERCHANT_REFUSALS = frozenset({"SUB_MERCHANT_INVALID", "SUB_MERCHANT_FROZEN"})


# ------------------------------------------------------------------ signing (shared with sandbox)

def signing_string(timestamp: str, nonce: str, body: bytes) -> bytes:
    """`timestamp\\nnonce\\nbody\\n` over the exact bytes on the wire (empty body for GET)."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def sign(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac_sha256_hex(secret, signing_string(timestamp, nonce, body))


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    ts, nonce = str(clock.timestamp()), secrets.token_hex(16)
    return {HEADER_TIMESTAMP: ts, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: sign(secret, ts, nonce, body)}


class ReplayGuard:
    """Remembers nonces for the window so a captured message cannot be played again.

    In memory: a second process has its own set, which is acceptable because the timestamp
    window still bounds a replay to 5 minutes and TLS stops capture in the first place.
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def check(self, headers: dict[str, str], body: bytes, secret: str,
              *, remember: bool = True) -> str | None:
        """None when good, else the bank's error code for what is wrong."""
        h = {k.lower(): v for k, v in headers.items()}
        ts, nonce = h.get(HEADER_TIMESTAMP.lower(), ""), h.get(HEADER_NONCE.lower(), "")
        sig = h.get(HEADER_SIGNATURE.lower(), "")
        if not ts or not nonce or not sig:
            return "SIGNATURE_MISSING"
        if not is_ascii_digits(ts) or abs(clock.timestamp() - int(ts)) > WINDOW_SECONDS:
            return "TIMESTAMP_EXPIRED"
        if not hmac_sha256_verify(secret, signing_string(ts, nonce, body), sig):
            return "SIGNATURE_INVALID"
        if remember:
            now = clock.timestamp()
            if self._seen.get(nonce, 0) >= now:
                return "NONCE_REPLAYED"
            if len(self._seen) > 10_000:
                self._seen = {n: exp for n, exp in self._seen.items() if exp >= now}
            self._seen[nonce] = now + 2 * WINDOW_SECONDS
        return None


def iso(at: datetime) -> str:
    return at.astimezone(BANK_TZ).isoformat(timespec="seconds")


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


# ------------------------------------------------------------------ adapter

def trade_result(data: dict[str, Any]) -> TradeResult:
    """An order object from the bank -> TradeResult, with its same-day settlement flag and
    zero fee as typed fields (absent means the ordinary case: a fee, T+n settlement)."""
    state = TRADE_STATES.get(str(data.get("trade_state")), TradeState.UNKNOWN)
    amount = data.get("amount_fen")
    payer_raw = data.get("payer")
    payer: dict[str, Any] = payer_raw if isinstance(payer_raw, dict) else {}
    return TradeResult(
        state=state, channel_trade_no=data.get("trade_no"),
        amount=Money(amount) if isinstance(amount, int) and not isinstance(amount, bool)
        and state == TradeState.SUCCESS else None,
        currency=str(data["currency"]) if data.get("currency") else None,
        payer_id=payer.get("account_masked"), paid_at=parse_time(data.get("success_time")),
        error_code=data.get("error_code"), error_message=data.get("error_message"),
        fee_waived=data.get("fee_fen") == 0 and not isinstance(data.get("fee_fen"), bool),
        same_day_settlement=data.get("same_day_settlement") is True, raw=data)


def refund_result(data: dict[str, Any]) -> RefundResult:
    return RefundResult(state=REFUND_STATES.get(str(data.get("refund_state")), RefundState.UNKNOWN),
                        channel_refund_no=data.get("refund_no"),
                        error_code=data.get("error_code"),
                        error_message=data.get("error_message"), raw=data)


class BankpayChannel:
    supported_ways = frozenset({*SUPPORTED_WAYS, WayCode.BARCODE})
    name = ChannelName.BANKPAY

    def __init__(self, settings: Settings, http: httpx.AsyncClient,
                 bank: BankpaySection | None = None) -> None:
        self.settings = settings
        self.bank = bank or settings.bankpay
        refuse_outside_development(settings, published_values(self.bank, PUBLISHED))
        self.http = http
        self.base_url = (self.bank.base_url or settings.sandbox_url("bankpay")).rstrip("/")
        self.timeout = self.bank.timeout_seconds or settings.channel_timeout_seconds
        self.callback_guard = ReplayGuard()
        self.response_guard = ReplayGuard()

    # transport -------------------------------------------------------------
    async def _send(self, method: str, path: str, payload: dict[str, Any] | None) -> httpx.Response:
        body = orjson.dumps(payload) if payload is not None else b""
        headers = {**signed_headers(self.bank.secret, body), HEADER_MERCHANT: self.bank.merchant_no,
                   "Content-Type": "application/json"}
        resp = await send(self.http, method, self.base_url + path, content=body, headers=headers,
                          seconds=self.timeout, label=f"bankpay {path}")
        # An answer we cannot verify is no answer: it may be forged or truncated.
        if self.response_guard.check(dict(resp.headers), resp.content, self.bank.secret,
                                     remember=False) is not None:
            raise ChannelUnavailable(f"bankpay {path}: unverifiable response")
        return resp

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None = None, *,
                    sub: str | None = None) -> dict[str, Any]:
        """The `data` object of a successful answer; ChannelError for the bank's refusals.
        `sub`: the partner form, for that registered merchant."""
        path, payload = partner_request(path, payload, sub)
        resp = await self._send(method, path, payload)
        return answer_for(resp.content, f"bankpay {path}", sub, SUB_MERCHANT_REFUSALS)

    def _base(self) -> dict[str, Any]:
        return {"merchant_no": self.bank.merchant_no, "institution_id": self.bank.institution_id}

    # Channel ---------------------------------------------------------------
    def static_code_way(self, payer_id: str | None) -> WayCode:
        return WayCode.QR_STATIC  # the bank's app confirms a plate payment itself

    async def create(self, req: CreatePaymentRequest) -> CreatePaymentResult:
        if req.way_code not in SUPPORTED_WAYS:
            raise ChannelError("WAY_CODE_UNSUPPORTED",
                               f"bankpay takes QR_DYNAMIC, QR_STATIC and H5, not {req.way_code}")
        data = await self._call("POST", "/api/orders", {
            **self._base(), "out_trade_no": req.order_id, "amount_fen": req.amount.fen,
            "currency": "CNY", "subject": req.subject[:128], "way_code": req.way_code.value,
            "notify_url": req.notify_url, "expire_time": iso(req.expire_at),
            "client_ip": req.client_ip, "return_url": req.return_url,
            **({"payer_auth": "PASSWORD"} if req.strong_auth else {})}, sub=req.sub_merchant_id)
        trade = trade_result(data)
        state = trade.state if trade.state != TradeState.SUCCESS else TradeState.PAYING
        return CreatePaymentResult(state=state, code_url=data.get("code_url"),
                                   h5_url=data.get("h5_url"), channel_trade_no=trade.channel_trade_no,
                                   raw=data)

    async def barcode_pay(self, req: BarcodePayRequest) -> TradeResult:
        data = await self._call("POST", "/api/orders/barcode", {
            **self._base(), "out_trade_no": req.order_id, "amount_fen": req.amount.fen,
            "currency": "CNY", "subject": req.subject[:128], "auth_code": req.auth_code,
            "client_ip": req.client_ip, "notify_url": self.settings.callback_url("bankpay"),
            # the bank asks the payer's password even where the payer waived it (risk CHALLENGE)
            **({"payer_auth": "PASSWORD"} if req.strong_auth else {})}, sub=req.sub_merchant_id)
        return trade_result(data)

    async def query(self, order_id: str, *, sub_merchant_id: str | None = None) -> TradeResult:
        try:
            data = await self._call("GET", f"/api/orders/{order_id}", sub=sub_merchant_id)
        except ChannelError as exc:
            if exc.code == "ORDER_NOT_FOUND":
                return TradeResult(state=TradeState.NOT_FOUND, error_code=exc.code,
                                   error_message=exc.message)
            raise
        return trade_result(data)

    async def close(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        await self._call("POST", f"/api/orders/{order_id}/close", self._base(),
                         sub=sub_merchant_id)

    async def cancel(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        await self._call("POST", f"/api/orders/{order_id}/cancel", self._base(),
                         sub=sub_merchant_id)

    async def refund(self, req: RefundRequest) -> RefundResult:
        data = await self._call("POST", "/api/refunds", {
            **self._base(), "out_trade_no": req.order_id, "out_refund_no": req.refund_id,
            "refund_fen": req.amount.fen, "total_fen": req.order_amount.fen,
            "reason": req.reason[:80], "notify_url": req.notify_url}, sub=req.sub_merchant_id)
        return refund_result(data)

    async def refund_query(self, order_id: str, refund_id: str, *,
                           sub_merchant_id: str | None = None) -> RefundResult:
        data = await self._call("GET", f"/api/refunds/{refund_id}", sub=sub_merchant_id)
        if data.get("out_trade_no") != order_id:
            raise ChannelError("REFUND_NOT_FOUND", "the bank's refund belongs to another order")
        return refund_result(data)

    async def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackResult:
        problem = self.callback_guard.check(headers, body, self.bank.secret)
        if problem is not None:
            raise FulemaError(ErrorCode.CALLBACK_INVALID, f"bankpay callback: {problem}")
        try:
            doc = orjson.loads(body)
            event, data = doc["event_type"], doc["data"]
            if not isinstance(data, dict) or data.get("merchant_no") != self.bank.merchant_no:
                raise ValueError("data is not this merchant's object")
            return event_callback(event, data, payment_prefix="TRADE.", trade=trade_result,
                                  refund=refund_result, sub_merchant_id=notified_sub(data),
                                  names_sub_merchant=True)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FulemaError(ErrorCode.CALLBACK_INVALID, f"bankpay callback: {exc}") from exc

    def callback_ack(self, ok: bool) -> CallbackAck:
        if ok:
            return CallbackAck(200, b'{"code":"SUCCESS"}', "application/json")
        return CallbackAck(400, b'{"code":"FAIL","message":"rejected"}', "application/json")

    async def download_statement(self, day: date) -> bytes:
        path = f"/api/statements/{day:%Y%m%d}"
        resp = await self._send("GET", path, None)
        if resp.status_code != 200:
            raise_download_error(resp, f"bankpay {path}")
        return resp.content


def build_channel(settings: Settings, http: httpx.AsyncClient) -> BankpayChannel:
    return BankpayChannel(settings, http)


def build_endpoints(settings: Settings, http: httpx.AsyncClient) -> list[tuple[str, Channel]]:
    """Primary and, when FULEMA_BANKPAY_BACKUP_BASE_URL is set, the backup."""
    return with_backup(settings.bankpay, lambda bank: BankpayChannel(settings, http, bank))
