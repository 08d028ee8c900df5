"""The risk rule language and its evaluation: pure, no I/O.

A rule is data (a JSON object, stored and versioned by `rules.py`):

    {"id": "pboc-static-daily", "outcome": "DENY", "reason": "PAYER_DAILY_LIMIT",
     "regulatory": true,
     "when": [{"field": "channel", "op": "eq", "value": "bankpay"},
              {"field": "way_code", "op": "eq", "value": "QR_STATIC"}],
     "counter": {"measure": "sum", "by": "payer", "window": "day"},
     "threshold": 50000}

It fires when every `when` condition holds and, if it has a `counter`, when the counter's value
(this transaction included) is above `threshold`. Outcomes rank ALLOW < REVIEW < CHALLENGE <
DENY and the worst fired outcome wins, except that a fired ALLOW rule (a whitelist) silences
every rule not marked `regulatory`: a bank may exempt a merchant from its own rules, never from
the regulator's.

`compile_rule` parses and checks a rule (known fields, operators that fit the field, windows in
range) and raises `RuleError` with a message an operator can act on; `RuleSet.evaluate` runs the
compiled rules over one transaction's facts in two steps around the counter store (one round
trip): `match` decides which rules apply and which counters they need, `finish` turns the
counters' values into the decision.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

DAY = 86_400
MAX_WINDOW_SECONDS = 31 * DAY


class Outcome(IntEnum):
    """Ranked: the worst fired outcome is the decision."""

    ALLOW = 0
    REVIEW = 1
    CHALLENGE = 2
    DENY = 3


class RuleError(ValueError):
    """A rule that does not parse, names an unknown field or would deny everything."""


# field -> kind; a condition's operator must fit the kind
FIELDS: dict[str, str] = {
    "action": "str",            # pay | refund
    "amount": "int",            # fen
    "channel": "str",
    "way_code": "str",
    "merchant_id": "str",
    "mcc": "str",
    "store_id": "str",
    "terminal_id": "str",
    "payer_id": "str",
    "device_id": "str",
    "client_ip": "ip",
    "hour": "int",              # 0-23, Beijing time
    "weekday": "int",           # 0 = Monday
    "merchant_age_days": "int",  # days since activation; absent when unknown
}
OPS_BY_KIND: dict[str, set[str]] = {
    "str": {"eq", "ne", "in", "not_in", "in_list", "not_in_list", "present", "absent"},
    "int": {"eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "multiple_of", "hour_between",
            "present", "absent"},
    "ip": {"eq", "ne", "in_list", "not_in_list", "present", "absent"},
}
MEASURES = {"count", "sum", "distinct_payers", "refund_ratio"}
# counter key -> the fact it is keyed on
BY_FIELDS = {"payer": "payer_id", "merchant": "merchant_id", "terminal": "terminal_id",
             "device": "device_id", "ip": "client_ip", "store": "store_id"}
REASON_RE = re.compile(r"^[A-Z][A-Z0-9_]{2,39}$")
RULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")


@dataclass(frozen=True)
class Lists:
    """Named lists (blacklists, whitelists) as sets; IP lists may hold CIDR ranges."""

    values: Mapping[str, frozenset[str]] = field(default_factory=dict)
    networks: Mapping[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = \
        field(default_factory=dict)

    def contains(self, name: str, value: Any) -> bool:
        if value is None:
            return False
        members = self.values.get(name)
        nets = self.networks.get(name)
        if members is None and nets is None:
            return False  # an empty list: the usual case, kept cheap
        text = str(value)
        if members is not None and text in members:
            return True
        if nets:
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:
                return False
            return any(addr in net for net in nets)
        return False


def build_lists(entries: Sequence[tuple[str, str]]) -> Lists:
    values: dict[str, set[str]] = {}
    nets: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    for name, value in entries:
        if "/" in value:
            try:
                nets.setdefault(name, []).append(ipaddress.ip_network(value, strict=False))
                continue
            except ValueError:
                pass
        values.setdefault(name, set()).add(value)
    return Lists(values={k: frozenset(v) for k, v in values.items()},
                 networks={k: tuple(v) for k, v in nets.items()})


Check = Callable[[Mapping[str, Any], Lists], bool]


def _check(field_name: str, op: str, value: Any) -> Check:
    f = field_name
    if op == "present":
        return lambda facts, _l: facts.get(f) is not None
    if op == "absent":
        return lambda facts, _l: facts.get(f) is None
    if op in ("in_list", "not_in_list"):
        name, negate = str(value), op == "not_in_list"
        return lambda facts, lists: lists.contains(name, facts.get(f)) != negate
    if op in ("in", "not_in"):
        members, negate = frozenset(value), op == "not_in"
        return lambda facts, _l: (facts.get(f) in members) != negate
    if op == "eq":
        return lambda facts, _l: facts.get(f) == value
    if op == "ne":
        return lambda facts, _l: facts.get(f) != value
    if op == "multiple_of":
        return lambda facts, _l: (x := facts.get(f)) is not None and x % value == 0
    if op == "hour_between":  # [from, to): wraps midnight when from > to
        lo, hi = value
        if lo <= hi:
            return lambda facts, _l: (x := facts.get(f)) is not None and lo <= x < hi
        return lambda facts, _l: (x := facts.get(f)) is not None and (x >= lo or x < hi)
    compare: dict[str, Callable[[Any], bool]] = {
        "lt": lambda x: x < value, "le": lambda x: x <= value,
        "gt": lambda x: x > value, "ge": lambda x: x >= value}
    cmp = compare[op]
    return lambda facts, _l: (x := facts.get(f)) is not None and cmp(x)


def _check_value(field_name: str, kind: str, op: str, value: Any) -> None:
    where = f"{field_name} {op}"
    if op in ("present", "absent"):
        return
    if op in ("in_list", "not_in_list"):
        if not isinstance(value, str) or not RULE_ID_RE.match(value):
            raise RuleError(f"{where}: the value must name a list (lower-case letters, digits, -_.)")
        return
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleError(f"{where}: the value must be a non-empty list")
        for v in value:
            _check_scalar(where, kind, v)
        return
    if op == "hour_between":
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and 0 <= v <= 24 for v in value)):
            raise RuleError(f"{where}: the value must be [from_hour, to_hour], hours 0..24")
        return
    if op == "multiple_of" and (not isinstance(value, int) or value <= 0):
        raise RuleError(f"{where}: the value must be a positive integer")
    _check_scalar(where, kind, value)


def _check_scalar(where: str, kind: str, v: Any) -> None:
    if kind == "int" and (not isinstance(v, int) or isinstance(v, bool)):
        raise RuleError(f"{where}: {v!r} is not an integer")
    if kind in ("str", "ip") and not isinstance(v, str):
        raise RuleError(f"{where}: {v!r} is not a string")


@dataclass(frozen=True)
class CounterSpec:
    measure: str
    by: str
    window: int | str  # seconds, or "day" / "month" (Beijing calendar)

    @property
    def kind(self) -> str:
        """The store's name for it: sliding count/sum, distinct payers, refund ratio, calendar
        count/sum."""
        if isinstance(self.window, str):
            return "cc" if self.measure == "count" else "cs"
        return {"count": "sc", "sum": "ss", "distinct_payers": "dp", "refund_ratio": "rr"}[
            self.measure]


@dataclass(frozen=True)
class Rule:
    id: str
    outcome: Outcome
    reason: str
    regulatory: bool
    checks: tuple[Check, ...]
    counter: CounterSpec | None
    threshold: int
    lists_used: frozenset[str]
    body: Mapping[str, Any]
    by_field: str = ""  # the fact the counter is keyed on
    kind: str = ""  # the counter's kind (CounterSpec.kind)


def compile_rule(body: Mapping[str, Any]) -> Rule:
    """Parses and checks one rule; `RuleError` names what is wrong."""
    if not isinstance(body, Mapping):
        raise RuleError("a rule is a JSON object")
    known = {"id", "name", "outcome", "reason", "regulatory", "when", "counter", "threshold",
             "note"}
    extra = set(body) - known
    if extra:
        raise RuleError(f"unknown keys: {', '.join(sorted(extra))}")
    rule_id = body.get("id")
    if not isinstance(rule_id, str) or not RULE_ID_RE.match(rule_id):
        raise RuleError("id: 2-64 lower-case letters, digits, '-', '_' or '.'")
    try:
        outcome = Outcome[str(body.get("outcome"))]
    except KeyError:
        raise RuleError(f"{rule_id}: outcome must be one of ALLOW, REVIEW, CHALLENGE, DENY") from None
    reason = body.get("reason", "")
    if outcome != Outcome.ALLOW and (not isinstance(reason, str) or not REASON_RE.match(reason)):
        raise RuleError(f"{rule_id}: reason must be an UPPER_SNAKE code (3-40 characters)")
    when = body.get("when", [])
    if not isinstance(when, list):
        raise RuleError(f"{rule_id}: when must be a list of conditions")
    checks: list[Check] = []
    lists_used: set[str] = set()
    for cond in when:
        if not isinstance(cond, Mapping) or set(cond) - {"field", "op", "value"}:
            raise RuleError(f"{rule_id}: a condition is {{field, op, value}}")
        fname, op = cond.get("field"), cond.get("op")
        kind = FIELDS.get(str(fname))
        if kind is None:
            raise RuleError(f"{rule_id}: unknown field {fname!r}; known: {', '.join(FIELDS)}")
        if op not in OPS_BY_KIND[kind]:
            raise RuleError(f"{rule_id}: operator {op!r} does not apply to {fname} "
                            f"(use {', '.join(sorted(OPS_BY_KIND[kind]))})")
        _check_value(str(fname), kind, str(op), cond.get("value"))
        if op in ("in_list", "not_in_list"):
            lists_used.add(str(cond["value"]))
        checks.append(_check(str(fname), str(op), cond.get("value")))
    counter = None
    spec = body.get("counter")
    if spec is not None:
        if not isinstance(spec, Mapping) or set(spec) - {"measure", "by", "window"}:
            raise RuleError(f"{rule_id}: counter is {{measure, by, window}}")
        measure, by, window = spec.get("measure"), spec.get("by"), spec.get("window")
        if measure not in MEASURES:
            raise RuleError(f"{rule_id}: counter measure must be one of {', '.join(sorted(MEASURES))}")
        if by not in BY_FIELDS:
            raise RuleError(f"{rule_id}: counter by must be one of {', '.join(BY_FIELDS)}")
        if measure in ("distinct_payers", "refund_ratio") and by != "merchant":
            raise RuleError(f"{rule_id}: {measure} is counted by merchant")
        if window not in ("day", "month") and not (
                isinstance(window, int) and not isinstance(window, bool)
                and 1 <= window <= MAX_WINDOW_SECONDS):
            raise RuleError(f"{rule_id}: window is 1..{MAX_WINDOW_SECONDS} seconds, 'day' or 'month'")
        if measure in ("distinct_payers", "refund_ratio") and not isinstance(window, int):
            raise RuleError(f"{rule_id}: {measure} needs a sliding window in seconds")
        counter = CounterSpec(measure=str(measure), by=str(by), window=window)
    threshold = body.get("threshold", 0)
    if counter is not None and (not isinstance(threshold, int) or isinstance(threshold, bool)
                                or threshold < 0):
        raise RuleError(f"{rule_id}: threshold must be a non-negative integer")
    if counter is None and "threshold" in body:
        raise RuleError(f"{rule_id}: threshold needs a counter (compare amount in `when`)")
    if outcome == Outcome.DENY and not checks and counter is None:
        raise RuleError(f"{rule_id}: would deny everything (no condition and no counter)")
    return Rule(id=rule_id, outcome=outcome, reason=str(reason or ""),
                regulatory=bool(body.get("regulatory", False)), checks=tuple(checks),
                counter=counter, threshold=int(threshold or 0),
                lists_used=frozenset(lists_used), body=dict(body),
                by_field=BY_FIELDS[counter.by] if counter else "",
                kind=counter.kind if counter else "")


@dataclass(slots=True)
class CounterOp:
    """One counter a decision reads (and records unless a DENY fires): what the store runs.
    (Slotted and not frozen: one is made per counter per decision.)"""

    rule_id: str
    measure: str  # count | sum | distinct_payers | refund_ratio
    key: str  # the value of the `by` fact
    window: int | str
    amount: int
    payer: str | None
    threshold: int
    deny: bool
    action: str  # pay | refund
    kind: str = ""  # CounterSpec.kind


@dataclass
class Match:
    fired: list[Rule]
    pending: list[tuple[Rule, CounterOp]]
    errors: list[str]


class Verdict(NamedTuple):
    """Immutable; a NamedTuple built positionally, because `finish` makes one for every
    decision where a rule fires (a frozen dataclass built by keyword cost about three times
    as much CPU)."""

    outcome: Outcome
    reason: str
    fired: tuple[str, ...]
    errors: tuple[str, ...] = ()

    @property
    def allow(self) -> bool:
        return self.outcome != Outcome.DENY


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: tuple[Rule, ...]
    lists: Lists = field(default_factory=Lists)
    broken: tuple[str, ...] = ()  # stored rules that no longer compile: every decision REVIEWs
    _match: Callable[[Mapping[str, Any]], Match] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Once per rule-set version: the rules become one function (risk/compiler.py).
        from fulema.risk.compiler import compile_match

        object.__setattr__(self, "_match", compile_match(self.rules, self.lists, self.broken))

    def match(self, facts: Mapping[str, Any]) -> Match:
        """Step one: the rules whose conditions hold, and the counters they need. A rule that
        raises is reported in `errors` (the decision then fails safe to REVIEW). Runs the
        compiled function; `match_interpreted` is the reference it must agree with."""
        return self._match(facts)

    def match_interpreted(self, facts: Mapping[str, Any]) -> Match:
        """`match` by walking each rule's checks: the reference semantics (tests compare)."""
        fired: list[Rule] = []
        pending: list[tuple[Rule, CounterOp]] = []
        errors: list[str] = [f"{b}: does not compile" for b in self.broken]
        lists = self.lists
        action = facts.get("action", "pay")
        amount = facts.get("amount", 0)
        payer = facts.get("payer_id")
        for rule in self.rules:
            try:
                for check in rule.checks:  # a plain loop: no generator per rule
                    if not check(facts, lists):
                        break
                else:
                    spec = rule.counter
                    if spec is None:
                        fired.append(rule)
                        continue
                    if rule.kind == "rr":
                        key = facts.get("merchant_id")
                    elif action != "pay":
                        continue  # velocity and amount counters count payments
                    else:
                        key = facts.get(rule.by_field)
                    if key is None:
                        continue
                    pending.append((rule, CounterOp(
                        rule.id, spec.measure, str(key), spec.window, int(amount), payer,
                        rule.threshold, rule.outcome == Outcome.DENY, str(action), rule.kind)))
            except Exception as exc:  # a broken rule must never break a payment
                errors.append(f"{rule.id}: {type(exc).__name__}")
        return Match(fired=fired, pending=pending, errors=errors)

    @staticmethod
    def finish(match: Match, values: Sequence[int]) -> Verdict:
        """Step two: the counters' values (this transaction included) decide the counter
        rules; the worst outcome wins, whitelists silence what is not regulatory."""
        fired = match.fired
        if match.pending:
            fired = list(fired)
            for (rule, op), value in zip(match.pending, values, strict=True):
                # payments only feed a refund ratio's denominator: it judges refunds
                if value > rule.threshold and (rule.kind != "rr" or op.action == "refund"):
                    fired.append(rule)
        if not fired and not match.errors:
            return ALLOWED  # the usual answer, made once
        for r in fired:
            if r.outcome is Outcome.ALLOW:
                fired = [r for r in fired if r.regulatory or r.outcome is Outcome.ALLOW]
                break
        outcome, reason = Outcome.ALLOW, ""
        for r in fired:
            if r.outcome > outcome:
                outcome, reason = r.outcome, r.reason
        if match.errors and outcome < Outcome.REVIEW:
            outcome, reason = Outcome.REVIEW, "RULE_ERROR"
        return Verdict(outcome, reason, tuple([r.id for r in fired]), tuple(match.errors))


ALLOWED = Verdict(outcome=Outcome.ALLOW, reason="", fired=())


# Facts that a rule set must not deny all of: typical payments of every channel and way, from
# addresses in four different IPv4 blocks (so blacklisting one range is not "everything", and
# blacklisting 0.0.0.0/0 is).
PROBE_IPS = ("10.0.0.1", "192.0.2.33", "198.51.100.20", "203.0.113.7")
PROBES: tuple[dict[str, Any], ...] = tuple(
    {"action": "pay", "amount": amount, "channel": channel, "way_code": way,
     "merchant_id": "probe-merchant", "mcc": "5411", "payer_id": f"probe-payer-{i}",
     "client_ip": PROBE_IPS[i % len(PROBE_IPS)], "hour": 12, "weekday": 2,
     "merchant_age_days": 365}
    for i, (channel, way, amount) in enumerate(
        (c, w, a) for c in ("wechat", "alipay", "unionpay", "ecny", "bankpay")
        for w in ("QR_DYNAMIC", "BARCODE", "QR_STATIC", "JSAPI") for a in (100, 1_500, 8_800)))


def check_not_deny_all(rules: Sequence[Rule], lists: Lists) -> None:
    """Refuses a rule set under which every probe (a first, ordinary payment) is denied."""
    rs = RuleSet(version=0, rules=tuple(rules), lists=lists)
    for facts in PROBES:
        m = rs.match(facts)
        values = [_first_value(op) for _r, op in m.pending]
        if RuleSet.finish(m, values).outcome != Outcome.DENY:
            return
    raise RuleError("the rules would deny every ordinary payment (checked against "
                    f"{len(PROBES)} probe payments)")


def _first_value(op: CounterOp) -> int:
    """A counter's value for the first transaction it ever sees."""
    return {"count": 1, "sum": op.amount, "distinct_payers": 1 if op.payer else 0}.get(
        op.measure, 0)


class CaseStatus(IntEnum):
    """open -> investigating -> closed as fraud / no fraud (open may close directly)."""

    OPEN = 0
    INVESTIGATING = 1
    CLOSED_FRAUD = 2
    CLOSED_NO_FRAUD = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, label: str) -> CaseStatus:
        return cls[label.upper()]


CASE_MOVES: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.OPEN: frozenset({CaseStatus.INVESTIGATING, CaseStatus.CLOSED_FRAUD,
                                CaseStatus.CLOSED_NO_FRAUD}),
    CaseStatus.INVESTIGATING: frozenset({CaseStatus.CLOSED_FRAUD, CaseStatus.CLOSED_NO_FRAUD}),
    CaseStatus.CLOSED_FRAUD: frozenset(),
    CaseStatus.CLOSED_NO_FRAUD: frozenset(),
}


def case_move_allowed(current: CaseStatus, target: CaseStatus) -> bool:
    return target in CASE_MOVES[current]
