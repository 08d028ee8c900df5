"""The one Protocol every channel adapter implements, and its typed results.

Payments speaks only these types; each adapter translates them to its channel's wire protocol
and maps the channel's states onto `TradeState` / `RefundState` exhaustively in one place.
Rule for every adapter: a transport failure, a timeout or a response it cannot verify or parse
is `UNKNOWN` (the order is then queried), never `FAILED`; only the channel saying so is FAILED.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode


class TradeState(StrEnum):
    PAYING = "PAYING"  # created or waiting for the payer (NOTPAY, USERPAYING, WAIT_BUYER_PAY)
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"  # the channel says the payment failed (PAYERROR, balance, risk)
    CLOSED = "CLOSED"  # closed or reversed at the channel
    NOT_FOUND = "NOT_FOUND"  # the channel has no such order
    UNKNOWN = "UNKNOWN"  # no trustworthy answer: query again


class RefundState(StrEnum):
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


class ChannelError(Exception):
    """The channel answered with a business refusal we can show (not a transport error)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class ChannelUnavailable(Exception):
    """Transport failure or timeout: the outcome is unknown and must be queried."""


@dataclass(frozen=True)
class CreatePaymentRequest:
    order_id: str  # sent to the channel as its out_trade_no
    amount: Money
    subject: str
    way_code: WayCode
    notify_url: str
    expire_at: datetime
    payer_id: str | None = None  # openid / buyer_id for JSAPI
    client_ip: str = "127.0.0.1"
    return_url: str | None = None
    # risk's CHALLENGE: ask the payer's strong authentication (channels that can force it)
    strong_auth: bool = False
    # The merchant's id at the channel (WeChat sub_mchid, Alipay smid, ...) from its ACTIVE
    # registration (docs/onboarding.md): set, the adapter uses the channel's partner
    # (service-provider) form; None, the direct form under the platform's own merchant id.
    sub_merchant_id: str | None = None
    # The merchant's own app at the channel (WeChat sub_appid), partner form only: set when the
    # order comes from that app, whose payer id (JSAPI) is then the payer's id under it.
    sub_app_id: str | None = None


@dataclass(frozen=True)
class CreatePaymentResult:
    state: TradeState
    code_url: str | None = None  # QR_DYNAMIC / QR_STATIC: what the payer's app opens
    h5_url: str | None = None  # H5: where to send the browser
    pay_params: dict[str, str] | None = None  # JSAPI / APP: what the page hands to the app SDK
    channel_trade_no: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BarcodePayRequest:
    order_id: str
    amount: Money
    subject: str
    auth_code: str
    client_ip: str = "127.0.0.1"
    strong_auth: bool = False  # risk's CHALLENGE: force the payer's password step
    sub_merchant_id: str | None = None  # partner form when set (see CreatePaymentRequest)


@dataclass(frozen=True)
class TradeResult:
    state: TradeState
    channel_trade_no: str | None = None
    amount: Money | None = None  # what the channel says was paid (a SUCCESS without it is refused)
    currency: str | None = None  # ISO 4217 as the channel stated it; None: it states none (CNY)
    payer_id: str | None = None
    paid_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    # What the channel says of its own fee and settlement for this trade, typed so payments
    # can carry it in `payment.succeeded` for the ledger and settlement: `fee_waived` True when
    # the channel charges the merchant nothing (the bank's own channel says fee_fen 0),
    # `same_day_settlement` True when the funds stay at the bank the same day (T+0).
    fee_waived: bool = False
    same_day_settlement: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundRequest:
    order_id: str
    refund_id: str  # sent to the channel as its out_refund_no
    amount: Money
    order_amount: Money
    reason: str
    notify_url: str
    sub_merchant_id: str | None = None  # the order's: a refund goes in the order's form


class SubMerchantRefused(ChannelError):
    """The channel refused the sub-merchant itself (unknown to it, not yet completed, or
    suspended there): nothing about this order, so payments names it apart
    (SUB_MERCHANT_REFUSED) instead of a generic channel error."""


@dataclass(frozen=True)
class RefundResult:
    state: RefundState
    channel_refund_no: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class CallbackKind(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"


@dataclass(frozen=True)
class CallbackResult:
    """A verified, decrypted channel notification."""

    kind: CallbackKind
    order_id: str
    trade: TradeResult | None = None
    refund_id: str | None = None
    refund: RefundResult | None = None
    # The sub-merchant the channel says the notification is for (partner form), None in the
    # direct form: payments checks it is the order's before applying anything, when the
    # channel's notifications state it (`names_sub_merchant`: WeChat's do; Alipay's carry no
    # smid, so an Alipay notification is matched by our order number and signature alone).
    sub_merchant_id: str | None = None
    names_sub_merchant: bool = False


def event_callback(event: str, data: dict[str, Any], *, payment_prefix: str,
                   trade: Callable[[dict[str, Any]], TradeResult],
                   refund: Callable[[dict[str, Any]], RefundResult],
                   sub_merchant_id: str | None = None,
                   names_sub_merchant: bool = False) -> CallbackResult:
    """A verified notification's object by its event type: `payment_prefix` (TRADE.,
    TRANSACTION.) or REFUND.; ValueError for any other event type."""
    if event.startswith(payment_prefix):
        return CallbackResult(kind=CallbackKind.PAYMENT, order_id=data["out_trade_no"],
                              trade=trade(data), sub_merchant_id=sub_merchant_id,
                              names_sub_merchant=names_sub_merchant)
    if event.startswith("REFUND."):
        return CallbackResult(kind=CallbackKind.REFUND, order_id=data["out_trade_no"],
                              refund_id=data["out_refund_no"], refund=refund(data),
                              sub_merchant_id=sub_merchant_id,
                              names_sub_merchant=names_sub_merchant)
    raise ValueError(f"unknown event_type {event!r}")


@dataclass(frozen=True)
class CallbackAck:
    status_code: int
    body: bytes
    media_type: str


def in_app_static_way(payer_id: str | None) -> WayCode:
    """`Channel.static_code_way` of a channel whose app opens the plate's cashier inside itself
    (WeChat, Alipay): with the payer's id (from the app's silent authorisation, `PayerAuth`) it
    is an in-app (JSAPI) payment, without it the app's QR link (QR_DYNAMIC)."""
    return WayCode.JSAPI if payer_id else WayCode.QR_DYNAMIC


@runtime_checkable
class Channel(Protocol):
    name: ChannelName

    @property
    def supported_ways(self) -> frozenset[WayCode]:
        """What this channel takes: payments refuses any other way_code before it records
        anything (WAY_NOT_SUPPORTED), so the table lives with the adapter that implements it."""
        ...

    def static_code_way(self, payer_id: str | None) -> WayCode:
        """How this channel takes a payment at a static QR plate (QR_STATIC), given the payer's
        id when the cashier has one: `in_app_static_way` for an app that opens the cashier and
        authorises its payers, QR_STATIC as it is for an app that confirms the payment itself."""
        ...

    async def create(self, req: CreatePaymentRequest) -> CreatePaymentResult: ...

    async def barcode_pay(self, req: BarcodePayRequest) -> TradeResult: ...

    # `sub_merchant_id`: the order's (None in the direct form); the partner form asks in it.
    async def query(self, order_id: str, *, sub_merchant_id: str | None = None
                    ) -> TradeResult: ...

    async def close(self, order_id: str, *, sub_merchant_id: str | None = None) -> None: ...

    async def cancel(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        """Reverse a payer-code payment (撤销): closes if unpaid, refunds if paid."""
        ...

    async def refund(self, req: RefundRequest) -> RefundResult: ...

    async def refund_query(self, order_id: str, refund_id: str, *,
                           sub_merchant_id: str | None = None) -> RefundResult: ...

    async def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackResult:
        """Verify and decode a callback; raise FulemaError(CALLBACK_INVALID) if it fails."""
        ...

    def callback_ack(self, ok: bool) -> CallbackAck: ...

    async def download_statement(self, day: date) -> bytes: ...


class PayerAuth(Protocol):
    """A channel's silent payer authorisation (OAuth inside its app), for the static-QR cashier.

    The cashier (`web/oauth.py`) owns the channel-independent flow: the signed `state`, the
    redirect back, the payer token. A channel package that has one offers it from its `oauth`
    module (`build_payer_auth(settings, http)`); the registry builds it with the adapter and
    hands it out as `ChannelRegistry.payer_auth(name)`. A channel without one has no OAuth step.
    """

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        """The app's authorize page for a silent authorisation coming back to `redirect_uri`."""
        ...

    def code_of(self, params: Mapping[str, str]) -> str:
        """The one-time code the callback carries; FulemaError(VALIDATION_ERROR) when it carries
        none or was issued for another app."""
        ...

    async def payer_id(self, code: str) -> str:
        """Exchange the code server-to-server for the payer's id under our app: ChannelError
        when the app refuses the code, ChannelUnavailable when it cannot be asked."""
        ...


EndpointSettings = TypeVar("EndpointSettings", bound=BaseModel)


def with_backup(cfg: EndpointSettings, make: Callable[[EndpointSettings], Channel]
                ) -> list[tuple[str, Channel]]:
    """A channel's endpoints: the primary and, when its settings name a `backup_base_url`, the
    same adapter pointed there with the same keys. The registry guards each with its own
    circuit breaker and routes to a healthy one."""
    endpoints: list[tuple[str, Channel]] = [("primary", make(cfg))]
    backup_url = getattr(cfg, "backup_base_url", "")
    if backup_url:
        endpoints.append(("backup", make(cfg.model_copy(update={"base_url": backup_url}))))
    return endpoints
