"""The sandboxes' shared payer wallet (`fulema.sandbox.wallet`): money is conserved to the fen,
a refused payment changes nothing, limits hold under racing async handlers, payer codes are
single use, and every sandbox answers each refusal with its channel's own code."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulema.core.clock import clock
from fulema.sandbox.alipay.books import REFUSALS as ALIPAY
from fulema.sandbox.bankpay.state import REFUSALS as BANKPAY
from fulema.sandbox.ecny.wallet import Wallet as EcnyWallet
from fulema.sandbox.ecny.wallet import refusal_answer
from fulema.sandbox.unionpay.state import REFUSALS as UNIONPAY
from fulema.sandbox.wallet import (
    CodeRefusal,
    Limits,
    Payer,
    PayerBook,
    Refusal,
    parse_rules,
    today,
)
from fulema.sandbox.wechat.state import V2_REFUSALS, V3_REFUSALS

NOON_BEIJING = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)

fen = st.integers(min_value=1, max_value=10**9)
op = st.one_of(st.tuples(st.just("pay"), fen), st.tuples(st.just("credit"), fen),
               st.tuples(st.just("reverse"), fen))
limits = st.builds(Limits, balance=st.none() | st.integers(0, 10**9),
                   per_payment=st.none() | fen, daily=st.none() | fen)


def snapshot(p: Payer) -> tuple[int, int, dict[date, int]]:
    return p.balance_fen, p.swept_fen, dict(p.spent)


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 10**9), lim=limits, limit_fen=st.none() | fen,
       ops=st.lists(op, max_size=40))
def test_debits_and_credits_never_create_or_lose_a_fen(
        start: int, lim: Limits, limit_fen: int | None, ops: list[tuple[str, int]]) -> None:
    payer = Payer("p", start, limit_fen=limit_fen, limits=lim)
    paid_out = credited = 0
    for kind, amount in ops:
        before = snapshot(payer)
        if kind == "pay":
            refused = payer.pay(amount)
            if refused is None:
                paid_out += amount
            else:
                assert snapshot(payer) == before  # a refused payment changes nothing
        elif kind == "credit":
            payer.credit(amount)
            credited += amount
        else:
            payer.reverse(amount, clock.now())
            credited += amount
        assert payer.balance_fen >= 0
        assert lim.balance is None or payer.balance_fen <= max(lim.balance, start)
    # Every fen is in the balance, swept to the linked account, or was paid out.
    assert start + credited == payer.balance_fen + payer.swept_fen + paid_out


@settings(max_examples=200, deadline=None)
@given(balance=st.integers(0, 10**6), amount=fen, risk=st.booleans(), frozen=st.booleans(),
       limit_fen=st.none() | st.integers(0, 10**6), lim=limits)
def test_a_refused_payment_changes_no_balance(balance: int, amount: int, risk: bool,
                                              frozen: bool, limit_fen: int | None,
                                              lim: Limits) -> None:
    payer = Payer("p", balance, risk_refused=risk, frozen=frozen, limit_fen=limit_fen,
                  limits=lim)
    before = snapshot(payer)
    refused = payer.pay(amount)
    if refused is None:
        assert payer.balance_fen == balance - amount
        assert payer.paid_today() == amount
    else:
        assert snapshot(payer) == before
        assert refused == payer.refusal(amount)  # the answer does not change on asking again


def test_refusals_are_checked_in_order() -> None:
    lim = Limits(per_payment=500, daily=800)
    worst = Payer("p", 0, frozen=True, risk_refused=True, limit_fen=100, limits=lim)
    order = []
    for fix in ("frozen", "risk_refused", "limit_fen", "limits", "balance_fen"):
        order.append(worst.refusal(1_000))
        setattr(worst, fix, {"frozen": False, "risk_refused": False, "limit_fen": None,
                             "limits": Limits(), "balance_fen": 10_000}[fix])
    assert order == [Refusal.FROZEN, Refusal.RISK, Refusal.PAYER_LIMIT,
                     Refusal.PER_PAYMENT_LIMIT, Refusal.BALANCE]
    assert worst.refusal(1_000) is None
    daily = Payer("d", 10_000, limits=lim)
    assert daily.pay(500) is None
    assert daily.pay(300) is None
    assert daily.pay(1) == Refusal.DAILY_LIMIT


def test_rules_asked_before_the_password_leave_the_balance_out() -> None:
    poor = Payer("p", 10, password_required=True)
    assert poor.refusal(100, balance=False) is None
    assert poor.refusal(100) == Refusal.BALANCE
    assert Payer("r", 10, risk_refused=True).refusal(1, balance=False) == Refusal.RISK


def test_a_reversal_gives_the_daily_headroom_back_a_refund_does_not() -> None:
    clock.freeze(NOON_BEIJING)
    payer = Payer("p", 10_000, limits=Limits(daily=1_000))
    assert payer.pay(1_000) is None
    assert payer.pay(1) == Refusal.DAILY_LIMIT
    payer.credit(1_000)  # a refund: the payment happened
    assert (payer.balance_fen, payer.paid_today()) == (10_000, 1_000)
    assert payer.pay(1) == Refusal.DAILY_LIMIT
    payer.reverse(400, clock.now())  # a reversal voids it
    assert (payer.balance_fen, payer.paid_today()) == (10_400, 600)
    assert payer.pay(400) is None
    clock.advance(timedelta(days=1))  # a new Beijing day
    assert payer.paid_today() == 0
    assert payer.pay(1_000) is None


def test_the_daily_limit_counts_the_beijing_day() -> None:
    clock.freeze(datetime(2026, 3, 10, 15, 59, tzinfo=UTC))  # 23:59 in Beijing
    payer = Payer("p", 10_000, limits=Limits(daily=1_000))
    assert payer.pay(1_000) is None
    clock.advance(timedelta(minutes=2))  # 00:01 the next day in Beijing, same UTC date
    assert today().isoformat() == "2026-03-11"
    assert payer.pay(1_000) is None


def test_a_credit_above_the_cap_is_swept_not_refused() -> None:
    payer = Payer("p", 900, limits=Limits(balance=1_000))
    payer.credit(300)
    assert (payer.balance_fen, payer.swept_fen) == (1_000, 200)
    payer.credit(5)
    assert (payer.balance_fen, payer.swept_fen) == (1_000, 205)


@pytest.mark.parametrize("amount", [0, -1, -100])
def test_no_zero_or_negative_money(amount: int) -> None:
    payer = Payer("p", 100)
    for move in (payer.pay, payer.credit):
        with pytest.raises(ValueError, match="positive"):
            move(amount)
    assert payer.balance_fen == 100


async def test_limits_hold_under_concurrent_debits() -> None:
    clock.freeze(NOON_BEIJING)
    payer = Payer("p", 1_000, limits=Limits(daily=700))

    results = await asyncio.gather(*(_handler(payer, 30) for _ in range(100)))
    accepted = sum(30 for r in results if r is None)
    assert accepted == 690  # 23 payments; the 24th would pass 700
    assert payer.balance_fen == 1_000 - accepted
    assert payer.paid_today() == accepted
    assert {r for r in results if r is not None} == {Refusal.DAILY_LIMIT}

    short = Payer("s", 100)
    outcomes = await asyncio.gather(*(_handler(short, 7) for _ in range(50)))
    assert sum(7 for r in outcomes if r is None) == 98  # 14 payments; never overdrawn
    assert short.balance_fen == 2
    assert {r for r in outcomes if r is not None} == {Refusal.BALANCE}


async def _handler(payer: Payer, amount: int) -> Refusal | None:
    """An async route that yields before it pays: every handler is in flight at once."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return payer.pay(amount)


def test_payer_codes_are_single_use_and_expire() -> None:
    clock.freeze(NOON_BEIJING)
    book = PayerBook(Payer("alice", 100), Payer("bob", 100))
    alice, bob = book.payers["alice"], book.payers["bob"]
    code, expires = book.issue_code(alice, "13", 18, timedelta(seconds=60))
    assert len(code) == 18
    assert code.startswith("13")
    assert code.isdigit()
    assert expires == NOON_BEIJING + timedelta(seconds=60)
    assert book.redeem(code) is alice
    assert book.redeem(code) is CodeRefusal.UNKNOWN  # used up
    assert book.redeem("130000000000000000") is CodeRefusal.UNKNOWN
    late, _ = book.issue_code(bob, "01", 19, timedelta(seconds=60))
    clock.advance(timedelta(seconds=61))
    assert book.redeem(late) is CodeRefusal.EXPIRED
    assert book.redeem(late) is CodeRefusal.UNKNOWN  # an expired code is used up too
    forever, none = book.issue_code(bob, "62", 19, None)
    clock.advance(timedelta(days=365))
    assert none is None
    assert book.redeem(forever) is bob


def test_book_add_and_get() -> None:
    book = PayerBook[Payer]()
    assert book.get("x") is None
    added = book.add(Payer("x", 5))
    assert book.get("x") is added


@pytest.mark.parametrize(("body", "expected"), [
    ({}, (False, None)),
    ({"risk_refused": True, "limit_fen": 0}, (True, 0)),
    ({"limit_fen": 500}, (False, 500)),
    ({"risk_refused": "yes"}, "risk_refused is true or false"),
    ({"risk_refused": 1}, "risk_refused is true or false"),
    ({"limit_fen": -1}, "limit_fen is a non-negative integer"),
    ({"limit_fen": 1.5}, "limit_fen is a non-negative integer"),
    ({"limit_fen": True}, "limit_fen is a non-negative integer"),
    ({"limit_fen": "500"}, "limit_fen is a non-negative integer"),
])
def test_parse_rules(body: dict[str, object], expected: object) -> None:
    assert parse_rules(body) == expected


def test_each_sandbox_answers_every_refusal_with_its_own_code() -> None:
    """The codes each sandbox answered before the wallets became one, and every reason
    mapped (the ones a sandbox cannot produce map to its nearest existing code)."""
    for table in (V3_REFUSALS, V2_REFUSALS, ALIPAY, UNIONPAY, BANKPAY):
        assert set(table) == set(Refusal)
    assert [V3_REFUSALS[r][0] for r in (Refusal.RISK, Refusal.PAYER_LIMIT, Refusal.BALANCE)] \
        == ["ACCOUNT_ERROR", "RULE_LIMIT", "NOTENOUGH"]
    assert [V2_REFUSALS[r][0] for r in (Refusal.RISK, Refusal.PAYER_LIMIT, Refusal.BALANCE)] \
        == ["TRADE_ERROR", "TRADE_ERROR", "NOTENOUGH"]
    assert [ALIPAY[r] for r in (Refusal.RISK, Refusal.PAYER_LIMIT, Refusal.BALANCE)] == [
        "ACQ.PAYMENT_REQUEST_HAS_RISK", "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
        "ACQ.BUYER_BALANCE_NOT_ENOUGH"]
    assert [UNIONPAY[r] for r in (Refusal.RISK, Refusal.PAYER_LIMIT, Refusal.BALANCE)] \
        == ["38", "33", "64"]
    assert [BANKPAY[r][0] for r in (Refusal.RISK, Refusal.PAYER_LIMIT, Refusal.BALANCE)] \
        == ["PAYER_RISK_REJECTED", "PAYER_LIMIT_EXCEEDED", "BALANCE_NOT_ENOUGH"]
    w = EcnyWallet("p", "0099000000000001", 4, 0)
    assert [refusal_answer(w, r)[0] for r in Refusal] == [
        "WALLET_CLOSED", "WALLET_RISK_REJECTED", "WALLET_SINGLE_LIMIT_EXCEEDED",
        "WALLET_SINGLE_LIMIT_EXCEEDED", "WALLET_DAILY_LIMIT_EXCEEDED",
        "WALLET_BALANCE_NOT_ENOUGH"]
    assert refusal_answer(w, Refusal.PER_PAYMENT_LIMIT)[1] == \
        "over the level-4 wallet's per-payment limit"


def test_an_ecny_wallet_takes_its_limits_from_its_level() -> None:
    w = EcnyWallet("p", "0099000000000001", 4, 1_000_000, name=None, limit_fen=300_000)
    assert w.limits == Limits(balance=1_000_000, per_payment=200_000, daily=500_000)
    assert w.pay(300_001) == Refusal.PAYER_LIMIT  # the holder's own limit comes first
    w.limit_fen = None
    assert w.pay(200_001) == Refusal.PER_PAYMENT_LIMIT
    w.frozen = True
    assert w.pay(1) == Refusal.FROZEN
    assert w.view()["closed"] is True
