"""Pure payment rules: order and refund state machines, refundable amounts, request checks.

No I/O here, so every rule runs in a unit test without a database. The service layer asks
these functions before it changes a row; an illegal transition is refused here, not papered
over later.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money


class OrderStatus(StrEnum):
    CREATED = "CREATED"  # recorded, not yet accepted by the channel
    PAYING = "PAYING"  # the channel has it; waiting for the payer
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CLOSED = "CLOSED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


class RefundStatus(StrEnum):
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.CREATED: frozenset({OrderStatus.PAYING, OrderStatus.SUCCESS, OrderStatus.FAILED,
                                    OrderStatus.CLOSED}),
    OrderStatus.PAYING: frozenset({OrderStatus.SUCCESS, OrderStatus.FAILED, OrderStatus.CLOSED}),
    OrderStatus.SUCCESS: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PARTIALLY_REFUNDED: frozenset({OrderStatus.PARTIALLY_REFUNDED,
                                               OrderStatus.REFUNDED}),
    OrderStatus.FAILED: frozenset(),
    OrderStatus.CLOSED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}

REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PROCESSING: frozenset({RefundStatus.SUCCESS, RefundStatus.FAILED}),
    RefundStatus.SUCCESS: frozenset(),
    RefundStatus.FAILED: frozenset(),
}

S = TypeVar("S", OrderStatus, RefundStatus)

PAID_STATUSES = frozenset({OrderStatus.SUCCESS, OrderStatus.PARTIALLY_REFUNDED,
                           OrderStatus.REFUNDED})
OPEN_STATUSES = frozenset({OrderStatus.CREATED, OrderStatus.PAYING})


def allowed(current: S, target: S) -> bool:
    """Whether the table (ORDER_TRANSITIONS or REFUND_TRANSITIONS, by the states' type) lets
    `current` move to `target`; for callers that record a refused result instead of failing."""
    if isinstance(current, OrderStatus):
        return target in ORDER_TRANSITIONS[current]
    return target in REFUND_TRANSITIONS[current]


def transition(current: S, target: S) -> S:
    """The one legality check for every state change, ORM or Core: `target` if the table
    allows the move, else ILLEGAL_STATE_TRANSITION. Both write paths ask this before they
    touch a row, so no statement can move a state the table forbids."""
    if not allowed(current, target):
        what = "order" if isinstance(current, OrderStatus) else "refund"
        raise FulemaError(ErrorCode.ILLEGAL_STATE_TRANSITION,
                          f"{what} cannot go from {current} to {target}")
    return target


def check_amount(amount: Money, *, max_fen: int) -> None:
    if amount.fen <= 0:
        raise FulemaError(ErrorCode.INVALID_AMOUNT, "amount must be at least 1 fen")
    if amount.fen > max_fen:
        raise FulemaError(ErrorCode.AMOUNT_OUT_OF_RANGE,
                          f"amount {amount.fen} fen is above the per-order limit {max_fen}")


def refundable(*, paid: Money, refunded: Money, pending: Money) -> Money:
    """What can still be refunded: paid minus refunds that succeeded or are in flight."""
    return paid - refunded - pending


def check_refund(*, status: OrderStatus, paid: Money, refunded: Money, pending: Money,
                 amount: Money) -> None:
    if status not in (OrderStatus.SUCCESS, OrderStatus.PARTIALLY_REFUNDED):
        if status == OrderStatus.REFUNDED:
            raise FulemaError(ErrorCode.REFUND_EXCEEDS_REFUNDABLE, "the order is fully refunded")
        raise FulemaError(ErrorCode.ORDER_NOT_PAID, f"the order is {status}, not paid")
    if amount.fen <= 0:
        raise FulemaError(ErrorCode.INVALID_AMOUNT, "refund amount must be at least 1 fen")
    left = refundable(paid=paid, refunded=refunded, pending=pending)
    if amount > left:
        raise FulemaError(ErrorCode.REFUND_EXCEEDS_REFUNDABLE,
                          f"refund {amount.fen} fen is above the refundable {left.fen} fen")


def status_after_refund(*, paid: Money, refunded: Money) -> OrderStatus:
    return OrderStatus.REFUNDED if refunded == paid else OrderStatus.PARTIALLY_REFUNDED
