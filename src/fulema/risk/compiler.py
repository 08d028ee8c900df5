"""A rule set compiled into one Python function per rule-set version: the hot path's `match`.

The interpreted `RuleSet.match_interpreted` walks each rule's checks as closures, one call per
condition per decision (about 30 calls for the shipped rules) and re-reads each fact from the
dict every time. Here the whole rule set becomes the source of one function: each fact a rule
uses is read once, each condition is an inline expression, a list that is empty in this
version folds to a constant, and each rule keeps its own `try` (free in CPython 3.11 until
something raises) so a rule that raises is still reported by its id and the decision fails
safe to REVIEW exactly as before.

Only identifiers this module makes go into the source: fact names come from `FIELDS` (checked
by `compile_rule`), operators from a fixed set, and every value an operator wrote (thresholds,
list names, members, rule ids) is bound as a constant `_k<n>` in the function's namespace, so
nothing stored can change the code. The function is built when a `RuleSet` is made, that is
once per rule-set version (an edit bumps the version and the engine loads a new `RuleSet`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from fulema.risk.domain import FIELDS, CounterOp, Lists, Match, Outcome, Rule

MatchFn = Callable[[Mapping[str, Any]], Match]


class _Source:
    """The function's text and the constants it names."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)


def _var(field_name: str) -> str:
    if field_name not in FIELDS or not field_name.isidentifier():
        raise ValueError(f"not a fact: {field_name!r}")  # compile_rule has refused it already
    return f"v_{field_name}"


def _condition(src: _Source, cond: Mapping[str, Any], lists: Lists) -> str:
    """One condition of a compiled rule as an expression, evaluated as `domain._check` does."""
    v = _var(str(cond["field"]))
    op, value = str(cond["op"]), cond.get("value")  # checked by compile_rule
    value = cast(Any, value)
    if op == "present":
        return f"{v} is not None"
    if op == "absent":
        return f"{v} is None"
    if op in ("in_list", "not_in_list"):
        name = str(value)
        members, nets = lists.values.get(name), lists.networks.get(name)
        if members is None and nets is None:  # an empty list: contains() is always False
            return "False" if op == "in_list" else "True"
        if nets:
            test = f"_contains({src.const(name)}, {v})"
        else:
            test = f"({v} is not None and str({v}) in {src.const(members)})"
        return test if op == "in_list" else f"not {test}"
    if op in ("in", "not_in"):
        return f"{v} {'in' if op == 'in' else 'not in'} {src.const(frozenset(value))}"
    if op == "eq":
        return f"{v} == {src.const(value)}"
    if op == "ne":
        return f"{v} != {src.const(value)}"
    if op == "multiple_of":
        return f"({v} is not None and {v} % {src.const(value)} == 0)"
    if op == "hour_between":
        lo, hi = src.const(value[0]), src.const(value[1])
        if value[0] <= value[1]:
            return f"({v} is not None and {lo} <= {v} < {hi})"
        return f"({v} is not None and ({v} >= {lo} or {v} < {hi}))"
    symbol = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
    return f"({v} is not None and {v} {symbol} {src.const(value)})"


def compile_match(rules: Sequence[Rule], lists: Lists, broken: Sequence[str]) -> MatchFn:
    """The rule set's `match` as one function (same answers as `RuleSet.match_interpreted`)."""
    src = _Source()
    used: list[str] = []
    for rule in rules:
        for cond in rule.body.get("when", []):
            if cond["field"] not in used:
                used.append(str(cond["field"]))
        if rule.by_field and rule.by_field not in used:
            used.append(rule.by_field)
    if any(r.kind == "rr" for r in rules) and "merchant_id" not in used:
        used.append("merchant_id")
    src.emit(0, "def match(facts):")
    src.emit(1, "get = facts.get")
    for name in used:
        src.emit(1, f"{_var(name)} = get({src.const(name)})")
    src.emit(1, "action = get('action', 'pay')")
    src.emit(1, "amount = get('amount', 0)")
    src.emit(1, "payer = get('payer_id')")
    if any(r.counter is not None for r in rules):
        # int(amount) and str(action) once, not once per counter; where one raises (a fact of
        # the wrong type) each counter rule calls it again inside its own `try`, so the error
        # is still reported by that rule's id, as the interpreted rules do
        src.emit(1, "try:")
        src.emit(2, "amount_i = int(amount)")
        src.emit(2, "action_s = str(action)")
        src.emit(1, "except Exception:")
        src.emit(2, "amount_i = action_s = None")
    src.emit(1, f"errors = list({src.const(tuple(f'{b}: does not compile' for b in broken))})")
    src.emit(1, "fired = []")
    src.emit(1, "pending = []")
    for rule in rules:
        r = src.const(rule)
        conds = [_condition(src, c, lists) for c in rule.body.get("when", [])]
        src.emit(1, "try:")
        body = 2
        if conds:
            src.emit(2, f"if {' and '.join(f'({c})' for c in conds)}:")
            body = 3
        spec = rule.counter
        if spec is None:
            src.emit(body, f"fired.append({r})")
        else:
            if rule.kind == "rr":
                src.emit(body, "key = v_merchant_id")
            else:
                src.emit(body, f"key = {_var(rule.by_field)} if action == 'pay' else None")
            op_args = ", ".join(src.const(x) for x in (rule.id, spec.measure)) + ", str(key), " \
                + src.const(spec.window) + ", int(amount) if amount_i is None else amount_i, payer, " \
                + ", ".join(
                    src.const(x) for x in (rule.threshold, rule.outcome == Outcome.DENY)) \
                + f", str(action) if action_s is None else action_s, {src.const(rule.kind)}"
            src.emit(body, "if key is not None:")
            src.emit(body + 1, f"pending.append(({r}, _CounterOp({op_args})))")
        src.emit(1, "except Exception as exc:")
        src.emit(2, f"errors.append(f'{{{src.const(rule.id)}}}: {{type(exc).__name__}}')")
    src.emit(1, "return _Match(fired, pending, errors)")
    namespace: dict[str, Any] = {"_CounterOp": CounterOp, "_Match": Match,
                                 "_contains": lists.contains, **src.consts}
    exec(compile("\n".join(src.lines), "<risk rule set>", "exec"), namespace)  # noqa: S102
    fn: MatchFn = namespace["match"]
    fn.source = "\n".join(src.lines)  # type: ignore[attr-defined]  # for an operator's eyes
    return fn
