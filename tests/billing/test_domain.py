"""Bill payment and charity rules, pure: the state machine refuses illegal moves, a bill is
paid in full, only bank-funded discounts apply, progress rounds down, retries are bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulema.billing.domain import (
    BillPaymentStatus,
    check_bill_amount,
    check_project_open,
    donor_shown,
    live_key,
    merchant_funded_discount,
    progress_bps,
    transition,
    writeoff_retry_delay,
)
from fulema.core.errors import ErrorCode, FulemaError

S = BillPaymentStatus
LEGAL = {(S.CREATED, S.PAID), (S.CREATED, S.CLOSED), (S.PAID, S.WRITTEN_OFF),
         (S.PAID, S.REFUNDING), (S.REFUNDING, S.REFUNDED), (S.REFUNDING, S.WRITTEN_OFF)}


@pytest.mark.parametrize("before", list(S))
@pytest.mark.parametrize("after", list(S))
def test_only_the_documented_moves_are_allowed(before: S, after: S) -> None:
    if (before, after) in LEGAL:
        assert transition(before, after) is after
    else:
        with pytest.raises(FulemaError) as err:
            transition(before, after)
        assert err.value.code is ErrorCode.ILLEGAL_STATE_TRANSITION


def test_a_bill_is_held_until_closed_or_refunded() -> None:
    held = {s for s in S if live_key("water", "b1", s) is not None}
    assert held == {S.CREATED, S.PAID, S.WRITTEN_OFF, S.REFUNDING}
    assert live_key("water", "b1", S.PAID) == "water:b1"


@given(st.integers(1, 10**8), st.integers(-(10**8), 10**8))
def test_a_bill_is_paid_exactly_or_refused(bill: int, offered: int) -> None:
    if offered == bill:
        check_bill_amount(bill, offered)
    else:
        with pytest.raises(FulemaError) as err:
            check_bill_amount(bill, offered)
        assert err.value.code is ErrorCode.BILL_AMOUNT_MISMATCH


def test_only_merchant_funded_discounts_count_against_a_bill() -> None:
    assert merchant_funded_discount([]) == 0
    assert merchant_funded_discount([{"funder": "platform", "amount": 300}]) == 0
    assert merchant_funded_discount([{"funder": "platform", "amount": 300},
                                     {"funder": "merchant", "amount": 120},
                                     {"funder": "merchant", "amount": 5}]) == 125


@given(st.integers(0, 10**12), st.integers(1, 10**12))
def test_progress_rounds_down_and_reaches_10000_only_at_the_target(raised: int,
                                                                   target: int) -> None:
    bps = progress_bps(raised, target)
    assert bps * target <= raised * 10_000 < (bps + 1) * target
    assert (bps >= 10_000) == (raised >= target)


@given(st.integers(1, 1000), st.floats(0.5, 600))
def test_write_off_retries_wait_longer_but_never_more_than_ten_bases(attempts: int,
                                                                    base: float) -> None:
    delay = writeoff_retry_delay(attempts, base).total_seconds()
    assert base - 1e-6 <= delay <= 10 * base + 1e-6  # timedelta keeps microseconds
    assert delay <= writeoff_retry_delay(attempts + 1, base).total_seconds()


def test_a_project_takes_donations_only_open_and_inside_its_window() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = start + timedelta(days=30)
    check_project_open(status="OPEN", starts_at=start, ends_at=end, now=start)
    for status, now in (("CLOSED", start), ("OPEN", start - timedelta(seconds=1)),
                        ("OPEN", end)):
        with pytest.raises(FulemaError) as err:
            check_project_open(status=status, starts_at=start, ends_at=end, now=now)
        assert err.value.code is ErrorCode.CHARITY_PROJECT_CLOSED


def test_anonymous_donors_are_shown_as_a_kind_person() -> None:
    assert donor_shown("李四", anonymous=True) == "爱心人士"
    assert donor_shown(None, anonymous=False) == "爱心人士"
    assert donor_shown("李四", anonymous=False) == "李四"
