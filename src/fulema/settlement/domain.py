"""Settlement rules with no I/O: cycles, the business-day calendar, a batch's figures and the
payout state machine.

T+n counts business days from the operator's calendar (Monday to Friday, minus holidays, plus
make-up working days); D+n counts natural days. A trade of day T under T+n is due on the n-th
business day after T (T+0: T itself if it is a business day, else the next one).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from fulema.core.errors import ErrorCode, FulemaError

CYCLES = ("T+0", "T+1", "D+0", "D+1")
_CYCLE = re.compile(r"^([TD])\+([0-9])$")
SEARCH_DAYS = 60  # no calendar has two months without a business day


class DayKind(enum.StrEnum):
    HOLIDAY = "HOLIDAY"  # a weekday with no settlement (法定节假日)
    WORKDAY = "WORKDAY"  # a weekend day that is a working day (调休补班)


@dataclass(frozen=True)
class Cycle:
    basis: str  # "T" business days, "D" natural days
    days: int

    @classmethod
    def parse(cls, text: str) -> Cycle:
        m = _CYCLE.match(text or "")
        if m is None or text not in CYCLES:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, f"cycle: one of {', '.join(CYCLES)}")
        return cls(basis=m.group(1), days=int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.basis}+{self.days}"


SAME_DAY = Cycle("T", 0)


class Calendar:
    """Business days: weekdays that are not holidays, and make-up working days."""

    def __init__(self, overrides: Mapping[date, DayKind] | None = None) -> None:
        self.overrides = dict(overrides or {})

    def is_business_day(self, day: date) -> bool:
        kind = self.overrides.get(day)
        if kind is DayKind.HOLIDAY:
            return False
        if kind is DayKind.WORKDAY:
            return True
        return day.weekday() < 5

    def next_business_day(self, day: date, *, inclusive: bool) -> date:
        d = day if inclusive else day + timedelta(days=1)
        for _ in range(SEARCH_DAYS):
            if self.is_business_day(d):
                return d
            d += timedelta(days=1)
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"no business day within "
                          f"{SEARCH_DAYS} days of {day}")


def due_date(trade_date: date, cycle: Cycle, cal: Calendar) -> date:
    """When the trades of `trade_date` are paid out under `cycle`."""
    if cycle.basis == "D":
        return trade_date + timedelta(days=cycle.days)
    d = cal.next_business_day(trade_date, inclusive=True) if cycle.days == 0 else trade_date
    for _ in range(cycle.days):
        d = cal.next_business_day(d, inclusive=False)
    return d


def due_through(run_date: date, cycle: Cycle, cal: Calendar) -> date | None:
    """The last trade date whose trades are due by `run_date` (due dates never go backwards
    as the trade date moves on, so it is the first one found walking back)."""
    if cycle.basis == "D":
        return run_date - timedelta(days=cycle.days)
    d = run_date
    for _ in range(SEARCH_DAYS):
        if due_date(d, cycle, cal) <= run_date:
            return d
        d -= timedelta(days=1)
    return None


class BatchStatus(enum.StrEnum):
    SETTLED = "SETTLED"  # net > 0: settled, a payout follows
    HELD = "HELD"  # merchant frozen or on a settlement hold: nothing moves, items stay open
    CARRIED = "CARRIED"  # net <= 0: nothing paid, items stay open for the next run


@dataclass(frozen=True)
class BatchFigures:
    """A batch's figures in fen, each as a merchant reads it (positive numbers)."""

    gross: int
    refunds: int
    fees: int
    discounts: int  # discounts the merchant funded, net of those refunds gave back
    other: int  # payouts returned to the balance, reconciliation adjustments
    net: int

    @classmethod
    def from_items(cls, by_kind: Mapping[str, int]) -> BatchFigures:
        """From the debit-positive sums of a merchant's payable lines by kind."""
        g = by_kind.get
        gross = -g("gross", 0)
        refunds = g("refund", 0) + g("refund_in_transit", 0)  # held while the channel works
        fees = g("fee", 0) + g("fee_back", 0)
        discounts = g("discount", 0) + g("discount_back", 0)
        other = -(g("payout_returned", 0) + g("adjustment", 0))
        net = -sum(by_kind.values())
        assert net == gross - refunds - fees - discounts + other, by_kind
        return cls(gross=gross, refunds=refunds, fees=fees, discounts=discounts, other=other,
                   net=net)


def batch_status(figures: BatchFigures, *, hold_reason: str | None) -> BatchStatus:
    if hold_reason:
        return BatchStatus.HELD
    return BatchStatus.SETTLED if figures.net > 0 else BatchStatus.CARRIED


def hold_reason(*, merchant_status: str, settlement_hold_reason: str | None) -> str | None:
    """Why a merchant's money must not leave now, if it must not."""
    if merchant_status == "FROZEN":
        return "merchant frozen"
    if settlement_hold_reason:
        return settlement_hold_reason
    return None


class PayoutStatus(enum.StrEnum):
    PENDING = "PENDING"  # to send (first attempt, or a new attempt after a definite failure)
    UNKNOWN = "UNKNOWN"  # sent, outcome unknown: ask the bank, never send a new attempt
    SUCCEEDED = "SUCCEEDED"
    RETURNED = "RETURNED"  # failed for good: the amount went back to the merchant's balance


FINAL = frozenset({PayoutStatus.SUCCEEDED, PayoutStatus.RETURNED})


def request_id(payout_id: str, attempt: int) -> str:
    """The bank's idempotency key of an attempt: the same attempt sent twice is paid once."""
    return f"{payout_id}-{attempt}"
