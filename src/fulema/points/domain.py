"""Pure points rules: how many points a payment earns, which lots a redemption takes (first to
expire first), and how much a refund claws back. Points are whole numbers; every division
rounds down (a payer never earns a fraction, a claw-back never takes more than was earned)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fulema.core.errors import ErrorCode, FulemaError


@dataclass(frozen=True)
class LotLeft:
    id: str
    remaining: int
    expires_at: datetime


def earned(*, paid_fen: int, per_yuan: int, multiplier: int = 1) -> int:
    """Points for a payment of `paid_fen` cash: `per_yuan` per whole yuan, times the campaign
    multiplier, rounded down (12.99 yuan at 1 point per yuan earns 12)."""
    if paid_fen <= 0 or per_yuan <= 0:
        return 0
    return paid_fen * per_yuan * max(1, multiplier) // 100


def take(lots: list[LotLeft], points: int) -> list[tuple[str, int]]:
    """Which lots `points` come from: the first to expire first (ties by id), whole lots until
    the last. POINTS_INSUFFICIENT if the lots do not hold enough."""
    if points < 0:
        raise FulemaError(ErrorCode.INVALID_POINTS, "points must not be negative")
    if sum(lot.remaining for lot in lots) < points:
        raise FulemaError(ErrorCode.POINTS_INSUFFICIENT,
                          f"{points} points asked, {sum(x.remaining for x in lots)} available")
    taken: list[tuple[str, int]] = []
    need = points
    for lot in sorted(lots, key=lambda x: (x.expires_at, x.id)):
        if need == 0:
            break
        n = min(need, lot.remaining)
        if n > 0:
            taken.append((lot.id, n))
            need -= n
    return taken


def claw_back_due(*, points: int, amount_fen: int, refunded_fen: int, clawed: int) -> int:
    """What a refund claws back of the points a payment earned: cumulative, in proportion to
    what has been refunded (rounded down), minus what earlier refunds already took; a full
    refund takes back everything."""
    if amount_fen <= 0:
        return 0
    refunded_fen = min(refunded_fen, amount_fen)
    target = points if refunded_fen == amount_fen else points * refunded_fen // amount_fen
    return max(0, target - clawed)
