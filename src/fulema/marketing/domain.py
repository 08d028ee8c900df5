"""Pure discount rules: what each discount type takes off an amount, how discounts stack, and
how a refund of a discounted order splits between the payer's cash and each discount's funder.

No I/O here: every rule is a plain function a unit test (and hypothesis) runs without a
database. Rounding is explicit and always in fen:
- percent-off rounds DOWN to the fen (the funder never pays a fraction it did not promise);
- points deduction rounds DOWN to whole fen (and so to whole multiples of the points rate);
- every discount is capped so that the payer still pays at least 1 fen (a channel cannot
  charge zero), so `0 <= discount <= amount - 1` and `payable + discount == amount`;
- refund shares are cumulative and rounded half-up, so the shares of all refunds of an order
  sum exactly to what was paid and discounted, the last refund taking the remainder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money

MIN_PAYABLE = Money(1)
_ZERO = Money(0)  # Money is frozen: one shared default is safe


class DiscountType(StrEnum):
    AMOUNT_OFF = "AMOUNT_OFF"  # 满减: spend >= threshold, take `off`
    PERCENT_OFF = "PERCENT_OFF"  # 满折: spend >= threshold, take percent (bps), at most `cap`
    RANDOM_OFF = "RANDOM_OFF"  # 随机减: a random amount in [min, max] drawn from a stored seed
    INSTANT_OFF = "INSTANT_OFF"  # 立减: take `off`, no threshold


class Kind(StrEnum):
    """What a discount line is, as the order view and events name it."""

    CAMPAIGN = "campaign"
    COUPON = "coupon"
    POINTS = "points"


class Funder(StrEnum):
    PLATFORM = "platform"  # the bank
    MERCHANT = "merchant"


@dataclass(frozen=True)
class Rule:
    """One discount type and its parameters (all amounts in fen, percent in basis points)."""

    type: DiscountType
    threshold: Money = _ZERO
    off: Money = _ZERO
    percent_bps: int = 0
    cap: Money | None = None
    random_min: Money = _ZERO
    random_max: Money = _ZERO

    def check(self) -> None:
        """Refuses a rule that could never be applied or could take a negative amount."""
        def bad(msg: str) -> FulemaError:
            return FulemaError(ErrorCode.VALIDATION_ERROR, msg)
        if self.threshold.fen < 0:
            raise bad("threshold must be >= 0")
        if self.type in (DiscountType.AMOUNT_OFF, DiscountType.INSTANT_OFF):
            if self.off.fen <= 0:
                raise bad("off must be at least 1 fen")
        elif self.type == DiscountType.PERCENT_OFF:
            if not 0 < self.percent_bps < 10000:
                raise bad("percent_bps must be between 1 and 9999")
            if self.cap is not None and self.cap.fen <= 0:
                raise bad("cap must be at least 1 fen")
        elif (self.type == DiscountType.RANDOM_OFF
              and not 0 < self.random_min.fen <= self.random_max.fen):
            raise bad("random_min must be >= 1 fen and <= random_max")


def random_draw(seed: str, low: Money, high: Money) -> Money:
    """A uniform-enough draw in [low, high] that anyone can reproduce from `seed` (stored with
    the redemption for audit): SHA-256 of the seed, modulo the range. Not the `random` module,
    whose algorithm is not a promise across Python versions."""
    span = high.fen - low.fen + 1
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    return Money(low.fen + digest % span)


def rule_discount(rule: Rule, amount: Money, *, seed: str = "") -> Money:
    """What `rule` takes off `amount` (0 when the threshold is not met), before the
    at-least-1-fen cap that `cap_to_payable` applies."""
    if amount.fen <= 0:
        return Money(0)
    if rule.type != DiscountType.INSTANT_OFF and amount < rule.threshold:
        return Money(0)
    if rule.type in (DiscountType.AMOUNT_OFF, DiscountType.INSTANT_OFF):
        off = rule.off
    elif rule.type == DiscountType.PERCENT_OFF:
        off = Money(amount.fen * rule.percent_bps // 10000)  # rounds down
        if rule.cap is not None and off > rule.cap:
            off = rule.cap
    else:
        off = random_draw(seed, rule.random_min, rule.random_max)
    return cap_to_payable(off, amount)


def cap_to_payable(off: Money, amount: Money) -> Money:
    """`off`, but never so much that less than 1 fen is left to pay, and never negative."""
    most = max(0, amount.fen - MIN_PAYABLE.fen)
    return Money(max(0, min(off.fen, most)))


def threshold_met(rule: Rule, amount: Money) -> bool:
    return rule.type == DiscountType.INSTANT_OFF or amount >= rule.threshold


def points_deduction(*, amount: Money, balance: int, wanted: int | None, points_per_fen: int,
                     max_bps: int) -> tuple[int, Money]:
    """(points used, fen off) for paying part of `amount` with points.

    At most `max_bps` of the amount (rounded down), at most what the balance covers, at most
    what the payer asked for (`wanted` points; None = as many as allowed), in whole fen, and
    leaving at least 1 fen to pay. Points used = fen off x points_per_fen exactly."""
    if points_per_fen <= 0:
        raise ValueError("points_per_fen must be positive")
    if wanted is not None and wanted < 0:
        raise FulemaError(ErrorCode.INVALID_POINTS, "points must not be negative")
    if wanted is not None and wanted > balance:
        raise FulemaError(ErrorCode.POINTS_INSUFFICIENT,
                          f"{wanted} points asked, {balance} available")
    limit_fen = amount.fen * max_bps // 10000
    usable = balance if wanted is None else wanted
    fen = min(limit_fen, usable // points_per_fen)
    fen = cap_to_payable(Money(fen), amount).fen
    return fen * points_per_fen, Money(fen)


@dataclass(frozen=True)
class Line:
    """One discount applied to an order: the event/view shape `{kind, funder, amount, ref}`."""

    kind: Kind
    funder: Funder
    amount: Money
    ref: str

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "funder": self.funder.value, "amount": self.amount.fen,
                "ref": self.ref}


@dataclass(frozen=True)
class Breakdown:
    amount: Money
    lines: tuple[Line, ...]

    @property
    def discount(self) -> Money:
        return Money(sum(line.amount.fen for line in self.lines))

    @property
    def payable(self) -> Money:
        return self.amount - self.discount


@dataclass(frozen=True)
class Candidate:
    """A campaign or coupon that could apply, with the discount it would give on its own base."""

    kind: Kind
    ref: str
    funder: Funder
    rule: Rule
    exclusive: bool = False  # refuses to stack with the other kind (campaign <-> coupon)
    seed: str = ""


def stack(amount: Money, campaign: Candidate | None, coupon: Candidate | None
          ) -> Breakdown | None:
    """The breakdown of one campaign and one coupon on `amount`, or None if they may not stack
    or one of them gives nothing. The campaign applies to the original amount; the coupon's
    threshold and percent apply to what is left after the campaign."""
    if campaign is not None and coupon is not None and (campaign.exclusive or coupon.exclusive):
        return None
    lines: list[Line] = []
    left = amount
    for cand in (campaign, coupon):
        if cand is None:
            continue
        off = rule_discount(cand.rule, left, seed=cand.seed)
        if off.fen == 0:
            return None
        lines.append(Line(cand.kind, cand.funder, off, cand.ref))
        left = left - off
    return Breakdown(amount, tuple(lines))


def best(amount: Money, campaigns: list[Candidate], coupons: list[Candidate]) -> Breakdown:
    """The largest discount among every allowed combination (at most one campaign and one
    coupon); ties go to the earlier candidate (callers list them in a stable order)."""
    winner = Breakdown(amount, ())
    for camp in [None, *campaigns]:
        for coup in [None, *coupons]:
            found = stack(amount, camp, coup)
            if found is not None and found.discount > winner.discount:
                winner = found
    return winner


def with_points(breakdown: Breakdown, points_line: Line | None) -> Breakdown:
    if points_line is None or points_line.amount.fen == 0:
        return breakdown
    return Breakdown(breakdown.amount, (*breakdown.lines, points_line))


# --------------------------------------------------------------------------- refund split


def _half_up(numerator: int, denominator: int) -> int:
    return int((Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), ROUND_HALF_UP))


def cumulative_shares(refunded: int, weights: list[int]) -> list[int]:
    """How much of `refunded` (cumulative, 0..sum(weights)) falls to each part, in proportion
    to `weights`, each rounded half-up by peeling off one part at a time. Every share is
    non-decreasing in `refunded` and grows by at most what `refunded` grows (so the share of one
    refund, the difference of two cumulative splits, is never negative); at the full amount
    every part gets exactly its weight."""
    total = sum(weights)
    if not 0 <= refunded <= total:
        raise ValueError("refunded must be within 0..sum(weights)")
    shares: list[int] = []
    rest_amount, rest_weight = refunded, total
    for w in weights[:-1]:
        share = 0 if rest_weight == 0 else _half_up(rest_amount * w, rest_weight)
        shares.append(share)
        rest_amount -= share
        rest_weight -= w
    shares.append(rest_amount)
    return shares


def split_refund(*, refund: int, weights: list[int], so_far: list[int]) -> list[int]:
    """One refund's share for each part (cash first, then each discount line).

    `weights` are what each part was worth in the order (cash = payable, then each discount);
    `so_far` what earlier refunds (succeeded or in flight) already took from each part. The
    cumulative rule makes consecutive refunds telescope, and a refund that takes the order to
    its full amount takes exactly what is left of every part. Should earlier refunds have
    failed in between, shares are clamped to what is left and the difference moved, cash first,
    so the shares still sum to `refund` and no part ever returns more than it was worth."""
    if refund <= 0:
        raise ValueError("refund must be positive")
    left = [w - s for w, s in zip(weights, so_far, strict=True)]
    if any(x < 0 for x in left) or refund > sum(left):
        raise ValueError("refund exceeds what is left")
    target = cumulative_shares(sum(so_far) + refund, weights)
    shares = [min(max(0, t - s), room) for t, s, room in zip(target, so_far, left, strict=True)]
    diff = refund - sum(shares)
    for i in range(len(shares)):
        if diff == 0:
            break
        step = min(diff, left[i] - shares[i]) if diff > 0 else -min(-diff, shares[i])
        shares[i] += step
        diff -= step
    return shares


@dataclass(frozen=True)
class Scope:
    """Where a discount applies; None in a field means 'any'."""

    merchant_ids: tuple[str, ...] | None = None
    mccs: tuple[str, ...] | None = None
    store_ids: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None

    def covers(self, *, merchant_id: str, mcc: str | None, store_id: str | None,
               channel: str) -> bool:
        return ((self.merchant_ids is None or merchant_id in self.merchant_ids)
                and (self.mccs is None or (mcc is not None and mcc in self.mccs))
                and (self.store_ids is None or (store_id is not None
                                                and store_id in self.store_ids))
                and (self.channels is None or channel in self.channels))
