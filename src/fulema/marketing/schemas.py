"""Marketing API shapes. Amounts are integer fen; percentages are basis points."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from fulema.core.vocab import ChannelName

DiscountTypeName = Literal["AMOUNT_OFF", "PERCENT_OFF", "RANDOM_OFF", "INSTANT_OFF"]


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    discount_type: DiscountTypeName = Field(description="AMOUNT_OFF 满减 | PERCENT_OFF 满折 | "
                                                        "RANDOM_OFF 随机减 | INSTANT_OFF 立减")
    threshold: StrictInt = Field(default=0, ge=0, description="spend at least this (fen)")
    off: StrictInt = Field(default=0, ge=0, description="AMOUNT_OFF / INSTANT_OFF: fen off")
    percent_bps: StrictInt = Field(default=0, ge=0, le=9999, description="PERCENT_OFF: 1200 = 12%")
    cap: StrictInt | None = Field(default=None, ge=1, description="PERCENT_OFF: at most (fen)")
    random_min: StrictInt = Field(default=0, ge=0, description="RANDOM_OFF: lowest fen off")
    random_max: StrictInt = Field(default=0, ge=0, description="RANDOM_OFF: highest fen off")


class CampaignIn(RuleIn):
    name: str = Field(min_length=1, max_length=128)
    funder: Literal["platform", "merchant"]
    owner_merchant_id: str | None = Field(default=None, max_length=40,
                                          description="required when funder is merchant")
    starts_at: datetime
    ends_at: datetime
    merchant_ids: list[str] | None = Field(default=None, description="None: every merchant")
    mccs: list[str] | None = Field(default=None, description="merchant categories; None: all")
    store_ids: list[str] | None = None
    channels: list[ChannelName] | None = Field(default=None, description="e.g. ['ecny']")
    eligibility: Literal["ANY", "NEW_PAYER"] = "ANY"
    exclusive: bool = Field(default=False, description="never stacks with a coupon")
    points_multiplier: StrictInt = Field(default=1, ge=1, le=100)
    budget_total: StrictInt = Field(gt=0, description="fen")
    daily_budget: StrictInt | None = Field(default=None, gt=0, description="fen per UTC day")
    budget_shards: StrictInt = Field(default=1, ge=1, le=64, description=(
        "spread the budget over this many counters so concurrent orders of the campaign do "
        "not queue on one row (docs/marketing.md); 1: one counter"))


class CampaignOut(BaseModel):
    campaign_id: str
    name: str
    funder: str
    owner_merchant_id: str | None
    status: str
    discount_type: str
    threshold: int
    off: int
    percent_bps: int
    cap: int | None
    random_min: int
    random_max: int
    starts_at: datetime
    ends_at: datetime
    merchant_ids: list[str] | None
    mccs: list[str] | None
    store_ids: list[str] | None
    channels: list[str] | None
    eligibility: str
    exclusive: bool
    points_multiplier: int
    budget_total: int
    budget_remaining: int
    daily_budget: int | None
    budget_shards: int = 1
    created_at: datetime


class CampaignDayOut(BaseModel):
    day: str
    redemptions: int = Field(description="orders paid with the campaign that day")
    spend: int = Field(description="fen consumed that day, net of refunds")
    reserved: int = Field(description="fen held by unpaid orders created that day")
    daily_remaining: int | None = Field(description="what is left of the daily budget")


class CampaignStatsOut(BaseModel):
    campaign: CampaignOut
    spend: int
    redemptions: int
    remaining: int
    days: list[CampaignDayOut]


class CampaignListOut(BaseModel):
    data: list[CampaignOut]


class GrantRuleIn(BaseModel):
    """Grant on event: after a paid order of at least `min_amount` fen at a merchant in
    `merchant_ids` (None: the template's own merchant scope), one coupon to that payer, at most
    once per order and within the template's limits and quantity."""

    model_config = ConfigDict(extra="forbid")

    on: str = Field(default="payment.succeeded", max_length=32,
                    description="the event; only payment.succeeded")
    min_amount: StrictInt = Field(default=1, description="the order's amount at least (fen)")
    merchant_ids: list[str] | None = Field(
        default=None, description="None: every merchant the template's coupons are for")


class GrantRuleOut(BaseModel):
    on: str
    min_amount: int
    merchant_ids: list[str] | None


class CouponTemplateIn(RuleIn):
    name: str = Field(min_length=1, max_length=128)
    funder: Literal["platform", "merchant"]
    owner_merchant_id: str | None = Field(default=None, max_length=40)
    merchant_ids: list[str] | None = None
    channels: list[ChannelName] | None = None
    exclusive: bool = Field(default=False, description="never stacks with a campaign")
    valid_days: StrictInt = Field(default=30, ge=1, le=3650)
    per_payer_limit: StrictInt = Field(default=1, ge=1)
    per_day_limit: StrictInt = Field(default=1, ge=1)
    quantity: StrictInt = Field(gt=0, description="coupons this template may issue")
    grant: GrantRuleIn | None = Field(default=None, description="grant on event; None: "
                                                                "claim and operator grant only")


class CouponTemplateOut(BaseModel):
    template_id: str
    name: str
    funder: str
    status: str
    discount_type: str
    threshold: int
    off: int
    percent_bps: int
    cap: int | None
    merchant_ids: list[str] | None
    channels: list[str] | None
    exclusive: bool
    valid_days: int
    per_payer_limit: int
    per_day_limit: int
    quantity: int
    issued: int
    grant: GrantRuleOut | None = None
    created_at: datetime


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ChannelName
    payer_id: str = Field(min_length=1, max_length=128)


class ClaimBody(GrantBody):
    template_id: str = Field(min_length=1, max_length=40)


class CouponOut(BaseModel):
    coupon_id: str
    template_id: str
    state: str
    valid_from: datetime
    expires_at: datetime
    order_id: str | None


class CouponListOut(BaseModel):
    data: list[CouponOut]


class DiscountPicksIn(BaseModel):
    """The payer's picks, on a quote and on an order made with `"discount": "best"` (None and
    false: the platform chooses the best)."""

    model_config = ConfigDict(extra="forbid")

    campaign_id: str | None = Field(default=None, max_length=40, description="the payer's pick")
    coupon_id: str | None = Field(default=None, max_length=40, description="the payer's pick")
    points: StrictInt | None = Field(default=None, description="points to use; omit for none")
    max_points: bool = Field(default=False, description="use as many points as allowed")


class QuoteBody(DiscountPicksIn):
    amount: StrictInt = Field(description="the order's amount in fen")
    channel: ChannelName
    payer_id: str | None = Field(default=None, max_length=128,
                                 description="needed for coupons, points, new-payer campaigns")
    store_id: str | None = Field(default=None, max_length=40)


class DiscountOut(BaseModel):
    kind: str = Field(description="campaign | coupon | points")
    funder: str = Field(description="platform | merchant")
    amount: int = Field(description="fen")
    ref: str = Field(description="campaign id, coupon id, or points account id")
    points: int | None = Field(default=None, description="points used (kind points)")


class QuoteOut(BaseModel):
    quote_id: str = Field(description="pass as `quote` when creating the order")
    amount: int
    discount_amount: int
    payable_amount: int
    discounts: list[DiscountOut]
    points_balance: int | None = Field(description="the payer's points (None without a payer)")
    expires_at: datetime
    degraded: bool = Field(default=False, description=(
        "true: the platform is shedding optional work, so no discount was looked up (the "
        "quote is the full amount, `X-Fulema-Degraded: 1`); quote again later for discounts"))
