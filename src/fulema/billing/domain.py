"""Pure rules of bill payment and charity: the bill payment's state machine, the write-off
retry schedule, which discounts a bill may take, and a charity project's window and progress.

A bill is paid in full or not at all: the biller writes off the bill's whole amount, so the
payer's cash plus bank-funded (platform) discounts must equal it; a merchant-funded discount
would leave the biller short, and is refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from fulema.core.errors import ErrorCode, FulemaError


class BillPaymentStatus(StrEnum):
    CREATED = "CREATED"  # the order is open: waiting for the payer
    PAID = "PAID"  # the money is in: the write-off is due (retried until its deadline)
    WRITTEN_OFF = "WRITTEN_OFF"  # the biller has written the bill off (销账): done
    REFUNDING = "REFUNDING"  # past the deadline without a write-off: the money goes back
    REFUNDED = "REFUNDED"  # the payer has the money back; the bill is still unpaid
    CLOSED = "CLOSED"  # the order failed or closed unpaid


_MOVES: dict[BillPaymentStatus, frozenset[BillPaymentStatus]] = {
    BillPaymentStatus.CREATED: frozenset({BillPaymentStatus.PAID, BillPaymentStatus.CLOSED}),
    BillPaymentStatus.PAID: frozenset({BillPaymentStatus.WRITTEN_OFF,
                                       BillPaymentStatus.REFUNDING}),
    BillPaymentStatus.REFUNDING: frozenset({BillPaymentStatus.REFUNDED,
                                            BillPaymentStatus.WRITTEN_OFF}),
    BillPaymentStatus.WRITTEN_OFF: frozenset(),
    BillPaymentStatus.REFUNDED: frozenset(),
    BillPaymentStatus.CLOSED: frozenset(),
}

# While a payment is in one of these, the bill is taken: nobody may start another payment.
HOLDS_THE_BILL = frozenset({BillPaymentStatus.CREATED, BillPaymentStatus.PAID,
                            BillPaymentStatus.WRITTEN_OFF, BillPaymentStatus.REFUNDING})


def transition(before: BillPaymentStatus, after: BillPaymentStatus) -> BillPaymentStatus:
    if after not in _MOVES[before]:
        raise FulemaError(ErrorCode.ILLEGAL_STATE_TRANSITION,
                          f"a bill payment cannot go from {before} to {after}")
    return after


def live_key(biller_code: str, bill_id: str, status: BillPaymentStatus) -> str | None:
    """The value of the unique column that lets one payment at a time hold a bill: set while
    the payment holds it, NULL once it no longer does (closed unpaid, or refunded)."""
    return f"{biller_code}:{bill_id}" if status in HOLDS_THE_BILL else None


def writeoff_retry_delay(attempts: int, base_seconds: float) -> timedelta:
    """After the n-th failed write-off: the base, doubling, at most ten times the base."""
    return timedelta(seconds=base_seconds * min(2 ** max(0, attempts - 1), 10))


def check_bill_amount(bill_fen: int, paid_fen: int) -> None:
    if paid_fen != bill_fen:
        raise FulemaError(ErrorCode.BILL_AMOUNT_MISMATCH,
                          f"the bill is {bill_fen} fen; {paid_fen} fen was offered")


def merchant_funded_discount(discounts: list[dict[str, Any]]) -> int:
    """Fen of discounts the biller would have to fund (a bill refuses them: the biller writes
    off the whole bill, so only bank-funded discounts may apply)."""
    return sum(int(d.get("amount", 0)) for d in discounts if d.get("funder") == "merchant")


# --- charity ----------------------------------------------------------------------------------


def check_project_open(*, status: str, starts_at: datetime, ends_at: datetime,
                       now: datetime) -> None:
    if status != "OPEN" or not starts_at <= now < ends_at:
        raise FulemaError(ErrorCode.CHARITY_PROJECT_CLOSED,
                          "the project takes no donations now (closed, or outside its window)")


def progress_bps(raised_fen: int, target_fen: int) -> int:
    """Raised over target in basis points, rounded down (10000 = the target reached; more
    is possible: a project may raise above its target)."""
    if target_fen <= 0:
        raise ValueError("target must be positive")
    return raised_fen * 10_000 // target_fen


def donor_shown(name: str | None, anonymous: bool) -> str:
    """What the certificate and the project page show for a donor."""
    if anonymous or not name:
        return "爱心人士"
    return name
