"""The discount rules, with the worked examples of docs/marketing.md and hypothesis properties:
a discount is never negative nor more than the amount less 1 fen; payable + discount = amount;
refund shares sum exactly, never return more than each part was worth, and a full refund
returns everything."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.marketing import domain
from fulema.marketing.domain import Candidate, DiscountType, Funder, Kind, Rule

MANJIAN = Rule(DiscountType.AMOUNT_OFF, threshold=Money(5000), off=Money(1000))
MANZHE = Rule(DiscountType.PERCENT_OFF, threshold=Money(3000), percent_bps=1200, cap=Money(800))
LIJIAN = Rule(DiscountType.INSTANT_OFF, off=Money(300))
SUIJI = Rule(DiscountType.RANDOM_OFF, random_min=Money(100), random_max=Money(500))


def test_amount_off_needs_the_threshold() -> None:
    assert domain.rule_discount(MANJIAN, Money(4999)) == Money(0)
    assert domain.rule_discount(MANJIAN, Money(5000)) == Money(1000)
    assert domain.rule_discount(MANJIAN, Money(12345)) == Money(1000)


def test_percent_off_rounds_down_and_caps() -> None:
    assert domain.rule_discount(MANZHE, Money(2999)) == Money(0)
    # 12% of 33.33 = 3.9996 -> 3.99 (down, never up)
    assert domain.rule_discount(MANZHE, Money(3333)) == Money(399)
    # 12% of 66.66 = 7.9992 -> 7.99; 12% of 70.00 = 8.40 -> capped at 8.00
    assert domain.rule_discount(MANZHE, Money(6666)) == Money(799)
    assert domain.rule_discount(MANZHE, Money(7000)) == Money(800)


def test_instant_off_leaves_at_least_one_fen() -> None:
    assert domain.rule_discount(LIJIAN, Money(1000)) == Money(300)
    assert domain.rule_discount(LIJIAN, Money(300)) == Money(299)
    assert domain.rule_discount(LIJIAN, Money(1)) == Money(0)


def test_random_off_is_reproducible_from_its_seed() -> None:
    a = domain.rule_discount(SUIJI, Money(10000), seed="seed-1")
    assert a == domain.rule_discount(SUIJI, Money(10000), seed="seed-1")
    draws = {domain.rule_discount(SUIJI, Money(10000), seed=f"s{i}").fen for i in range(200)}
    assert min(draws) >= 100
    assert max(draws) <= 500
    assert len(draws) > 50


def test_points_deduction_caps_and_whole_fen() -> None:
    # 10 points = 1 fen, at most 50% of 20.00: 1,005 points are worth 1.00 (5 points unused)
    used, off = domain.points_deduction(amount=Money(2000), balance=1005, wanted=None,
                                        points_per_fen=10, max_bps=5000)
    assert (used, off) == (1000, Money(100))
    used, off = domain.points_deduction(amount=Money(2000), balance=99999, wanted=None,
                                        points_per_fen=10, max_bps=5000)
    assert (used, off) == (10000, Money(1000))
    with pytest.raises(FulemaError) as e:
        domain.points_deduction(amount=Money(2000), balance=5, wanted=6, points_per_fen=1,
                                max_bps=5000)
    assert e.value.code == ErrorCode.POINTS_INSUFFICIENT
    with pytest.raises(FulemaError) as e:
        domain.points_deduction(amount=Money(2000), balance=5, wanted=-1, points_per_fen=1,
                                max_bps=5000)
    assert e.value.code == ErrorCode.INVALID_POINTS


def test_best_combination_and_exclusivity() -> None:
    camp = Candidate(Kind.CAMPAIGN, "c1", Funder.PLATFORM, MANJIAN)
    coupon = Candidate(Kind.COUPON, "k1", Funder.MERCHANT, LIJIAN)
    both = domain.best(Money(6000), [camp], [coupon])
    assert [x.ref for x in both.lines] == ["c1", "k1"]
    assert both.discount == Money(1300)
    assert both.payable == Money(4700)
    exclusive = Candidate(Kind.CAMPAIGN, "c1", Funder.PLATFORM, MANJIAN, exclusive=True)
    one = domain.best(Money(6000), [exclusive], [coupon])
    assert [x.ref for x in one.lines] == ["c1"]
    # the coupon's threshold is checked on what is left after the campaign
    coupon50 = Candidate(Kind.COUPON, "k2", Funder.MERCHANT, MANJIAN)
    assert domain.stack(Money(5500), camp, coupon50) is None


def test_rules_that_cannot_apply_are_refused() -> None:
    for bad in (Rule(DiscountType.AMOUNT_OFF, off=Money(0)),
                Rule(DiscountType.PERCENT_OFF, percent_bps=10000),
                Rule(DiscountType.RANDOM_OFF, random_min=Money(5), random_max=Money(4))):
        with pytest.raises(FulemaError) as e:
            bad.check()
        assert e.value.code == ErrorCode.VALIDATION_ERROR


def test_refund_split_worked_example() -> None:
    # 60.00 paid as 47.00 cash + 10.00 campaign + 3.00 coupon; refunds of 20.00, 20.00, 20.00
    weights = [4700, 1000, 300]
    first = domain.split_refund(refund=2000, weights=weights, so_far=[0, 0, 0])
    assert first == [1567, 333, 100]
    second = domain.split_refund(refund=2000, weights=weights, so_far=first)
    so_far = [a + b for a, b in zip(first, second, strict=True)]
    last = domain.split_refund(refund=2000, weights=weights, so_far=so_far)
    assert [a + b for a, b in zip(so_far, last, strict=True)] == weights


rules = st.one_of(
    st.builds(lambda t, o: Rule(DiscountType.AMOUNT_OFF, threshold=Money(t), off=Money(o)),
              st.integers(0, 10**6), st.integers(1, 10**6)),
    st.builds(lambda t, b, c: Rule(DiscountType.PERCENT_OFF, threshold=Money(t), percent_bps=b,
                                   cap=Money(c) if c else None),
              st.integers(0, 10**6), st.integers(1, 9999), st.integers(0, 10**6)),
    st.builds(lambda o: Rule(DiscountType.INSTANT_OFF, off=Money(o)), st.integers(1, 10**6)),
    st.builds(lambda lo, span: Rule(DiscountType.RANDOM_OFF, random_min=Money(lo),
                                    random_max=Money(lo + span)),
              st.integers(1, 10**5), st.integers(0, 10**5)),
)


@settings(max_examples=300, deadline=None)
@given(amount=st.integers(1, 5_000_000), camp=rules, coup=rules, seed=st.text(max_size=8),
       balance=st.integers(0, 10**7), per_fen=st.integers(1, 100), bps=st.integers(0, 10000))
def test_discounts_never_exceed_the_amount(amount: int, camp: Rule, coup: Rule, seed: str,
                                           balance: int, per_fen: int, bps: int) -> None:
    total = Money(amount)
    b = domain.best(total, [Candidate(Kind.CAMPAIGN, "c", Funder.PLATFORM, camp, seed=seed)],
                    [Candidate(Kind.COUPON, "k", Funder.MERCHANT, coup)])
    used, off = domain.points_deduction(amount=b.payable, balance=balance, wanted=None,
                                        points_per_fen=per_fen, max_bps=bps)
    b = domain.with_points(b, domain.Line(Kind.POINTS, Funder.PLATFORM, off, "p"))
    assert all(line.amount.fen >= 0 for line in b.lines)
    assert 0 <= b.discount.fen <= amount - 1
    assert b.payable + b.discount == total
    assert b.payable.fen >= 1
    assert used == off.fen * per_fen
    assert used <= balance


@settings(max_examples=300, deadline=None)
@given(data=st.data(), weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
       payable=st.integers(1, 10**6))
def test_refund_splits_sum_exactly(data: st.DataObject, weights: list[int], payable: int
                                   ) -> None:
    parts = [payable, *weights]
    total = sum(parts)
    so_far = [0] * len(parts)
    refunded = 0
    for step in range(8):  # up to 7 partial refunds, then the rest
        if refunded == total:
            break
        r = total - refunded if step == 7 else data.draw(st.integers(1, total - refunded))
        share = domain.split_refund(refund=r, weights=parts, so_far=so_far)
        assert sum(share) == r
        assert all(x >= 0 for x in share)
        so_far = [a + b for a, b in zip(so_far, share, strict=True)]
        assert all(s <= w for s, w in zip(so_far, parts, strict=True))
        refunded += r
    assert so_far == parts  # a full refund returns every discount whole


@settings(max_examples=200, deadline=None)
@given(data=st.data(), parts=st.lists(st.integers(0, 10**5), min_size=2, max_size=4))
def test_refund_split_survives_a_failed_refund_in_between(data: st.DataObject,
                                                           parts: list[int]) -> None:
    """A refund that failed leaves a gap in the cumulative sequence: later shares still sum
    exactly and stay within each part."""
    total = sum(parts)
    if total < 3:
        return
    so_far = [0] * len(parts)
    left = total
    for step in range(10):  # up to 9 attempts, then the rest
        if left == 0:
            break
        r = left if step == 9 else data.draw(st.integers(1, left))
        share = domain.split_refund(refund=r, weights=parts, so_far=so_far)
        assert sum(share) == r
        assert all(x >= 0 for x in share)
        if step < 9 and data.draw(st.booleans()) and left - r > 0:
            continue  # this refund failed: nothing taken
        so_far = [a + b for a, b in zip(so_far, share, strict=True)]
        assert all(s <= w for s, w in zip(so_far, parts, strict=True))
        left -= r
    assert so_far == parts
