from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.payments.domain import (
    ORDER_TRANSITIONS,
    OrderStatus,
    RefundStatus,
    check_refund,
    status_after_refund,
    transition,
)
from fulema.payments.orders_state import move_params

LEGAL = [
    (OrderStatus.CREATED, OrderStatus.PAYING),
    (OrderStatus.PAYING, OrderStatus.SUCCESS),
    (OrderStatus.PAYING, OrderStatus.FAILED),
    (OrderStatus.PAYING, OrderStatus.CLOSED),
    (OrderStatus.SUCCESS, OrderStatus.PARTIALLY_REFUNDED),
    (OrderStatus.SUCCESS, OrderStatus.REFUNDED),
    (OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED),
]
ILLEGAL = [
    (OrderStatus.SUCCESS, OrderStatus.CLOSED),
    (OrderStatus.SUCCESS, OrderStatus.FAILED),
    (OrderStatus.CLOSED, OrderStatus.SUCCESS),
    (OrderStatus.FAILED, OrderStatus.SUCCESS),
    (OrderStatus.REFUNDED, OrderStatus.SUCCESS),
    (OrderStatus.PAYING, OrderStatus.REFUNDED),
    (OrderStatus.CREATED, OrderStatus.PARTIALLY_REFUNDED),
]


@pytest.mark.parametrize(("a", "b"), LEGAL)
def test_legal_transitions_pass(a: OrderStatus, b: OrderStatus) -> None:
    transition(a, b)


@pytest.mark.parametrize(("a", "b"), ILLEGAL)
def test_illegal_transitions_are_refused(a: OrderStatus, b: OrderStatus) -> None:
    with pytest.raises(FulemaError) as err:
        transition(a, b)
    assert err.value.code == ErrorCode.ILLEGAL_STATE_TRANSITION


@given(st.lists(st.sampled_from(list(OrderStatus)), max_size=30))
def test_no_sequence_of_events_escapes_the_table(targets: list[OrderStatus]) -> None:
    """Apply arbitrary requested moves; refused ones leave the state alone. Whatever the
    sequence, a paid order never becomes unpaid and a final state is never left."""
    state = OrderStatus.CREATED
    was_paid = False
    for target in targets:
        before = state
        try:
            transition(state, target)
            state = target
        except FulemaError:
            assert target not in ORDER_TRANSITIONS[before]
        if state in (OrderStatus.SUCCESS, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED):
            was_paid = True
        if was_paid:
            assert state not in (OrderStatus.CREATED, OrderStatus.PAYING, OrderStatus.FAILED,
                                 OrderStatus.CLOSED)
        if before in (OrderStatus.FAILED, OrderStatus.CLOSED, OrderStatus.REFUNDED):
            assert state == before


def test_refund_states() -> None:
    transition(RefundStatus.PROCESSING, RefundStatus.SUCCESS)
    transition(RefundStatus.PROCESSING, RefundStatus.FAILED)
    with pytest.raises(FulemaError):
        transition(RefundStatus.SUCCESS, RefundStatus.FAILED)
    with pytest.raises(FulemaError):
        transition(RefundStatus.FAILED, RefundStatus.SUCCESS)


def test_refund_of_unpaid_order_is_refused() -> None:
    with pytest.raises(FulemaError) as err:
        check_refund(status=OrderStatus.PAYING, paid=Money(100), refunded=Money(0),
                     pending=Money(0), amount=Money(10))
    assert err.value.code == ErrorCode.ORDER_NOT_PAID


def test_refund_above_refundable_counts_pending_refunds() -> None:
    with pytest.raises(FulemaError) as err:
        check_refund(status=OrderStatus.PARTIALLY_REFUNDED, paid=Money(1000),
                     refunded=Money(500), pending=Money(400), amount=Money(101))
    assert err.value.code == ErrorCode.REFUND_EXCEEDS_REFUNDABLE
    check_refund(status=OrderStatus.PARTIALLY_REFUNDED, paid=Money(1000), refunded=Money(500),
                 pending=Money(400), amount=Money(100))


@given(st.integers(min_value=1, max_value=10**8), st.lists(st.integers(min_value=1,
                                                                       max_value=10**8)))
def test_accepted_refunds_never_sum_above_the_payment(paid: int, asks: list[int]) -> None:
    refunded = Money(0)
    status = OrderStatus.SUCCESS
    for ask in asks:
        try:
            check_refund(status=status, paid=Money(paid), refunded=refunded, pending=Money(0),
                         amount=Money(ask))
        except FulemaError:
            continue
        refunded = refunded + Money(ask)
        status = status_after_refund(paid=Money(paid), refunded=refunded)
    assert refunded <= Money(paid)
    assert (status == OrderStatus.REFUNDED) == (refunded == Money(paid))


def test_the_core_path_refuses_an_illegal_transition() -> None:
    """The hot path's Core UPDATE gets its parameters only from `move_params`, which asks the
    same table as the ORM path: a paid order cannot be moved back to PAYING by it."""
    with pytest.raises(FulemaError) as err:
        move_params(order_id="ord_1", current=OrderStatus.SUCCESS, target=OrderStatus.PAYING,
                    code_url=None)
    assert err.value.code == ErrorCode.ILLEGAL_STATE_TRANSITION


@pytest.mark.parametrize("current", list(OrderStatus))
@pytest.mark.parametrize("target", list(OrderStatus))
def test_the_core_path_allows_exactly_the_table(current: OrderStatus,
                                                target: OrderStatus) -> None:
    legal = target in ORDER_TRANSITIONS[current]
    try:
        params = move_params(order_id="ord_1", current=current, target=target, now=None)
    except FulemaError:
        assert not legal
    else:
        assert legal
        assert (params["b_from"], params["b_to"]) == (current.value, target.value)
