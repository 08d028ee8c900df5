"""e-CNY (digital RMB) acquiring through the bank as operating institution (运营机构).

The institution's merchant interface is not public, so the protocol is designed from what is
published and every assumption is written down in docs/channels/ecny.md: JSON over HTTPS,
amounts in integer fen, SM2/SM3 signatures on every request, response and callback, personal
data in SM4 envelopes (ecny_security.py). Payer-code (付款码, 19 digits starting 01) and
merchant-QR payments; query, close, reverse, refund, refund query, callbacks and a daily bill.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
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
from fulema.channels.ecny.security import (
    CIPHERS,
    HEADER_MERCHANT,
    EcnyKeys,
    ReplayGuard,
    dev_key_pair,
    load_or_create_data_key,
    mask_wallet,
    parse_data_key,
    seal,
    signer_from,
    unseal,
)
from fulema.channels.transport import (
    answer_for,
    notified_sub,
    partner_request,
    raise_download_error,
    send,
)
from fulema.core.channel_settings import EcnySection, refuse_outside_development
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode

ECNY_TZ = timezone(timedelta(hours=8), "CST")

# The institution's trade states -> ours, exhaustively; anything else is UNKNOWN (query again).
TRADE_STATES: dict[str, TradeState] = {
    "WAIT_PAY": TradeState.PAYING,  # QR created, not scanned (or a scan was refused: limits)
    "USER_PAYING": TradeState.PAYING,  # payer code read; the payer must confirm in the wallet
    "SUCCESS": TradeState.SUCCESS,
    "REFUND_PART": TradeState.SUCCESS,  # paid, then partly refunded
    "REFUND_FULL": TradeState.SUCCESS,  # paid, then fully refunded
    "FAILED": TradeState.FAILED,  # limits, balance, bad payer code, declined, timed out
    "CLOSED": TradeState.CLOSED,  # closed unpaid, or expired
    "REVOKED": TradeState.CLOSED,  # reversed (撤销); a paid one went back to the wallet
}
REFUND_STATES: dict[str, RefundState] = {
    "PROCESSING": RefundState.PROCESSING,
    "SUCCESS": RefundState.SUCCESS,
    "FAILED": RefundState.FAILED,
}
SUPPORTED_WAYS = {WayCode.QR_DYNAMIC, WayCode.QR_STATIC}  # create(); BARCODE is barcode_pay()
# The institution refusing the sub-merchant itself (partner form; our assumed codes)
SUB_MERCHANT_REFUSALS = frozenset({"SUB_MERCHANT_NOT_REGISTERED", "SUB_MERCHANT_SUSPENDED"})


def _keys_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "keys"


def _data_key(settings: Settings, ecny: EcnySection) -> bytes:
    if ecny.data_key_hex:
        return parse_data_key(ecny.data_key_hex)
    return load_or_create_data_key(_keys_dir(settings) / "ecny_sm4.key")


def adapter_keys(settings: Settings, ecny: EcnySection) -> EcnyKeys:
    """Our private key, the institution's public key, the data key."""
    refuse_outside_development(settings, ecny.problems())
    merchant = (signer_from(ecny.merchant_key_file.read_text().strip()) if ecny.merchant_key_file
                else dev_key_pair(_keys_dir(settings) / "ecny_merchant.key"))
    platform_public = (ecny.platform_public_key or
                       dev_key_pair(_keys_dir(settings) / "ecny_platform.key").public_key)
    return EcnyKeys(merchant=merchant, merchant_public=merchant.public_key, platform=None,
                    platform_public=platform_public, data_key=_data_key(settings, ecny))


def institution_keys(settings: Settings, ecny: EcnySection) -> EcnyKeys:
    """The sandbox's side: the institution's private key and our registered public key."""
    platform = (signer_from(ecny.platform_key_file.read_text().strip()) if ecny.platform_key_file
                else dev_key_pair(_keys_dir(settings) / "ecny_platform.key"))
    merchant_public = ecny.merchant_public_key or (
        signer_from(ecny.merchant_key_file.read_text().strip()).public_key
        if ecny.merchant_key_file else dev_key_pair(_keys_dir(settings) / "ecny_merchant.key")
        .public_key)
    return EcnyKeys(merchant=None, merchant_public=merchant_public, platform=platform,
                    platform_public=platform.public_key, data_key=_data_key(settings, ecny))


def aad_for(merchant_id: str, out_trade_no: str) -> str:
    """Envelopes are bound to one merchant's one order (GCM additional data)."""
    return f"{merchant_id}|{out_trade_no}"


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def refund_result(data: dict[str, Any]) -> RefundResult:
    return RefundResult(state=REFUND_STATES.get(str(data.get("refund_status")),
                                                RefundState.UNKNOWN),
                        channel_refund_no=data.get("refund_no"), error_code=data.get("error_code"),
                        error_message=data.get("error_message"), raw=data)


class EcnyChannel:
    supported_ways = frozenset({*SUPPORTED_WAYS, WayCode.BARCODE})
    name = ChannelName.ECNY

    def __init__(self, settings: Settings, http: httpx.AsyncClient,
                 ecny: EcnySection | None = None) -> None:
        self.settings = settings
        self.ecny = ecny or settings.ecny
        if self.ecny.field_cipher not in CIPHERS:
            raise ValueError(f"FULEMA_ECNY_FIELD_CIPHER must be one of {CIPHERS}")
        self.keys = adapter_keys(settings, self.ecny)
        assert self.keys.merchant is not None
        self.signer = self.keys.merchant
        self.http = http
        self.base_url = (self.ecny.base_url or settings.sandbox_url("ecny")).rstrip("/")
        self.timeout = self.ecny.timeout_seconds or settings.channel_timeout_seconds
        self.callback_guard = ReplayGuard()
        self.response_guard = ReplayGuard()

    # transport -------------------------------------------------------------
    async def _send(self, method: str, path: str, payload: dict[str, Any] | None) -> httpx.Response:
        body = orjson.dumps(payload) if payload is not None else b""
        headers = {**self.signer.sign_request(method, path, body),
                   HEADER_MERCHANT: self.ecny.merchant_id, "Content-Type": "application/json"}
        resp = await send(self.http, method, self.base_url + path, content=body, headers=headers,
                          seconds=self.timeout, label=f"ecny {path}")
        if self.response_guard.check(self.keys.platform_public, dict(resp.headers), resp.content,
                                     remember=False) is not None:
            raise ChannelUnavailable(f"ecny {path}: response signature does not verify")
        return resp

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None = None, *,
                    sub: str | None = None) -> dict[str, Any]:
        """The answer's data; `sub`: the partner form, for that registered merchant."""
        path, payload = partner_request(path, payload, sub)
        resp = await self._send(method, path, payload)
        return answer_for(resp.content, f"ecny {path}", sub, SUB_MERCHANT_REFUSALS)

    def _trade(self, data: dict[str, Any]) -> TradeResult:
        """Order object -> TradeResult. Decrypts the payer; ValueError if it does not open."""
        state = TRADE_STATES.get(str(data.get("trade_status")), TradeState.UNKNOWN)
        payer_id = None
        payer = data.get("payer")
        if isinstance(payer, dict) and payer.get("encrypted") is not None:
            opened = unseal(self.keys.data_key, self.ecny.data_key_id, payer["encrypted"],
                            aad_for(self.ecny.merchant_id, str(data.get("out_trade_no"))))
            payer_id = mask_wallet(str(opened.get("wallet_id", "")))
        amount = data.get("amount_fen")
        return TradeResult(
            state=state, channel_trade_no=data.get("trade_no"),
            amount=Money(amount) if isinstance(amount, int) and not isinstance(amount, bool)
            and state == TradeState.SUCCESS else None,
            currency=str(data["currency"]) if data.get("currency") else None,
            payer_id=payer_id, paid_at=parse_time(data.get("success_time")),
            error_code=data.get("error_code"), error_message=data.get("error_message"), raw=data)

    def _checked_trade(self, data: dict[str, Any]) -> TradeResult:
        try:
            return self._trade(data)
        except ValueError:
            # signed but undecryptable: a key mix-up, not a payment outcome
            return TradeResult(state=TradeState.UNKNOWN, error_code="DECRYPT_FAILED", raw=data)

    def _payee(self, order_id: str) -> dict[str, str]:
        return seal(self.keys.data_key, self.ecny.data_key_id, self.ecny.field_cipher,
                    {"wallet_id": self.ecny.merchant_wallet_id,
                     "merchant_name": self.ecny.merchant_name},
                    aad_for(self.ecny.merchant_id, order_id))

    # Channel ---------------------------------------------------------------
    def static_code_way(self, payer_id: str | None) -> WayCode:
        return WayCode.QR_STATIC  # the e-CNY app confirms a plate payment itself

    async def create(self, req: CreatePaymentRequest) -> CreatePaymentResult:
        if req.way_code not in SUPPORTED_WAYS:
            raise ChannelError("WAY_CODE_UNSUPPORTED",
                               f"e-CNY takes QR_DYNAMIC, QR_STATIC and BARCODE, not {req.way_code}")
        data = await self._call("POST", "/v1/orders", {
            "merchant_id": self.ecny.merchant_id, "out_trade_no": req.order_id,
            "amount_fen": req.amount.fen, "currency": "CNY", "subject": req.subject[:128],
            "way_code": req.way_code.value, "notify_url": req.notify_url,
            "expire_time": req.expire_at.astimezone(ECNY_TZ).isoformat(timespec="seconds"),
            "client_ip": req.client_ip, "payee": self._payee(req.order_id)},
            sub=req.sub_merchant_id)
        trade = self._checked_trade(data)
        state = TradeState.PAYING if trade.state == TradeState.SUCCESS else trade.state
        return CreatePaymentResult(state=state, code_url=data.get("code_url"),
                                   channel_trade_no=trade.channel_trade_no, raw=data)

    async def barcode_pay(self, req: BarcodePayRequest) -> TradeResult:
        data = await self._call("POST", "/v1/orders/micropay", {
            "merchant_id": self.ecny.merchant_id, "out_trade_no": req.order_id,
            "amount_fen": req.amount.fen, "currency": "CNY", "subject": req.subject[:128],
            "auth_code": req.auth_code, "client_ip": req.client_ip,
            "notify_url": self.settings.callback_url("ecny"), "payee": self._payee(req.order_id)},
            sub=req.sub_merchant_id)
        return self._checked_trade(data)

    async def query(self, order_id: str, *, sub_merchant_id: str | None = None) -> TradeResult:
        try:
            data = await self._call("GET", f"/v1/orders/{order_id}", sub=sub_merchant_id)
        except ChannelError as exc:
            if exc.code == "ORDER_NOT_FOUND":
                return TradeResult(state=TradeState.NOT_FOUND, error_code=exc.code,
                                   error_message=exc.message)
            raise
        return self._checked_trade(data)

    async def close(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        await self._call("POST", f"/v1/orders/{order_id}/close",
                         {"merchant_id": self.ecny.merchant_id}, sub=sub_merchant_id)

    async def cancel(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        await self._call("POST", f"/v1/orders/{order_id}/reverse",
                         {"merchant_id": self.ecny.merchant_id}, sub=sub_merchant_id)

    async def refund(self, req: RefundRequest) -> RefundResult:
        data = await self._call("POST", "/v1/refunds", {
            "merchant_id": self.ecny.merchant_id, "out_trade_no": req.order_id,
            "out_refund_no": req.refund_id, "refund_fen": req.amount.fen,
            "total_fen": req.order_amount.fen, "reason": req.reason[:80],
            "notify_url": req.notify_url}, sub=req.sub_merchant_id)
        return refund_result(data)

    async def refund_query(self, order_id: str, refund_id: str, *,
                           sub_merchant_id: str | None = None) -> RefundResult:
        data = await self._call("GET", f"/v1/refunds/{refund_id}", sub=sub_merchant_id)
        if data.get("out_trade_no") != order_id:
            raise ChannelError("REFUND_NOT_FOUND", "the refund belongs to another order")
        return refund_result(data)

    async def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackResult:
        problem = self.callback_guard.check(self.keys.platform_public, headers, body)
        if problem is not None:
            raise FulemaError(ErrorCode.CALLBACK_INVALID, f"ecny callback: {problem}")
        try:
            doc = orjson.loads(body)
            event, data = doc["event_type"], doc["data"]
            if not isinstance(data, dict) or data.get("merchant_id") != self.ecny.merchant_id:
                raise ValueError("not this merchant's notification")
            return event_callback(event, data, payment_prefix="TRADE.", trade=self._trade,
                                  refund=refund_result, sub_merchant_id=notified_sub(data),
                                  names_sub_merchant=True)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FulemaError(ErrorCode.CALLBACK_INVALID, f"ecny callback: {exc}") from exc

    def callback_ack(self, ok: bool) -> CallbackAck:
        if ok:
            return CallbackAck(200, b'{"code":"SUCCESS"}', "application/json")
        return CallbackAck(400, b'{"code":"FAIL","message":"rejected"}', "application/json")

    async def download_statement(self, day: date) -> bytes:
        path = f"/v1/bills/{day:%Y%m%d}"
        resp = await self._send("GET", path, None)
        if resp.status_code != 200:
            raise_download_error(resp, f"ecny {path}")
        return resp.content


def build_channel(settings: Settings, http: httpx.AsyncClient) -> EcnyChannel:
    return EcnyChannel(settings, http)


def build_endpoints(settings: Settings, http: httpx.AsyncClient) -> list[tuple[str, Channel]]:
    """Primary and, when FULEMA_ECNY_BACKUP_BASE_URL is set, the backup."""
    return with_backup(settings.ecny, lambda ecny: EcnyChannel(settings, http, ecny))
