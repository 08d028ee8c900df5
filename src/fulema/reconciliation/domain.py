"""Pure reconciliation rules: what a difference is called, how a discrepancy may move, which
action fits which kind. No I/O; the matching itself is columnar (`matching.py`).

Kinds of result for a statement line or one of our records:

- MATCHED          both sides, same amount, the channel says it succeeded
- AMOUNT_MISMATCH  both sides, different amounts
- STATUS_MISMATCH  both sides, different states: the channel lists as done what we hold as
                   not done (a PAYING or CLOSED order, a FAILED refund), or its line is not a
                   success, or it reversed a payment we hold as paid
- ONLY_AT_CHANNEL  长款: the channel has it, we have no such record at all
- ONLY_WITH_US     短款: we have it as done on the day, the channel's statement does not
- CROSS_DAY        the two sides put it on different days (paid just before midnight): our
                   record within `CROSS_DAY_WINDOW_MS` of a midnight and absent from the
                   statement, or a statement line whose record we confirmed on another day.
                   When the other side's day is reconciled and finds it, the discrepancy is
                   resolved automatically (action AUTO_CROSS_DAY).
"""

from __future__ import annotations

from enum import StrEnum

from fulema.core.errors import ErrorCode, FulemaError

CROSS_DAY_WINDOW_MS = 10 * 60 * 1000  # a payment within 10 minutes of midnight may cross it


class Result(StrEnum):
    MATCHED = "MATCHED"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    STATUS_MISMATCH = "STATUS_MISMATCH"
    ONLY_AT_CHANNEL = "ONLY_AT_CHANNEL"
    ONLY_WITH_US = "ONLY_WITH_US"
    CROSS_DAY = "CROSS_DAY"


DISCREPANCY_KINDS = tuple(r for r in Result if r != Result.MATCHED)


class DiscrepancyStatus(StrEnum):
    OPEN = "OPEN"
    INVESTIGATING = "INVESTIGATING"
    RESOLVED = "RESOLVED"


class Action(StrEnum):
    SYNC_ORDER = "SYNC_ORDER"  # pull the channel's state and correct the order (payments)
    REFUND = "REFUND"  # give the payer the money back through the channel (payments)
    ADJUST = "ADJUST"  # post an adjustment: reconciliation.adjustment for the ledger
    ACCEPT = "ACCEPT"  # nothing to move: explained and closed (e.g. a channel's own error)
    AUTO_CROSS_DAY = "AUTO_CROSS_DAY"  # the other day's statement had it (never by hand)


TRANSITIONS: dict[DiscrepancyStatus, frozenset[DiscrepancyStatus]] = {
    DiscrepancyStatus.OPEN: frozenset({DiscrepancyStatus.INVESTIGATING,
                                       DiscrepancyStatus.RESOLVED}),
    DiscrepancyStatus.INVESTIGATING: frozenset({DiscrepancyStatus.RESOLVED}),
    DiscrepancyStatus.RESOLVED: frozenset(),
}

# which hand-taken actions make sense for which kind (an order to correct needs our order)
ACTIONS: dict[Result, frozenset[Action]] = {
    Result.AMOUNT_MISMATCH: frozenset({Action.SYNC_ORDER, Action.REFUND, Action.ADJUST,
                                       Action.ACCEPT}),
    Result.STATUS_MISMATCH: frozenset({Action.SYNC_ORDER, Action.REFUND, Action.ADJUST,
                                       Action.ACCEPT}),
    Result.ONLY_AT_CHANNEL: frozenset({Action.ADJUST, Action.ACCEPT}),
    Result.ONLY_WITH_US: frozenset({Action.SYNC_ORDER, Action.ADJUST, Action.ACCEPT}),
    Result.CROSS_DAY: frozenset({Action.SYNC_ORDER, Action.ADJUST, Action.ACCEPT}),
}


def move(current: DiscrepancyStatus, target: DiscrepancyStatus) -> DiscrepancyStatus:
    if target not in TRANSITIONS[current]:
        raise FulemaError(ErrorCode.DISCREPANCY_ACTION_INVALID,
                          f"a {current.value} discrepancy cannot become {target.value}")
    return target


def check_action(kind: Result, action: Action) -> None:
    if action not in ACTIONS.get(kind, frozenset()):
        raise FulemaError(ErrorCode.DISCREPANCY_ACTION_INVALID,
                          f"{action.value} does not resolve a {kind.value} discrepancy")


def adjustment_amount(*, our_fen: int | None, channel_fen: int | None, record_kind: str) -> int:
    """Signed fen for `reconciliation.adjustment`: positive when the channel holds more than
    we recorded. A refund line is money leaving, so its sign is reversed."""
    diff = (channel_fen or 0) - (our_fen or 0)
    return -diff if record_kind == "REFUND" else diff
