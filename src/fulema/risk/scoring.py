"""Merchant scoring for the daily analysis (事后分析), pure: features of a merchant's history
and a score 0..1000 from them.

Each feature is a share or a ratio that the four fraud patterns push up and honest trade keeps
low: cash-out (套现: few payers, own cards, large round amounts, high ticket for the category,
often at night), split transactions (several payments just under a cap from one payer within
minutes), collection fraud (many payers within seconds) and refund abuse (refunds as a large
share of volume).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

BEIJING = timedelta(hours=8)
ROUND_FEN = 10_000  # a multiple of 100 yuan
CAPS_FEN = (50_000, 100_000, 500_000)  # the PBOC daily caps (296号): 500, 1,000, 5,000 yuan
JUST_UNDER = 0.9  # within 10% under a cap
SPLIT_WINDOW = timedelta(minutes=15)
SPLIT_MIN = 3
BURST_WINDOW = timedelta(seconds=60)
BURST_MIN_PAYERS = 10
BURST_MIN_FEN = 10_000


@dataclass(frozen=True)
class Txn:
    merchant_id: str
    payer_id: str | None
    amount_fen: int
    refunded_fen: int
    at: datetime


@dataclass(frozen=True)
class Features:
    count: int
    round_share: float
    night_share: float
    repeat_payer_share: float  # payments by the merchant's three most frequent payers
    ticket_ratio: float  # mean ticket / the category's mean ticket
    refund_ratio: float
    split_share: float
    burst_share: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def _just_under(amount: int) -> bool:
    return any(JUST_UNDER * cap <= amount < cap for cap in CAPS_FEN)


def _split_share(txns: Sequence[Txn]) -> float:
    by_payer: dict[str, list[Txn]] = defaultdict(list)
    for t in txns:
        if t.payer_id and _just_under(t.amount_fen):
            by_payer[t.payer_id].append(t)
    in_runs = 0
    for runs in by_payer.values():
        runs.sort(key=lambda t: t.at)
        marked: set[int] = set()
        for i in range(len(runs)):
            j = i
            while j + 1 < len(runs) and runs[j + 1].at - runs[i].at <= SPLIT_WINDOW:
                j += 1
            if j - i + 1 >= SPLIT_MIN:
                marked.update(range(i, j + 1))
        in_runs += len(marked)
    return in_runs / len(txns) if txns else 0.0


def _burst_share(txns: Sequence[Txn]) -> float:
    # sums a scam collects (a canteen's lunch rush is many payers too, of small tickets)
    ordered = sorted((t for t in txns if t.payer_id and t.amount_fen >= BURST_MIN_FEN),
                     key=lambda t: t.at)
    marked: set[int] = set()
    start = 0
    for end in range(len(ordered)):
        while ordered[end].at - ordered[start].at > BURST_WINDOW:
            start += 1
        if end - start + 1 >= BURST_MIN_PAYERS and \
                len({t.payer_id for t in ordered[start:end + 1]}) >= BURST_MIN_PAYERS:
            marked.update(range(start, end + 1))
    return len(marked) / len(txns) if txns else 0.0


def features(txns: Sequence[Txn], *, category_ticket_fen: float) -> Features:
    n = len(txns)
    if n == 0:
        return Features(0, 0, 0, 0, 0, 0, 0, 0)
    paid = sum(t.amount_fen for t in txns)
    payers = Counter(t.payer_id for t in txns if t.payer_id)
    top3 = sum(c for _p, c in payers.most_common(3))
    return Features(
        count=n,
        round_share=sum(1 for t in txns if t.amount_fen >= ROUND_FEN
                        and t.amount_fen % ROUND_FEN == 0) / n,
        night_share=sum(1 for t in txns if (t.at + BEIJING).hour < 6) / n,
        repeat_payer_share=top3 / n if n >= 10 else 0.0,
        ticket_ratio=(paid / n) / category_ticket_fen if category_ticket_fen else 1.0,
        refund_ratio=sum(t.refunded_fen for t in txns) / paid if paid else 0.0,
        split_share=_split_share(txns),
        burst_share=_burst_share(txns))


def signals(f: Features) -> dict[str, float]:
    """Each pattern's signal, 0..1 (keyed as `traffic.PATTERNS`): the score is the strongest,
    and the strongest names the pattern a case is opened for."""
    cash_out = min(1.0, f.round_share * 1.5) * 0.4 + min(1.0, f.repeat_payer_share) * 0.3 \
        + min(1.0, max(0.0, f.ticket_ratio - 2) / 4) * 0.2 + min(1.0, f.night_share * 2) * 0.1
    return {"cash_out": cash_out,
            "split": min(1.0, f.split_share * 8),  # a few runs a week: a few percent
            "collection": min(1.0, f.burst_share * 2),
            "refund_abuse": min(1.0, max(0.0, f.refund_ratio - 0.05) / 0.3)}


def score(f: Features) -> int:
    """0..1000: each pattern's strongest signal counts, weighted by how rarely honest trade
    shows it; a merchant with too little history scores low (not enough to judge)."""
    if f.count < 5:
        return 0
    return int(1000 * max(signals(f).values()))


def strongest(f: Features) -> str:
    """The pattern whose signal makes the score."""
    found = signals(f)
    return max(found, key=lambda p: found[p])


def category_tickets(by_merchant: Mapping[str, Sequence[Txn]], mcc_of: Mapping[str, str]
                     ) -> dict[str, float]:
    """The mean ticket per category over every merchant of it (the yardstick for one)."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for mid, txns in by_merchant.items():
        acc = sums[mcc_of.get(mid, "")]
        acc[0] += sum(t.amount_fen for t in txns)
        acc[1] += len(txns)
    return {mcc: total / n for mcc, (total, n) in sums.items() if n}
