"""The pure rules: fees round half-up per payment, refunds give back fee in proportion to cash
(a full refund gives back exactly the fee), every entry balances, and the calendar: T+1 from a
Friday is Monday, holidays are skipped, make-up Saturdays count, D+n counts natural days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulema.core.errors import FulemaError
from fulema.ledger import domain as L
from fulema.settlement import domain as S

FRI, SAT, SUN, MON, TUE = (date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29),
                           date(2026, 11, 30), date(2026, 12, 1))


def test_fee_rounds_half_up_per_transaction() -> None:
    assert L.fee_for(1250, 38, waived=False) == 5  # 4.75 -> 5
    assert L.fee_for(1500, 30, waived=False) == 5  # 4.5 -> 5 (half-up, not banker's 4)
    assert L.fee_for(1300, 38, waived=False) == 5  # 4.94 -> 5
    assert L.fee_for(100, 38, waived=False) == 0  # 0.38 -> 0
    assert L.fee_for(1250, 38, waived=True) == 0  # the bank's channel: no fee


def test_fee_back_in_proportion_and_exact_on_full_refund() -> None:
    fee, cash = 5, 1250
    first = L.fee_back(fee=fee, cash=cash, cash_refunded_before=0, refund_cash=250,
                       fee_back_before=0)
    assert first == 1  # 5 * 250/1250 = 1
    second = L.fee_back(fee=fee, cash=cash, cash_refunded_before=250, refund_cash=1000,
                        fee_back_before=first)
    assert first + second == fee
    with pytest.raises(FulemaError):
        L.fee_back(fee=fee, cash=cash, cash_refunded_before=1250, refund_cash=1,
                   fee_back_before=fee)


@given(cash=st.integers(1, 10**7), bps=st.integers(0, 1000),
       cuts=st.lists(st.integers(1, 100), min_size=1, max_size=8))
def test_refunds_in_any_slices_give_back_exactly_the_fee(cash: int, bps: int,
                                                         cuts: list[int]) -> None:
    fee = L.fee_for(cash, bps, waived=False)
    done = back = 0
    for pct in cuts:
        part = max(1, (cash - done) * pct // 100) if done < cash else 0
        if part == 0:
            break
        b = L.fee_back(fee=fee, cash=cash, cash_refunded_before=done, refund_cash=part,
                       fee_back_before=back)
        assert b >= 0
        done, back = done + part, back + b
    last = L.fee_back(fee=fee, cash=cash, cash_refunded_before=done, refund_cash=cash - done,
                      fee_back_before=back) if done < cash else 0
    assert back + last == fee


@given(amount=st.integers(1, 10**7), pd=st.integers(0, 100), md=st.integers(0, 100),
       bps=st.integers(0, 1000))
def test_payment_and_refund_entries_balance(amount: int, pd: int, md: int, bps: int) -> None:
    p_disc, m_disc = amount * pd // 400, amount * md // 400
    facts = L.PaymentFacts.from_payload({
        "merchant_id": "M1", "channel": "wechat", "amount": amount,
        "payable_amount": amount - p_disc - m_disc,
        "discounts": [{"funder": "platform", "amount": p_disc},
                      {"funder": "merchant", "amount": m_disc}]})
    fee = L.fee_for(facts.cash, bps, waived=False)
    lines = L.payment_lines(facts, fee)
    assert sum(x.fen for x in lines) == 0
    payable = sum(x.fen for x in lines if x.account == "merchant_payable:M1")
    assert -payable == amount - m_disc - fee


def test_payload_whose_discounts_do_not_add_up_is_refused() -> None:
    with pytest.raises(FulemaError):
        L.PaymentFacts.from_payload({"merchant_id": "M", "channel": "wechat", "amount": 100,
                                     "payable_amount": 90, "discounts": []})
    with pytest.raises(FulemaError):
        L.PaymentFacts.from_payload({"merchant_id": "M", "channel": "wechat", "amount": 100,
                                     "discounts": [{"funder": "bank", "amount": 1}]})
    with pytest.raises(FulemaError):
        L.PaymentFacts.from_payload({"merchant_id": "M", "channel": "wechat", "amount": 1.5})


def test_adjustment_goes_to_the_merchant_or_to_differences() -> None:
    to_m = L.adjustment_lines("wechat", "M1", 300)
    assert {x.account: x.fen for x in to_m} == {"channel_receivable:wechat": 300,
                                                "merchant_payable:M1": -300}
    short = L.adjustment_lines("alipay", None, -120)
    assert {x.account: x.fen for x in short} == {"channel_receivable:alipay": -120,
                                                 "reconciliation_differences": 120}


def test_business_date_with_cutoff_in_shanghai() -> None:
    late = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    assert L.business_date(late, time(0)) == FRI
    assert L.business_date(late, time(23, 0)) == SAT
    early = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)  # 00:30 Friday in Shanghai
    assert L.business_date(early, time(0)) == FRI


def test_t1_from_friday_is_monday() -> None:
    cal = S.Calendar()
    t1 = S.Cycle.parse("T+1")
    assert S.due_date(FRI, t1, cal) == MON
    assert S.due_date(SAT, t1, cal) == MON
    assert S.due_through(MON, t1, cal) == SUN  # Monday's run pays Friday, Saturday, Sunday
    assert S.due_through(SAT, t1, cal) == date(2026, 11, 26)  # nothing new on a Saturday


def test_holiday_is_skipped_and_make_up_saturday_counts() -> None:
    t1 = S.Cycle.parse("T+1")
    holiday = S.Calendar({MON: S.DayKind.HOLIDAY})
    assert S.due_date(FRI, t1, holiday) == TUE
    make_up = S.Calendar({SAT: S.DayKind.WORKDAY})
    assert S.due_date(FRI, t1, make_up) == SAT
    assert S.due_date(SAT, S.Cycle.parse("T+0"), make_up) == SAT
    assert S.due_date(SUN, S.Cycle.parse("T+0"), S.Calendar()) == MON


def test_d_cycles_count_natural_days() -> None:
    assert S.due_date(FRI, S.Cycle.parse("D+1"), S.Calendar({SAT: S.DayKind.WORKDAY})) == SAT
    assert S.due_through(SUN, S.Cycle.parse("D+1"), S.Calendar()) == SAT
    assert S.due_through(SUN, S.Cycle.parse("D+0"), S.Calendar()) == SUN


def test_unknown_cycle_is_refused() -> None:
    for bad in ("T+2", "W+1", "", "t+1"):
        with pytest.raises(FulemaError):
            S.Cycle.parse(bad)


def test_batch_figures_add_up() -> None:
    f = S.BatchFigures.from_items({"gross": -10000, "fee": 38, "discount": 500, "refund": 2000,
                                   "fee_back": -8, "discount_back": -100})
    assert (f.gross, f.refunds, f.fees, f.discounts, f.net) == (10000, 2000, 30, 400, 7570)
    assert S.batch_status(f, hold_reason=None) is S.BatchStatus.SETTLED
    assert S.batch_status(f, hold_reason="risk") is S.BatchStatus.HELD
    neg = S.BatchFigures.from_items({"refund": 100})
    assert S.batch_status(neg, hold_reason=None) is S.BatchStatus.CARRIED
