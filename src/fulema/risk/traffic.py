"""Realistic synthetic traffic for tuning and testing the rules and the scoring: a few hundred
merchants over weeks, most honest, some planted with one fraud pattern each.

It lives in the risk package (not in tests/ or bench/) because three users share it: the
tests that show the patterns are found, the benchmark that replays it through the engine, and
an operator tuning a rule (`python -m fulema.risk.traffic` prints the data set's summary).
Pure and seeded: the same seed makes the same traffic.

Two honest merchants in ten are hard negatives: canteens with a lunch rush (many payers
within minutes) and shops with an occasional day of refunds (a product recall).

Patterns: `cash_out` (套现: a few payers — the merchant's own cards — paying large round
amounts, often at night), `split` (one payer paying several amounts just under the 1,000-yuan
cap within minutes), `collection` (many distinct payers within seconds: collection fraud),
`refund_abuse` (a large share of payments refunded).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

PATTERNS = ("cash_out", "split", "collection", "refund_abuse")
# category -> mean ticket in fen
CATEGORIES = {"5411": 4_500, "5812": 8_000, "5999": 15_000, "5331": 3_000, "7011": 50_000}
CHANNELS = (("wechat", "QR_DYNAMIC"), ("alipay", "BARCODE"), ("bankpay", "QR_DYNAMIC"),
            ("wechat", "JSAPI"), ("unionpay", "QR_DYNAMIC"))
START = datetime(2026, 1, 5, tzinfo=UTC)
BEIJING = timedelta(hours=8)


@dataclass(frozen=True)
class SimMerchant:
    id: str
    mcc: str
    pattern: str | None  # None: honest
    activated_at: datetime


@dataclass(frozen=True)
class SimPayment:
    order_id: str
    merchant_id: str
    payer_id: str
    amount_fen: int
    at: datetime
    channel: str
    way_code: str
    terminal_id: str


@dataclass(frozen=True)
class SimRefund:
    refund_id: str
    order_id: str
    merchant_id: str
    amount_fen: int
    at: datetime


@dataclass
class Traffic:
    merchants: list[SimMerchant]
    payments: list[SimPayment] = field(default_factory=list)
    refunds: list[SimRefund] = field(default_factory=list)

    def events(self) -> list[SimPayment | SimRefund]:
        """Payments and refunds in time order: what a replay feeds the engine."""
        return sorted([*self.payments, *self.refunds], key=lambda e: e.at)


def _local(day: int, hour: float) -> datetime:
    """A Beijing wall-clock time on day `day` of the run, as UTC."""
    return START + timedelta(days=day, hours=hour) - BEIJING


def _honest_hour(rng: random.Random) -> float:
    if rng.random() < 0.02:
        return rng.uniform(0, 6)  # a few late customers
    return min(23.99, max(6.0, rng.gauss(14, 3.5)))


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.t = Traffic(merchants=[])

    def pay(self, m: SimMerchant, payer: str, amount: int, at: datetime) -> SimPayment:
        self.n += 1
        channel, way = self.rng.choice(CHANNELS)
        p = SimPayment(order_id=f"sim{self.n:08d}", merchant_id=m.id, payer_id=payer,
                       amount_fen=max(1, amount), at=at, channel=channel, way_code=way,
                       terminal_id=f"{m.id}-t{self.rng.randint(1, 3)}")
        self.t.payments.append(p)
        return p

    def refund(self, p: SimPayment, amount: int, after: timedelta) -> None:
        self.n += 1
        self.t.refunds.append(SimRefund(refund_id=f"simr{self.n:08d}", order_id=p.order_id,
                                        merchant_id=p.merchant_id, amount_fen=amount,
                                        at=p.at + after))

    def honest_day(self, m: SimMerchant, day: int, scale: float = 1.0,
                   refund_share: float = 0.02) -> None:
        rng = self.rng
        ticket = CATEGORIES[m.mcc]
        for _ in range(int(rng.randint(8, 40) * scale)):
            # regulars (a heavy tail of repeat customers) and passers-by
            k = int(rng.paretovariate(1.2)) if rng.random() < 0.6 else rng.randint(1, 400)
            payer = f"{m.id}-c{min(k, 400)}"
            amount = int(rng.lognormvariate(math.log(ticket), 0.6))
            p = self.pay(m, payer, amount, _local(day, _honest_hour(rng)))
            if rng.random() < refund_share:
                self.refund(p, p.amount_fen, timedelta(hours=rng.uniform(0.2, 20)))

    def hard_honest_day(self, m: SimMerchant, day: int) -> None:
        """Honest trade that looks like a pattern: a canteen's lunch rush (many payers within
        minutes) and a shop's bad day (a batch of refunds for a faulty product)."""
        self.honest_day(m, day)
        rng = self.rng
        if m.id.endswith("3"):  # canteens
            at = _local(day, rng.uniform(11.5, 12.2))
            for _i in range(rng.randint(30, 70)):
                self.pay(m, f"{m.id}-l{rng.randint(1, 600)}", rng.randint(1_200, 2_800),
                         at + timedelta(seconds=rng.uniform(0, 300)))
        elif rng.random() < 0.05:  # a recall: several refunds in one day
            batch = [p for p in self.t.payments[-40:] if p.merchant_id == m.id][:6]
            for p in batch:
                self.refund(p, p.amount_fen, timedelta(hours=rng.uniform(1, 6)))

    def planted_day(self, m: SimMerchant, day: int) -> None:
        rng = self.rng
        if m.pattern == "cash_out":
            self.honest_day(m, day, scale=0.3)
            cards = [f"{m.id}-own{i}" for i in range(4)]
            for _ in range(rng.randint(2, 6)):
                hour = rng.uniform(0, 5) if rng.random() < 0.4 else rng.uniform(9, 22)
                self.pay(m, rng.choice(cards), rng.randint(20, 90) * 10_000, _local(day, hour))
        elif m.pattern == "split":
            self.honest_day(m, day)
            if rng.random() < 0.6:
                payer = f"{m.id}-s{rng.randint(1, 5)}"
                at = _local(day, rng.uniform(9, 21))
                for _ in range(rng.randint(3, 5)):
                    self.pay(m, payer, rng.randint(90_000, 99_900), at)
                    at += timedelta(seconds=rng.randint(30, 180))
        elif m.pattern == "collection":
            self.honest_day(m, day, scale=0.5)
            if rng.random() < 0.7:
                at = _local(day, rng.uniform(10, 22))
                for i in range(rng.randint(16, 30)):
                    self.pay(m, f"{m.id}-v{day}-{i}", rng.choice((18_800, 28_800, 58_800, 88_800)),
                             at + timedelta(seconds=rng.uniform(0, 45)))
        elif m.pattern == "refund_abuse":
            self.honest_day(m, day, refund_share=0.5)


def generate(*, merchants: int = 300, bad_per_pattern: int = 6, days: int = 28,
             seed: int = 7) -> Traffic:
    g = _Gen(seed)
    rng = g.rng
    planted = [p for p in PATTERNS for _ in range(bad_per_pattern)]
    patterns: list[str | None] = [*planted, *([None] * (merchants - len(planted)))]
    rng.shuffle(patterns)
    for i, pattern in enumerate(patterns):
        age = rng.choice((400, 200, 90, 30))
        g.t.merchants.append(SimMerchant(id=f"simm{i:04d}", mcc=rng.choice(list(CATEGORIES)),
                                         pattern=pattern,
                                         activated_at=START - timedelta(days=age)))
    for m in g.t.merchants:
        for day in range(days):
            if m.pattern is None and m.id.endswith(("3", "7")):
                g.hard_honest_day(m, day)
            elif m.pattern is None:
                g.honest_day(m, day)
            else:
                g.planted_day(m, day)
    g.t.payments.sort(key=lambda p: p.at)
    return g.t


if __name__ == "__main__":  # pragma: no cover - an operator's look at the data set
    data = generate()
    by = {p: sum(1 for m in data.merchants if m.pattern == p) for p in PATTERNS}
    print(f"{len(data.merchants)} merchants, {len(data.payments)} payments, "  # noqa: T201
          f"{len(data.refunds)} refunds; planted: {by}")
