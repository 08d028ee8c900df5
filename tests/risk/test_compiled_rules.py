"""The compiled rule set decides exactly as the interpreted one did, on any rules and facts
(including facts a rule did not expect, which must still fail safe to REVIEW with the rule's
id), and a stored rule's edit reaches a running engine's compiled function without a restart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulema.core.money import Money
from fulema.risk import rules as stored_rules
from fulema.risk import service as risk
from fulema.risk.defaults import DEFAULT_RULES
from fulema.risk.domain import (
    BY_FIELDS,
    FIELDS,
    OPS_BY_KIND,
    Match,
    Outcome,
    Rule,
    RuleError,
    RuleSet,
    Verdict,
    build_lists,
    compile_rule,
)
from fulema.risk.engine import engine_for
from tests.risk.conftest import Platform

STRS = ["a", "b", ""]
IPS = ["10.0.0.1", "192.168.1.5", "::1"]
LIST_NAMES = ["l-one", "l-two", "l-empty"]


def reference_finish(match: Match, values: Sequence[int]) -> Verdict:
    """`RuleSet.finish` as it was before its fast paths: the semantics the fast one keeps."""
    fired = list(match.fired)
    for (rule, op), value in zip(match.pending, values, strict=True):
        if op.measure == "refund_ratio" and op.action != "refund":
            continue
        if value > rule.threshold:
            fired.append(rule)
    if any(r.outcome == Outcome.ALLOW for r in fired):
        fired = [r for r in fired if r.regulatory or r.outcome == Outcome.ALLOW]
    outcome, reason = Outcome.ALLOW, ""
    for r in fired:
        if r.outcome > outcome:
            outcome, reason = r.outcome, r.reason
    if match.errors and outcome < Outcome.REVIEW:
        outcome, reason = Outcome.REVIEW, "RULE_ERROR"
    return Verdict(outcome=outcome, reason=reason, fired=tuple(r.id for r in fired),
                   errors=tuple(match.errors))


def _scalar(kind: str) -> st.SearchStrategy[Any]:
    if kind == "int":  # few values, so facts meet thresholds and boundaries exactly, often
        return st.sampled_from([0, 1, 3, 22])
    return st.sampled_from(IPS if kind == "ip" else STRS)


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(FIELDS)))
    kind = FIELDS[name]
    op = draw(st.sampled_from(sorted(OPS_BY_KIND[kind])))
    cond: dict[str, Any] = {"field": name, "op": op}
    if op in ("in_list", "not_in_list"):
        cond["value"] = draw(st.sampled_from(LIST_NAMES))
    elif op in ("in", "not_in"):
        cond["value"] = draw(st.lists(_scalar(kind), min_size=1, max_size=3))
    elif op == "multiple_of":
        cond["value"] = draw(st.sampled_from([1, 3, 11]))
    elif op == "hour_between":
        hours = st.sampled_from([0, 1, 3, 22, 24])
        cond["value"] = [draw(hours), draw(hours)]
    elif op not in ("present", "absent"):
        cond["value"] = draw(_scalar(kind))
    return cond


@st.composite
def rule_bodies(draw: st.DrawFn, n: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"rule-{n}", "outcome": draw(st.sampled_from([o.name for o in Outcome])),
        "reason": f"REASON_{n}", "regulatory": draw(st.booleans()),
        "when": draw(st.lists(conditions(), max_size=3))}
    if draw(st.booleans()):
        measure = draw(st.sampled_from(["count", "sum", "distinct_payers", "refund_ratio"]))
        sliding = measure in ("distinct_payers", "refund_ratio") or draw(st.booleans())
        body["counter"] = {
            "measure": measure,
            "by": "merchant" if measure in ("distinct_payers", "refund_ratio")
            else draw(st.sampled_from(sorted(BY_FIELDS))),
            "window": draw(st.integers(1, 86_400)) if sliding
            else draw(st.sampled_from(["day", "month"]))}
        body["threshold"] = draw(st.integers(0, 5))
    return body


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    compiled: list[Rule] = []
    for n in range(draw(st.integers(0, 8))):
        try:
            compiled.append(compile_rule(draw(rule_bodies(n))))
        except RuleError:
            continue  # refused before it could take effect: not a rule set's member
    entries = draw(st.lists(st.tuples(st.sampled_from(LIST_NAMES[:2]),
                                      st.sampled_from([*STRS, *IPS, "10.0.0.0/24", "7"])),
                            max_size=6))
    broken = tuple(draw(st.lists(st.sampled_from(["old-a", "old-b"]), max_size=1)))
    return RuleSet(version=1, rules=tuple(compiled), lists=build_lists(entries), broken=broken)


def _fact(kind: str) -> st.SearchStrategy[Any]:
    odd = st.sampled_from([None, "x", 7, 2.5])  # what a caller might pass by mistake
    return st.one_of(_scalar(kind), _scalar(kind), _scalar(kind), odd)


# every fact present (None stands for unknown); action and amount also missing at times, which
# the counters read with their own defaults
facts_strategy = st.fixed_dictionaries(
    {name: _fact(kind) for name, kind in FIELDS.items() if name not in ("amount", "action")},
    optional={"amount": _fact("int"), "action": st.sampled_from(["pay", "refund", None, 3])})


def _shape(m: Match) -> tuple[Any, ...]:
    return ([r.id for r in m.fired], [(r.id, astuple(op)) for r, op in m.pending], m.errors)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rs=rule_sets(), facts=st.lists(facts_strategy, min_size=1, max_size=4),
       values=st.lists(st.integers(0, 2_000), min_size=8, max_size=8))
def test_compiled_match_and_finish_decide_as_the_interpreted_rules(
        rs: RuleSet, facts: list[dict[str, Any]], values: list[int]) -> None:
    for f in facts:
        compiled, interpreted = rs.match(f), rs.match_interpreted(f)
        assert _shape(compiled) == _shape(interpreted)
        counted = values[:len(compiled.pending)]
        assert RuleSet.finish(compiled, counted) == reference_finish(interpreted, counted)


def test_every_boundary_of_the_integer_operators_matches_the_interpreted_rules() -> None:
    """Exhaustive where the random search is thin: each comparison at, below and above its
    value, and every hour window (wrapping midnight or not) at every hour."""
    rules = []
    for n, (op, value) in enumerate(
            [(op, v) for op in ("lt", "le", "gt", "ge", "eq", "ne") for v in (0, 5)]
            + [("multiple_of", v) for v in (1, 5)]
            + [("hour_between", [lo, hi]) for lo in range(0, 25, 3) for hi in range(0, 25, 4)]):
        rules.append(compile_rule({"id": f"b-{n}", "outcome": "REVIEW", "reason": f"B_{n}",
                                   "when": [{"field": "hour", "op": op, "value": value}]}))
    rs = RuleSet(version=1, rules=tuple(rules))
    for hour in [*range(-1, 26), None]:
        assert _shape(rs.match({"hour": hour})) == _shape(rs.match_interpreted({"hour": hour}))


def test_the_shipped_rules_compile_to_one_function_without_stored_text_in_it() -> None:
    rs = RuleSet(version=3, rules=tuple(compile_rule(r) for r in DEFAULT_RULES))
    source: str = rs._match.source  # type: ignore[attr-defined]
    assert source.startswith("def match(facts):")
    # rule ids, reasons, list names and values are bound constants, never code
    for body in DEFAULT_RULES:
        assert body["id"] not in source
        assert body.get("reason", "NONE") not in source
    assert "merchant-blacklist" not in source


def test_a_facts_type_a_rule_did_not_expect_names_the_rule_and_reviews() -> None:
    rs = RuleSet(version=1, rules=(
        compile_rule({"id": "late", "outcome": "DENY", "reason": "LATE",
                      "when": [{"field": "hour", "op": "hour_between", "value": [22, 6]}]}),
        compile_rule({"id": "fine", "outcome": "REVIEW", "reason": "FINE",
                      "when": [{"field": "channel", "op": "eq", "value": "wechat"}]})))
    m = rs.match({"hour": "midnight", "channel": "wechat"})
    assert m.errors == ["late: TypeError"]
    v = RuleSet.finish(m, [])
    assert (v.outcome, v.reason, v.fired) == (Outcome.REVIEW, "FINE", ("fine",))


async def test_an_edit_reaches_the_running_engines_compiled_rules(platform: Platform) -> None:
    """The engine keeps its compiled function until the stored version moves; then it builds
    a new one, in the same process (no restart), and the next decision runs the edit."""
    p = platform
    engine = engine_for(p.db, p.settings)

    async def outcome(amount: int, n: int) -> str:
        d = await risk.decide(p.db, settings=p.settings, merchant_id=p.merchant_id,
                              out_no=f"EDIT{n}", amount=Money(amount), channel="wechat",
                              way_code="QR_DYNAMIC", payer_id=f"edit-payer-{n}")
        return d.outcome

    assert await outcome(90_000, 1) == "ALLOW"
    first = await engine.ruleset()
    body = {"id": "edit-me", "outcome": "REVIEW", "reason": "EDITED",
            "when": [{"field": "amount", "op": "ge", "value": 80_000}]}
    await stored_rules.save_rule(p.db, body=body, enabled=True, operator="ops-1")
    assert await outcome(90_000, 2) == "REVIEW"
    second = await engine.ruleset()
    assert second.version > first.version
    assert second._match is not first._match
    await stored_rules.save_rule(p.db, body={**body, "outcome": "DENY", "reason": "EDITED_AGAIN",
                                             "when": [{"field": "amount", "op": "ge",
                                                       "value": 95_000}]},
                                 enabled=True, operator="ops-1")
    assert await outcome(90_000, 3) == "ALLOW"
    assert await outcome(95_000, 4) == "DENY"
    await stored_rules.set_enabled(p.db, rule_id="edit-me", enabled=False, operator="ops-1")
    assert await outcome(95_000, 5) == "ALLOW"


def test_an_unchanged_version_keeps_its_compiled_function() -> None:
    rs = RuleSet(version=1, rules=tuple(compile_rule(r) for r in DEFAULT_RULES),
                 lists=build_lists([("payer-blacklist", "mule")]))
    fn = rs._match
    facts = {"action": "pay", "amount": 100, "channel": "wechat", "payer_id": "mule",
             "merchant_id": "m1", "hour": 12}
    for _ in range(3):
        m = rs.match(facts)
        assert RuleSet.finish(m, [1] * len(m.pending)).reason == "PAYER_BLOCKED"
    assert rs._match is fn
