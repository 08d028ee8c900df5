"""Per-merchant fee rates by channel, in basis points, falling back to channel defaults.

Operators set them; settlement and payments read them through `fee_rate_bps`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.merchants import domain
from fulema.merchants.lifecycle import lock_open, record
from fulema.merchants.models import FeeRate, Merchant


@dataclass(frozen=True)
class FeeRateView:
    channel: str
    bps: int
    is_default: bool


async def set_fee_rate(db: Database, *, merchant_id: str, channel: str, bps: int,
                       operator: str) -> FeeRateView:
    async with db.transaction() as s:
        return await set_fee_rate_in(s, merchant_id=merchant_id, channel=channel, bps=bps,
                                     operator=operator)


async def set_fee_rate_in(s: AsyncSession, *, merchant_id: str, channel: str, bps: int,
                          operator: str) -> FeeRateView:
    """The change in the caller's transaction (four eyes runs it in the approver's)."""
    domain.check_fee(channel, bps)
    m = await lock_open(s, merchant_id, "set a fee rate")
    row = await s.get(FeeRate, (m.id, channel))
    old = row.bps if row else domain.DEFAULT_FEE_BPS[channel]
    if row is None:
        s.add(FeeRate(merchant_id=m.id, channel=channel, bps=bps, updated_at=clock.now()))
    else:
        row.bps, row.updated_at = bps, clock.now()
    await record(s, m, "set_fee_rate", m.status, f"{channel} {old} -> {bps} bps", operator,
                 extra={"channel": channel, "bps": bps, "previous_bps": old})
    return FeeRateView(channel=channel, bps=bps, is_default=False)


async def fee_rate_bps(db: Database, *, merchant_id: str, channel: str) -> int:
    """The merchant's rate on `channel` in basis points (the channel default if not set)."""
    if channel not in domain.DEFAULT_FEE_BPS:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"channel: one of {', '.join(domain.FEE_CHANNELS)}")
    async with db.transaction() as s:
        row = (await s.execute(
            select(Merchant.id, FeeRate.bps)
            .outerjoin(FeeRate, (FeeRate.merchant_id == Merchant.id) & (FeeRate.channel == channel))
            .where(Merchant.id == merchant_id))).first()
    if row is None:
        raise FulemaError(ErrorCode.MERCHANT_NOT_FOUND)
    return int(row[1]) if row[1] is not None else domain.DEFAULT_FEE_BPS[channel]
