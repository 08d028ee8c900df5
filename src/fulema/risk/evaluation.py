"""How well the rules and the scoring find the planted merchants of `traffic`: replays the
traffic through a rule set with in-process counters (time moving with the traffic), scores
every merchant over its history, and reports recall and false-positive rate per pattern, and
the precision of the scoring's top cases. Used by tests/risk and bench/risk_bench.py."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from fulema.risk.counters import MemoryCounters
from fulema.risk.domain import Outcome, RuleSet, compile_rule
from fulema.risk.scoring import Txn, category_tickets, features, score, strongest
from fulema.risk.traffic import PATTERNS, SimPayment, SimRefund, Traffic

BEIJING = timedelta(hours=8)
FLAG_MIN = 2  # a merchant is flagged by the rules after this many REVIEW/DENY decisions
# The pattern a shipped rule's reason code looks for: an honest merchant flagged mostly for
# one of these is that pattern's false positive (any other reason: "other").
REASON_PATTERNS = {"ROUND_AMOUNT_BURST": "cash_out", "ROUND_AMOUNT_REPEAT": "cash_out",
                   "UNUSUAL_HOUR": "cash_out", "AMOUNT_UNUSUAL": "cash_out",
                   "SPLIT_TRANSACTIONS": "split", "COLLECTION_PATTERN": "collection",
                   "REFUND_RATIO": "refund_abuse"}


@dataclass(frozen=True)
class PatternResult:
    pattern: str
    merchants: int
    found: int

    @property
    def recall(self) -> float:
        return self.found / self.merchants if self.merchants else 0.0


@dataclass(frozen=True)
class Report:
    rules: tuple[PatternResult, ...]
    rules_fpr: float  # honest merchants flagged / honest merchants
    scoring: tuple[PatternResult, ...]
    scoring_fpr: float
    # honest merchants flagged for a pattern / honest merchants: by the rules (the pattern of
    # the reason they were flagged for most, "other" for reasons of no pattern) and by the
    # scoring (the pattern whose signal made the case's score)
    rules_fpr_by_pattern: dict[str, float]
    scoring_fpr_by_pattern: dict[str, float]
    scoring_precision: float  # planted among the cases the scoring opens
    cases: int
    reasons: dict[str, int]


def replay_rules(traffic: Traffic, rules: Sequence[dict[str, object]]) -> dict[str, Counter[str]]:
    """Every payment and refund through the rules in time order; per merchant, the reasons of
    its REVIEW and DENY decisions (regulatory payer caps left out: they judge payers)."""
    rs = RuleSet(version=1, rules=tuple(compile_rule(r) for r in rules))
    regulatory = {r.id for r in rs.rules if r.regulatory}
    counters = MemoryCounters()
    mcc = {m.id: m.mcc for m in traffic.merchants}
    activated = {m.id: m.activated_at for m in traffic.merchants}
    flags: dict[str, Counter[str]] = defaultdict(Counter)
    for e in traffic.events():
        local = e.at + BEIJING
        facts: dict[str, object] = {
            "merchant_id": e.merchant_id, "mcc": mcc[e.merchant_id], "amount": e.amount_fen,
            "hour": local.hour, "weekday": local.weekday(),
            "merchant_age_days": (e.at - activated[e.merchant_id]).days}
        if isinstance(e, SimPayment):
            facts.update(action="pay", channel=e.channel, way_code=e.way_code,
                         payer_id=e.payer_id, terminal_id=e.terminal_id)
            key = f"{e.merchant_id}:{e.order_id}"
        else:
            assert isinstance(e, SimRefund)
            facts.update(action="refund")
            key = f"{e.merchant_id}:R:{e.refund_id}"
        m = rs.match(facts)
        values = counters.apply_sync([op for _r, op in m.pending], now=e.at, txn_key=key,
                                     record=not any(r.outcome == Outcome.DENY for r in m.fired))
        verdict = RuleSet.finish(m, values)
        if verdict.outcome in (Outcome.REVIEW, Outcome.DENY) and not set(verdict.fired) <= regulatory:
            flags[e.merchant_id][verdict.reason] += 1
    return flags


def score_merchants(traffic: Traffic) -> dict[str, tuple[int, str]]:
    """Each merchant's score and the pattern whose signal made it."""
    refunded: Counter[str] = Counter()
    for r in traffic.refunds:
        refunded[r.order_id] += r.amount_fen
    by_merchant: dict[str, list[Txn]] = defaultdict(list)
    for p in traffic.payments:
        by_merchant[p.merchant_id].append(Txn(merchant_id=p.merchant_id, payer_id=p.payer_id,
                                              amount_fen=p.amount_fen,
                                              refunded_fen=refunded[p.order_id], at=p.at))
    mcc = {m.id: m.mcc for m in traffic.merchants}
    tickets = category_tickets(by_merchant, mcc)
    found = {mid: features(txns, category_ticket_fen=tickets[mcc[mid]])
             for mid, txns in by_merchant.items()}
    return {mid: (score(f), strongest(f)) for mid, f in found.items()}


def _per_pattern(traffic: Traffic, flagged: set[str]) -> tuple[tuple[PatternResult, ...], float]:
    results = []
    for pattern in PATTERNS:
        ids = [m.id for m in traffic.merchants if m.pattern == pattern]
        results.append(PatternResult(pattern, len(ids), sum(1 for i in ids if i in flagged)))
    honest = [m.id for m in traffic.merchants if m.pattern is None]
    fpr = sum(1 for i in honest if i in flagged) / len(honest) if honest else 0.0
    return tuple(results), fpr


def evaluate(traffic: Traffic, rules: Sequence[dict[str, object]], *, top: int = 30,
             min_score: int = 400) -> Report:
    flags = replay_rules(traffic, rules)
    rule_flagged = {m for m, c in flags.items() if sum(c.values()) >= FLAG_MIN}
    rules_res, rules_fpr = _per_pattern(traffic, rule_flagged)
    scores = score_merchants(traffic)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1][0])
    cases = [m for m, (s, _p) in ranked[:top] if s >= min_score]
    case_set = set(cases)
    score_res, score_fpr = _per_pattern(traffic, case_set)
    planted = {m.id for m in traffic.merchants if m.pattern is not None}
    precision = sum(1 for m in cases if m in planted) / len(cases) if cases else 0.0
    reasons: Counter[str] = Counter()
    for c in flags.values():
        reasons.update(c)
    honest = [m.id for m in traffic.merchants if m.pattern is None]
    by_rules = Counter(REASON_PATTERNS.get(flags[m].most_common(1)[0][0], "other")
                       for m in honest if m in rule_flagged)
    by_scoring = Counter(scores[m][1] for m in honest if m in case_set)
    return Report(rules=rules_res, rules_fpr=rules_fpr, scoring=score_res,
                  scoring_fpr=score_fpr, scoring_precision=precision, cases=len(cases),
                  reasons=dict(reasons),
                  rules_fpr_by_pattern=_shares(by_rules, len(honest), [*PATTERNS, "other"]),
                  scoring_fpr_by_pattern=_shares(by_scoring, len(honest), PATTERNS))


def _shares(counts: Counter[str], total: int, keys: Sequence[str]) -> dict[str, float]:
    return {k: counts[k] / total if total else 0.0 for k in keys}


def format_report(r: Report) -> str:
    """The table `python -m bench.risk_bench` prints: recall over the planted merchants of a
    pattern, false-positive rate over the honest merchants (flagged for that pattern)."""
    lines = ["pattern        merchants  rules recall  rules FPR  scoring recall  scoring FPR"]
    for a, b in zip(r.rules, r.scoring, strict=True):
        lines.append(f"{a.pattern:<14} {a.merchants:>9}  {a.recall:>12.0%}  "
                     f"{r.rules_fpr_by_pattern[a.pattern]:>9.1%}  {b.recall:>14.0%}  "
                     f"{r.scoring_fpr_by_pattern[b.pattern]:>11.1%}")
    lines.append(f"{'other reasons':<14} {'':>9}  {'':>12}  {r.rules_fpr_by_pattern['other']:>9.1%}")
    lines.append(f"honest merchants flagged (false-positive rate): rules {r.rules_fpr:.1%}, "
                 f"scoring {r.scoring_fpr:.1%}")
    lines.append(f"scoring: {r.cases} cases opened, precision {r.scoring_precision:.0%}")
    lines.append("decisions by reason: " + ", ".join(f"{k} {v}" for k, v in
                                                     sorted(r.reasons.items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)
