"""Marketing tables: campaigns (with their budgets), per-day budget counters, coupon templates,
coupons, the discounts applied to orders (redemptions) and the payers who have paid before.

Budgets are counters changed only by atomic conditional UPDATEs
(`remaining = remaining - :x WHERE remaining >= :x`), never read-modify-write, so no
interleaving of concurrent orders can take a budget below zero.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, MoneyType, UTCDateTime
from fulema.core.money import Money


class _RuleColumns:
    """The discount rule (domain.Rule) as columns, shared by campaigns and coupon templates."""

    discount_type: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[Money] = mapped_column(MoneyType())
    off: Mapped[Money] = mapped_column(MoneyType())
    percent_bps: Mapped[int] = mapped_column(Integer)
    cap: Mapped[Money | None] = mapped_column(MoneyType(), nullable=True)
    random_min: Mapped[Money] = mapped_column(MoneyType())
    random_max: Mapped[Money] = mapped_column(MoneyType())


class Campaign(_RuleColumns, Base):
    __tablename__ = "marketing_campaigns"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    funder: Mapped[str] = mapped_column(String(16))  # platform | merchant
    owner_merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # ACTIVE | PAUSED | ENDED
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Scope: None = every merchant / category / store / channel.
    merchant_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    mccs: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    store_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    channels: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    eligibility: Mapped[str] = mapped_column(String(16))  # ANY | NEW_PAYER
    exclusive: Mapped[bool] = mapped_column(Boolean)
    points_multiplier: Mapped[int] = mapped_column(Integer)
    budget_total: Mapped[Money] = mapped_column(MoneyType())
    budget_remaining: Mapped[Money] = mapped_column(MoneyType())
    daily_budget: Mapped[Money | None] = mapped_column(MoneyType(), nullable=True)
    # 1: budget_remaining is the one counter. N > 1: the budget is spread over N rows of
    # marketing_budget_shards (an order reserves from one no other order holds), and
    # budget_remaining holds what is not in a shard (what releases and refunds give back); the
    # remaining budget is budget_remaining + the shards' sum.
    budget_shards: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_marketing_campaigns_status_ends", "status", "ends_at"),)


class CampaignDay(Base):
    """What one campaign has reserved or spent on one day (for its daily budget)."""

    __tablename__ = "marketing_campaign_days"

    campaign_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD (UTC)
    used: Mapped[int] = mapped_column(BigInteger)  # fen reserved or consumed that day


SHARD_TAKE_INDEX = "ix_marketing_budget_shards_take"


class BudgetShard(Base):
    """One slice of a sharded campaign's budget: concurrent orders of one campaign reserve from
    different rows instead of queueing on the campaign's row (budget.py). The index on
    (campaign_id, remaining, shard) is how an order's locking pick reads only the shards that
    cover its discount, never a spent one (budget._pick)."""

    __tablename__ = "marketing_budget_shards"

    campaign_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    remaining: Mapped[Money] = mapped_column(MoneyType())

    __table_args__ = (Index(SHARD_TAKE_INDEX, "campaign_id", "remaining", "shard"),)


class CouponTemplate(_RuleColumns, Base):
    __tablename__ = "marketing_coupon_templates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    funder: Mapped[str] = mapped_column(String(16))
    owner_merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # ACTIVE | ENDED
    merchant_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    channels: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    exclusive: Mapped[bool] = mapped_column(Boolean)
    valid_days: Mapped[int] = mapped_column(Integer)
    per_payer_limit: Mapped[int] = mapped_column(Integer)
    per_day_limit: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    issued: Mapped[int] = mapped_column(Integer)
    # Grant on event (None: claimed or granted by hand only): after a `grant_event` (only
    # "payment.succeeded") of at least `grant_min_amount` at `grant_merchant_ids` (None: the
    # template's own merchant scope), one coupon to that payer.
    grant_event: Mapped[str | None] = mapped_column(String(32), nullable=True)
    grant_min_amount: Mapped[Money | None] = mapped_column(MoneyType(), nullable=True)
    grant_merchant_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_marketing_coupon_templates_grant", "grant_event", "status"),)


class Coupon(Base):
    """AVAILABLE -> LOCKED (an order uses it) -> USED (paid) or back to AVAILABLE (failed,
    closed); AVAILABLE -> EXPIRED | REVOKED."""

    __tablename__ = "marketing_coupons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(40))
    payer_key: Mapped[str] = mapped_column(String(160))
    state: Mapped[str] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(16))  # CLAIM | GRANT
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    claimed_day: Mapped[str] = mapped_column(String(10))
    # The paid order a grant on event issued it for: unique per template, so one payment
    # grants at most one coupon of a template, whatever the deliveries.
    source_order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("template_id", "source_order_id",
                         name="uq_marketing_coupons_template_source"),
        Index("ix_marketing_coupons_payer", "payer_key", "state"),
        Index("ix_marketing_coupons_template_payer", "template_id", "payer_key"),
        Index("ix_marketing_coupons_state_expires", "state", "expires_at"),
    )


class Redemption(Base):
    """One discount line of one order: reserved when the order is created, consumed when it is
    paid, released when it fails or closes; `refunded` is the share refunds gave back."""

    __tablename__ = "marketing_redemptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    merchant_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))  # campaign | coupon | points
    ref: Mapped[str] = mapped_column(String(40))
    funder: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Money] = mapped_column(MoneyType())
    refunded: Mapped[Money] = mapped_column(MoneyType())
    points: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    seed: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(16))  # RESERVED | CONSUMED | RELEASED
    overrun: Mapped[bool] = mapped_column(Boolean)  # consumed after release, budget short
    day: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("order_id", "kind", name="uq_marketing_redemptions_order_kind"),
        Index("ix_marketing_redemptions_ref_day", "ref", "day"),
    )


class KnownPayer(Base):
    """A payer who has completed a payment: no longer a 'new payer' for campaigns."""

    __tablename__ = "marketing_known_payers"

    payer_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    first_paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
