"""The registration state machine, without a database."""

from __future__ import annotations

import pytest

from fulema.channels.onboarding import MerchantProfile
from fulema.core.errors import ErrorCode, FulemaError
from fulema.onboarding.domain import (
    TRANSITIONS,
    Observed,
    RegistrationState,
    after_observation,
    move,
)

S = RegistrationState


def test_the_happy_path_is_allowed_step_by_step() -> None:
    state = S.PENDING
    for target in (S.SUBMITTED, S.UNDER_REVIEW, S.NEEDS_ACTION, S.ACTIVE, S.SUSPENDED, S.ACTIVE,
                   S.SUPERSEDED):
        state = move(state, target)
    assert state == S.SUPERSEDED


@pytest.mark.parametrize(("current", "target"), [
    (S.PENDING, S.SUSPENDED), (S.REJECTED, S.ACTIVE), (S.REJECTED, S.PENDING),
    (S.SUPERSEDED, S.ACTIVE), (S.ACTIVE, S.UNDER_REVIEW), (S.UNDER_REVIEW, S.SUBMITTED),
    (S.SUSPENDED, S.REJECTED), (S.ACTIVE, S.PENDING)])
def test_illegal_moves_are_refused_with_their_code(current: S, target: S) -> None:
    with pytest.raises(FulemaError) as caught:
        move(current, target)
    assert caught.value.code == ErrorCode.REGISTRATION_STATE_INVALID
    assert current.value in caught.value.message
    assert target.value in caught.value.message


def test_final_states_go_nowhere() -> None:
    assert TRANSITIONS[S.REJECTED] == frozenset()
    assert TRANSITIONS[S.SUPERSEDED] == frozenset()
    assert set(TRANSITIONS) == set(S)  # every state is in the table


def test_what_the_channel_says_moves_only_an_open_application() -> None:
    assert after_observation(S.SUBMITTED, Observed.REVIEWING) == S.UNDER_REVIEW
    assert after_observation(S.UNDER_REVIEW, Observed.NEEDS_ACTION) == S.NEEDS_ACTION
    assert after_observation(S.NEEDS_ACTION, Observed.REVIEWING) == S.UNDER_REVIEW
    assert after_observation(S.NEEDS_ACTION, Observed.ACTIVE) == S.ACTIVE
    assert after_observation(S.UNDER_REVIEW, Observed.REJECTED) == S.REJECTED
    assert after_observation(S.UNDER_REVIEW, Observed.UNKNOWN) is None  # ask again
    assert after_observation(S.UNDER_REVIEW, Observed.REVIEWING) is None  # nothing new
    # the bank's suspension is not undone by the channel still saying "finished"
    assert after_observation(S.SUSPENDED, Observed.ACTIVE) is None
    assert after_observation(S.REJECTED, Observed.ACTIVE) is None


def test_missing_lists_exactly_the_required_fields_without_a_value() -> None:
    profile = MerchantProfile(name="面馆", short_name="", licence_no="91330100MA2FULEMA5",
                              contact_phone="13800000000")
    assert profile.missing(frozenset({"name", "short_name", "contact_email", "licence_no"})) == [
        "short_name", "contact_email"]
    assert profile.missing(frozenset({"name"})) == []
