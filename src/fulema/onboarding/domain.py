"""A merchant's registration at one channel: the state machine, pure.

PENDING -> SUBMITTED -> UNDER_REVIEW -> NEEDS_ACTION -> ACTIVE, or REJECTED with the channel's
reason; an ACTIVE registration may be SUSPENDED (by the bank, or because the channel suspended
the sub-merchant) and resumed; a newer version that becomes ACTIVE SUPERSEDES the older one.
REJECTED and SUPERSEDED are final: a corrected application is a new version (the channels
want a new application number for it: WeChat's business_code, Alipay's external_id).
"""

from __future__ import annotations

from enum import StrEnum

from fulema.core.errors import ErrorCode, FulemaError


class RegistrationState(StrEnum):
    PENDING = "PENDING"  # recorded, not yet accepted by the channel (or fields missing)
    SUBMITTED = "SUBMITTED"  # the channel accepted the application
    UNDER_REVIEW = "UNDER_REVIEW"  # the channel says it is reviewing it (审核中)
    NEEDS_ACTION = "NEEDS_ACTION"  # the merchant must verify its account or sign (待验证/待签约)
    ACTIVE = "ACTIVE"  # registered: payments on this channel are allowed
    REJECTED = "REJECTED"  # refused by the channel, with its reason (已驳回)
    SUSPENDED = "SUSPENDED"  # no payments until resumed
    SUPERSEDED = "SUPERSEDED"  # a newer version of this registration became ACTIVE


class Observed(StrEnum):
    """What the channel said, as the port reports it (channels.onboarding.ReviewStatus)."""

    REVIEWING = "REVIEWING"
    NEEDS_ACTION = "NEEDS_ACTION"
    ACTIVE = "ACTIVE"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


S = RegistrationState
TRANSITIONS: dict[RegistrationState, frozenset[RegistrationState]] = {
    S.PENDING: frozenset({S.SUBMITTED, S.UNDER_REVIEW, S.NEEDS_ACTION, S.ACTIVE, S.REJECTED}),
    S.SUBMITTED: frozenset({S.UNDER_REVIEW, S.NEEDS_ACTION, S.ACTIVE, S.REJECTED}),
    S.UNDER_REVIEW: frozenset({S.NEEDS_ACTION, S.ACTIVE, S.REJECTED}),
    S.NEEDS_ACTION: frozenset({S.UNDER_REVIEW, S.ACTIVE, S.REJECTED}),
    S.ACTIVE: frozenset({S.SUSPENDED, S.SUPERSEDED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.SUPERSEDED}),
    S.REJECTED: frozenset(),
    S.SUPERSEDED: frozenset(),
}
# States in which the channel is still deciding: the poll job asks about these.
IN_REVIEW = frozenset({S.SUBMITTED, S.UNDER_REVIEW, S.NEEDS_ACTION})
# States after which a profile change needs no new application yet (one is on its way).
OPEN = frozenset({S.PENDING, *IN_REVIEW})

OBSERVED_TO_STATE: dict[Observed, RegistrationState | None] = {
    Observed.REVIEWING: S.UNDER_REVIEW,
    Observed.NEEDS_ACTION: S.NEEDS_ACTION,
    Observed.ACTIVE: S.ACTIVE,
    Observed.REJECTED: S.REJECTED,
    Observed.UNKNOWN: None,
}


def can_move(current: RegistrationState, target: RegistrationState) -> bool:
    return target in TRANSITIONS[current]


def move(current: RegistrationState, target: RegistrationState) -> RegistrationState:
    """The target state, or REGISTRATION_STATE_INVALID for a move the machine does not allow."""
    if not can_move(current, target):
        raise FulemaError(ErrorCode.REGISTRATION_STATE_INVALID,
                          f"a registration cannot go from {current.value} to {target.value}")
    return target


def after_observation(current: RegistrationState, seen: Observed) -> RegistrationState | None:
    """Where what the channel said takes an application still with the channel; None when it
    changes nothing (the same state again, an unknown answer, or a registration no longer in
    the channel's hands). A channel cannot move a registration backwards from ACTIVE here:
    suspension is the bank's decision, taken by an operator."""
    if current not in OPEN:
        return None
    target = OBSERVED_TO_STATE[seen]
    if target is None or target == current or not can_move(current, target):
        return None
    return target


def missing_fields(required: frozenset[str], present: dict[str, str | None]) -> list[str]:
    """The required fields with no value, sorted: what the merchant must supply first."""
    return sorted(name for name in required if not present.get(name))
