"""The rule language: each built-in kind decides right at its boundaries; bad rules are
refused with a message that says what is wrong; whitelists never silence the regulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fulema.risk.counters import MemoryCounters
from fulema.risk.defaults import DEFAULT_RULES
from fulema.risk.domain import (
    Outcome,
    RuleError,
    RuleSet,
    build_lists,
    check_not_deny_all,
    compile_rule,
)

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Beijing


def rules_by_id(*ids: str) -> list[dict[str, Any]]:
    found = [r for r in DEFAULT_RULES if r["id"] in ids]
    assert len(found) == len(ids)
    return found


class Engine:
    """A rule set with in-process counters and a clock the test moves."""

    def __init__(self, rules: list[dict[str, Any]], lists: list[tuple[str, str]] = ()) -> None:
        self.rs = RuleSet(version=1, rules=tuple(compile_rule(r) for r in rules),
                          lists=build_lists(list(lists)))
        self.counters = MemoryCounters()
        self.now = T0
        self.n = 0

    def decide(self, *, key: str | None = None, **facts: Any) -> tuple[Outcome, str]:
        base = {"action": "pay", "amount": 1000, "channel": "wechat", "way_code": "QR_DYNAMIC",
                "merchant_id": "m1", "mcc": "5411", "payer_id": "p1", "hour": 12,
                "merchant_age_days": 100}
        base.update(facts)
        self.n += 1
        m = self.rs.match(base)
        values = self.counters.apply_sync([op for _r, op in m.pending], now=self.now,
                                          txn_key=key or f"k{self.n}",
                                          record=not any(r.outcome == Outcome.DENY for r in m.fired))
        v = RuleSet.finish(m, values)
        return v.outcome, v.reason


def test_pboc_static_code_cap_is_500_yuan_per_payer_per_day_on_the_bank_channel() -> None:
    e = Engine(rules_by_id("pboc-static-daily"))
    static = {"channel": "bankpay", "way_code": "QR_STATIC", "payer_id": "alice"}
    assert e.decide(amount=30_000, **static)[0] == Outcome.ALLOW
    assert e.decide(amount=20_000, **static)[0] == Outcome.ALLOW  # exactly 500.00 yuan
    assert e.decide(amount=1, **static) == (Outcome.DENY, "PAYER_DAILY_LIMIT")
    # a refused payment does not eat the cap; another payer has their own
    assert e.decide(amount=1, channel="bankpay", way_code="QR_STATIC", payer_id="bob")[0] == \
        Outcome.ALLOW
    # other channels are their issuers' business
    assert e.decide(amount=90_000, channel="wechat", way_code="QR_STATIC",
                    payer_id="alice")[0] == Outcome.ALLOW
    # the next Beijing day starts afresh (16:00 UTC is midnight in Beijing)
    e.now = T0.replace(hour=16)
    assert e.decide(amount=50_000, **static)[0] == Outcome.ALLOW


def test_pboc_payer_presented_code_caps_challenge_at_1000_and_deny_at_5000() -> None:
    e = Engine(rules_by_id("pboc-dynamic-c-daily", "pboc-dynamic-b-daily"))
    code = {"channel": "bankpay", "way_code": "BARCODE", "payer_id": "alice"}
    assert e.decide(amount=100_000, **code)[0] == Outcome.ALLOW  # 1,000 yuan: level C holds
    assert e.decide(amount=1, **code) == (Outcome.CHALLENGE, "STRONG_AUTH_REQUIRED")
    assert e.decide(amount=399_999, **code)[0] == Outcome.CHALLENGE  # 5,000.00 in all
    assert e.decide(amount=1, **code) == (Outcome.DENY, "PAYER_DAILY_LIMIT")


def test_single_payer_code_payment_above_the_caps() -> None:
    e = Engine(rules_by_id("pboc-dynamic-c-single", "pboc-dynamic-b-single"))
    code = {"channel": "bankpay", "way_code": "BARCODE", "payer_id": None}
    assert e.decide(amount=100_000, **code)[0] == Outcome.ALLOW
    assert e.decide(amount=100_001, **code)[0] == Outcome.CHALLENGE
    assert e.decide(amount=500_000, **code)[0] == Outcome.CHALLENGE
    assert e.decide(amount=500_001, **code)[0] == Outcome.DENY


def test_category_limit_per_transaction() -> None:
    e = Engine(rules_by_id("small-shop-single"))
    assert e.decide(amount=2_000_000)[0] == Outcome.ALLOW
    assert e.decide(amount=2_000_001) == (Outcome.REVIEW, "AMOUNT_UNUSUAL")
    assert e.decide(amount=2_000_001, mcc="7011")[0] == Outcome.ALLOW  # hotels are other


def test_merchant_daily_and_monthly_sums() -> None:
    e = Engine(rules_by_id("merchant-daily", "merchant-monthly"))
    assert e.decide(amount=50_000_000)[0] == Outcome.ALLOW
    assert e.decide(amount=1) == (Outcome.REVIEW, "MERCHANT_DAILY_VOLUME")
    e.now = T0 + timedelta(days=1)
    assert e.decide(amount=1)[0] == Outcome.ALLOW
    for day in range(2, 11):
        e.now = T0 + timedelta(days=day)
        assert e.decide(amount=49_000_000)[0] == Outcome.ALLOW  # 491,000.02 yuan by day 10
    e.now = T0 + timedelta(days=11)
    assert e.decide(amount=49_000_000) == (Outcome.REVIEW, "MERCHANT_MONTHLY_VOLUME")


def test_payer_velocity_slides() -> None:
    e = Engine(rules_by_id("payer-velocity"))  # more than 10 in 600 s
    for i in range(10):
        e.now = T0 + timedelta(seconds=i)
        assert e.decide()[0] == Outcome.ALLOW
    e.now = T0 + timedelta(seconds=599)
    assert e.decide() == (Outcome.REVIEW, "PAYER_VELOCITY")
    # the first payment (t=0) leaves the window at t=600; the REVIEWed one was counted
    e.now = T0 + timedelta(seconds=600)
    assert e.decide()[0] == Outcome.REVIEW  # 9 + the reviewed + this = 11
    e.now = T0 + timedelta(seconds=602)
    assert e.decide()[0] == Outcome.ALLOW  # t=0,1,2 gone: 10


def test_a_retried_create_counts_once() -> None:
    e = Engine(rules_by_id("payer-velocity"))
    for _ in range(30):
        assert e.decide(key="m1:same-out-trade-no")[0] == Outcome.ALLOW


def test_blacklists_and_ip_ranges_and_whitelist() -> None:
    e = Engine(rules_by_id("blacklist-payer", "blacklist-ip", "whitelist-merchant",
                           "small-shop-single", "pboc-static-daily"),
               lists=[("payer-blacklist", "mule"), ("ip-blacklist", "203.0.113.0/24"),
                      ("merchant-whitelist", "vip")])
    assert e.decide(payer_id="mule") == (Outcome.DENY, "PAYER_BLOCKED")
    assert e.decide(client_ip="203.0.113.77") == (Outcome.DENY, "IP_BLOCKED")
    assert e.decide(client_ip="203.0.114.1")[0] == Outcome.ALLOW
    # a whitelisted merchant skips the bank's rules...
    assert e.decide(merchant_id="vip", amount=9_000_000)[0] == Outcome.ALLOW
    assert e.decide(merchant_id="vip", payer_id="mule")[0] == Outcome.ALLOW
    # ...never the regulator's
    assert e.decide(merchant_id="vip", channel="bankpay", way_code="QR_STATIC", payer_id="x",
                    amount=50_001)[0] == Outcome.DENY


def test_unusual_hours_wrap_and_bound() -> None:
    e = Engine(rules_by_id("night-small-shop"))  # [1, 5) o'clock, >= 1,000 yuan
    assert e.decide(hour=1, amount=100_000) == (Outcome.REVIEW, "UNUSUAL_HOUR")
    assert e.decide(hour=4, amount=100_000)[0] == Outcome.REVIEW
    assert e.decide(hour=5, amount=100_000)[0] == Outcome.ALLOW
    assert e.decide(hour=0, amount=100_000)[0] == Outcome.ALLOW
    assert e.decide(hour=2, amount=99_999)[0] == Outcome.ALLOW
    wrap = Engine([{"id": "late", "outcome": "REVIEW", "reason": "LATE",
                    "when": [{"field": "hour", "op": "hour_between", "value": [22, 6]}]}])
    assert [wrap.decide(hour=h)[0] for h in (21, 22, 23, 0, 5, 6)] == [
        Outcome.ALLOW, Outcome.REVIEW, Outcome.REVIEW, Outcome.REVIEW, Outcome.REVIEW,
        Outcome.ALLOW]


def test_round_amount_burst() -> None:
    e = Engine(rules_by_id("round-burst"))  # > 3 round amounts >= 1,000 yuan per hour
    for i in range(3):
        e.now = T0 + timedelta(minutes=i)
        assert e.decide(amount=200_000, payer_id=f"p{i}")[0] == Outcome.ALLOW
    assert e.decide(amount=200_050)[0] == Outcome.ALLOW  # not round: not counted
    assert e.decide(amount=300_000) == (Outcome.REVIEW, "ROUND_AMOUNT_BURST")


def test_split_payments_under_the_cap() -> None:
    e = Engine(rules_by_id("split-under-limit"))
    assert e.decide(amount=95_000)[0] == Outcome.ALLOW
    assert e.decide(amount=99_999)[0] == Outcome.ALLOW
    assert e.decide(amount=100_000)[0] == Outcome.ALLOW  # at the cap: not "under" it
    assert e.decide(amount=90_000) == (Outcome.REVIEW, "SPLIT_TRANSACTIONS")


def test_many_payers_to_one_merchant_in_seconds() -> None:
    e = Engine(rules_by_id("many-payers"))  # more than 15 distinct payers of 100+ yuan in 60 s
    for i in range(15):
        assert e.decide(payer_id=f"v{i}", amount=10_000)[0] == Outcome.ALLOW
    assert e.decide(payer_id="v3", amount=10_000)[0] == Outcome.ALLOW  # not a new payer
    assert e.decide(payer_id="lunch", amount=9_999)[0] == Outcome.ALLOW  # a canteen's ticket
    assert e.decide(payer_id="v15", amount=10_000) == (Outcome.REVIEW, "COLLECTION_PATTERN")
    e.now = T0 + timedelta(seconds=61)
    assert e.decide(payer_id="v16", amount=10_000)[0] == Outcome.ALLOW


def test_refund_ratio_on_refunds() -> None:
    e = Engine(rules_by_id("refund-ratio"))  # refunds above 30% of 7 days' payments
    e.decide(amount=100_000)
    assert e.decide(action="refund", amount=30_000)[0] == Outcome.ALLOW
    assert e.decide(action="refund", amount=1_000) == (Outcome.REVIEW, "REFUND_RATIO")
    e.now = T0 + timedelta(days=7, seconds=1)  # the payment has left the window
    assert e.decide(action="refund", amount=1)[0] == Outcome.REVIEW


def test_new_merchant_first_days() -> None:
    e = Engine(rules_by_id("new-merchant-large"))
    assert e.decide(merchant_age_days=6, amount=500_001) == (Outcome.REVIEW, "NEW_MERCHANT")
    assert e.decide(merchant_age_days=7, amount=500_001)[0] == Outcome.ALLOW
    assert e.decide(merchant_age_days=6, amount=500_000)[0] == Outcome.ALLOW
    assert e.decide(merchant_age_days=None, amount=900_000)[0] == Outcome.ALLOW


@pytest.mark.parametrize(("rule", "message"), [
    ({"id": "x1", "outcome": "DENY", "reason": "NO_WAY"}, "would deny everything"),
    ({"id": "x1", "outcome": "BLOCK", "reason": "NO_WAY"}, "outcome must be"),
    ({"id": "X!", "outcome": "REVIEW", "reason": "NO_WAY"}, "id:"),
    ({"id": "x1", "outcome": "REVIEW", "reason": "lower"}, "UPPER_SNAKE"),
    ({"id": "x1", "outcome": "REVIEW", "reason": "R_R",
      "when": [{"field": "colour", "op": "eq", "value": "red"}]}, "unknown field 'colour'"),
    ({"id": "x1", "outcome": "REVIEW", "reason": "R_R",
      "when": [{"field": "amount", "op": "eq", "value": "100"}]}, "not an integer"),
    ({"id": "x1", "outcome": "REVIEW", "reason": "R_R",
      "when": [{"field": "channel", "op": "gt", "value": "a"}]}, "does not apply"),
    ({"id": "x1", "outcome": "REVIEW", "reason": "R_R",
      "counter": {"measure": "sum", "by": "payer", "window": 0}, "threshold": 1}, "window"),
    ({"id": "x1", "outcome": "REVIEW", "reason": "R_R",
      "counter": {"measure": "distinct_payers", "by": "payer", "window": 60}}, "by merchant"),
    ({"id": "x1", "outcome": "REVIEW", "reason": "R_R", "threshold": 3}, "needs a counter"),
    ({"id": "x1", "outcome": "REVIEW", "reason": "R_R", "colour": 1}, "unknown keys"),
])
def test_bad_rules_are_refused_with_a_reason(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        compile_rule(rule)


def test_a_rule_set_that_denies_every_ordinary_payment_is_refused() -> None:
    sly = compile_rule({"id": "sly", "outcome": "DENY", "reason": "NO_WAY",
                        "when": [{"field": "amount", "op": "ge", "value": 1}]})
    with pytest.raises(RuleError, match="deny every ordinary payment"):
        check_not_deny_all([sly], build_lists([]))
    narrow = compile_rule({"id": "narrow", "outcome": "DENY", "reason": "NO_WAY",
                           "when": [{"field": "amount", "op": "ge", "value": 5_000}]})
    check_not_deny_all([narrow], build_lists([]))  # some ordinary payments pass


def test_a_rule_that_raises_fails_safe_to_review() -> None:
    rs = RuleSet(version=1, rules=(compile_rule(
        {"id": "odd", "outcome": "DENY", "reason": "ODD",
         "when": [{"field": "amount", "op": "multiple_of", "value": 7}]}),))
    m = rs.match({"amount": "not a number"})  # facts a rule did not expect
    v = RuleSet.finish(m, [])
    assert (v.outcome, v.reason) == (Outcome.REVIEW, "RULE_ERROR")
    assert v.errors == ("odd: TypeError",)
    broken = RuleSet(version=2, rules=(), broken=("bad",))
    assert RuleSet.finish(broken.match({"amount": 1}), []).outcome == Outcome.REVIEW


def test_the_shipped_rules_compile_and_are_twenty_or_more() -> None:
    rules = [compile_rule(r) for r in DEFAULT_RULES]
    assert len(rules) >= 20
    assert {r.id for r in rules if r.regulatory} == {
        "pboc-static-daily", "pboc-dynamic-c-daily", "pboc-dynamic-b-daily",
        "pboc-dynamic-c-single", "pboc-dynamic-b-single"}
    check_not_deny_all(rules, build_lists([]))
