from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money

fen = st.integers(min_value=-(10**12), max_value=10**12)


def test_yuan_round_trip_of_a_typical_amount() -> None:
    assert Money.from_yuan("12.50") == Money(1250)
    assert Money(1250).to_yuan() == "12.50"
    assert Money(-5).to_yuan() == "-0.05"
    assert str(Money(100)) == "¥1.00"


@pytest.mark.parametrize("text", ["12.345", "abc", "", "NaN", "Infinity", "1e-3"])
def test_from_yuan_refuses_what_is_not_an_exact_fen(text: str) -> None:
    with pytest.raises(FulemaError) as err:
        Money.from_yuan(text)
    assert err.value.code == ErrorCode.INVALID_AMOUNT


@pytest.mark.parametrize("value", [12.5, "1250", True, None, 1250.0])
def test_of_accepts_only_true_integers(value: object) -> None:
    with pytest.raises(FulemaError) as err:
        Money.of(value)
    assert err.value.code == ErrorCode.INVALID_AMOUNT


def test_money_refuses_float_construction() -> None:
    with pytest.raises(TypeError):
        Money(12.5)  # type: ignore[arg-type]


@given(fen)
def test_yuan_text_round_trips_exactly(value: int) -> None:
    assert Money.from_yuan(Money(value).to_yuan()) == Money(value)


@given(fen, fen)
def test_addition_and_subtraction_are_exact(a: int, b: int) -> None:
    assert (Money(a) + Money(b)) - Money(b) == Money(a)


@given(st.integers(min_value=0, max_value=10**10),
       st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=20)
       .filter(lambda ws: sum(ws) > 0))
def test_allocate_sums_exactly_and_is_proportional_within_a_fen(total: int, weights: list[int]
                                                                 ) -> None:
    parts = Money(total).allocate(weights)
    assert sum(p.fen for p in parts) == total
    for part, w in zip(parts, weights, strict=True):
        exact = total * w / sum(weights)
        assert abs(part.fen - exact) < 1


@pytest.mark.parametrize(("amount", "bps", "fee"), [
    (1250, 38, 5),      # 4.75 -> 5 (half-up)
    (1000, 38, 4),      # 3.8 -> 4
    (131, 38, 0),       # 0.4978 -> 0
    (132, 38, 1),       # 0.5016 -> 1
    (5000, 30, 15),
    (10000, 0, 0),
])
def test_fee_rounds_half_up_per_transaction(amount: int, bps: int, fee: int) -> None:
    assert Money(amount).times_bps(bps) == Money(fee)


@given(st.integers(min_value=0, max_value=10**10), st.integers(min_value=0, max_value=10000))
def test_fee_never_exceeds_amount(amount: int, bps: int) -> None:
    fee = Money(amount).times_bps(bps)
    assert Money(0) <= fee <= Money(amount)
