"""Merchant API shapes for orders, refunds and notifications. Amounts are integer fen on the wire.

The `...Out` models are what the services return (typed views), so `/openapi.json` describes
every answer; the routes dump them with orjson, which keeps the wire format they always had.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from fulema.core.vocab import ChannelName, WayCode
from fulema.marketing.schemas import DiscountPicksIn
from fulema.payments.domain import OrderStatus, RefundStatus

_NO = r"^[A-Za-z0-9_\-|*@.]{6,64}$"


class CreateOrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out_trade_no: str = Field(pattern=_NO, description="Merchant's order number, unique per merchant")
    amount: StrictInt = Field(description="Integer fen, > 0")
    subject: str = Field(min_length=1, max_length=128)
    way_code: str = Field(description="QR_DYNAMIC | BARCODE | JSAPI | H5 | APP")
    channel: ChannelName | None = Field(default=None, description="Required except for BARCODE")
    auth_code: str | None = Field(default=None, max_length=32, description="Payer code (BARCODE)")
    payer_id: str | None = Field(default=None, max_length=128, description="openid/user id (JSAPI)")
    store_id: str | None = Field(default=None, max_length=40)
    notify_url: str | None = Field(default=None, max_length=512, pattern=r"^https?://")
    attach: str | None = Field(default=None, max_length=512)
    expire_seconds: int | None = Field(default=None, ge=60, le=7 * 24 * 3600)
    client_ip: str | None = Field(default=None, max_length=64)
    terminal_id: str | None = Field(default=None, max_length=40,
                                    description="The till or POS that took the payment (risk)")
    device_id: str | None = Field(default=None, max_length=64,
                                  description="The payer's device fingerprint, if known (risk)")
    quote: str | None = Field(default=None, max_length=4096,
                              description="quote_id from POST /api/v1/marketing/quote: the "
                                          "channel is then charged the quote's payable amount")
    discount: str | None = Field(default=None, max_length=16, description=(
        '"best": the order chooses the best discount itself and reserves it, in one request '
        "(no quote first); not with `quote`. A campaign spent meanwhile is left out (the order "
        "is made without it). Another value: DISCOUNT_REQUEST_INVALID. While the platform "
        "is degraded (`X-Fulema-Degraded: 1`) the order is made at the full amount"))
    discount_picks: DiscountPicksIn | None = Field(default=None, description=(
        'with "discount": "best": the payer\'s campaign, coupon and points (the quote\'s '
        "fields); a coupon or points need payer_id (PAYER_REQUIRED_FOR_DISCOUNT)"))


class DiscountLine(BaseModel):
    """One discount on an order (or a refund's share of it)."""

    kind: str = Field(description="campaign | coupon | points")
    funder: str = Field(description="platform | merchant")
    amount: int = Field(description="Integer fen")
    ref: str = Field(description="campaign id, coupon id, or the payer's points key")


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out_refund_no: str = Field(pattern=_NO)
    amount: StrictInt = Field(description="Integer fen, > 0")
    reason: str = Field(default="", max_length=128)
    notify_url: str | None = Field(default=None, max_length=512, pattern=r"^https?://")


class OrderOut(BaseModel):
    """An order as the merchant sees it; the body of every order answer."""

    order_id: str
    out_trade_no: str
    merchant_id: str
    status: OrderStatus
    amount: int = Field(description="Integer fen: the order's total as the merchant asked")
    payable_amount: int = Field(description="Integer fen the channel charged (amount less "
                                            "discounts)")
    discount_amount: int = Field(default=0, description="Integer fen of discounts")
    discounts: list[DiscountLine] = Field(default_factory=list)
    refunded_amount: int = Field(description="Integer fen refunded so far (in amount's terms)")
    channel: ChannelName
    way_code: WayCode
    subject: str
    code_url: str | None = None
    h5_url: str | None = None
    pay_params: dict[str, Any] | None = None
    channel_trade_no: str | None = None
    payer_id: str | None = None
    attach: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    expire_at: datetime
    paid_at: datetime | None = None
    created_at: datetime


class RefundOut(BaseModel):
    """A refund as the merchant sees it; the body of every refund answer."""

    refund_id: str
    out_refund_no: str
    order_id: str
    out_trade_no: str
    status: RefundStatus
    amount: int = Field(description="Integer fen, in the order's amount's terms")
    cash_amount: int = Field(description="Integer fen the payer gets back through the channel")
    discounts: list[DiscountLine] = Field(default_factory=list,
                                          description="each discount's share, back to its funder")
    reason: str
    channel_refund_no: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    succeeded_at: datetime | None = None
    created_at: datetime


class NotificationAttemptOut(BaseModel):
    """One POST to the merchant's notify_url (or the reason none could be made)."""

    at: datetime
    http_status: int | None = Field(description="None if no HTTP answer came (or none was sent)")
    error: str | None = Field(description="a short reason in our words: why the attempt failed "
                                          "or was not made (e.g. the outbound URL policy)")
    response_excerpt: str | None = Field(
        description="always null: the answer's text is not kept (an address's answer is not "
                    "shown back); `http_status` and `error` say what happened")
    duration_ms: int


class NotificationOut(BaseModel):
    notification_id: str
    kind: str
    url: str
    status: str = Field(description="PENDING | DELIVERED | FAILED")
    attempts: int = Field(description="how many attempts were made")
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    delivery_attempts: list[NotificationAttemptOut] = Field(description="oldest first")


class NotificationListOut(BaseModel):
    """An order's notifications, oldest first."""

    notifications: list[NotificationOut]
