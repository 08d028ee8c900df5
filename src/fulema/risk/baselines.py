"""Monitoring thresholds (事中监控), pure: a day's figures against the subject's own baseline
(the mean of its previous days). Each rule says why it fires; the monitor stores the alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DayFigures:
    pay_count: int = 0
    pay_fen: int = 0
    fail_count: int = 0
    refund_count: int = 0
    refund_fen: int = 0
    review_count: int = 0


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    summary: str


MIN_HISTORY_DAYS = 3
VOLUME_FACTOR = 5  # a day above five times the usual
VOLUME_FLOOR_FEN = 1_000_000  # and above 10,000 yuan: small merchants' noise stays quiet
FAILURE_MIN_ATTEMPTS = 10
REFUND_MIN_COUNT = 3
REVIEWS_PER_DAY = 5
CHANNEL_MIN_ATTEMPTS = 20
CHANNEL_DROP = 0.2  # success rate down 20 points from its usual


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def merchant_findings(today: DayFigures, history: Sequence[DayFigures]) -> list[Finding]:
    found: list[Finding] = []
    days = len(history)
    if days >= MIN_HISTORY_DAYS:
        usual = sum(d.pay_fen for d in history) / days
        if today.pay_fen > max(VOLUME_FACTOR * usual, VOLUME_FLOOR_FEN):
            found.append(Finding("volume_spike", "warning",
                                 f"today's volume {today.pay_fen // 100} yuan is over "
                                 f"{VOLUME_FACTOR}x its daily mean of {int(usual) // 100} yuan"))
    attempts = today.pay_count + today.fail_count
    base_fail = _rate(sum(d.fail_count for d in history),
                      sum(d.pay_count + d.fail_count for d in history))
    fail = _rate(today.fail_count, attempts)
    if attempts >= FAILURE_MIN_ATTEMPTS and fail >= max(0.5, base_fail + 0.3):
        found.append(Finding("failure_rate", "warning",
                             f"{fail:.0%} of today's {attempts} payments failed "
                             f"(usually {base_fail:.0%})"))
    base_refund = _rate(sum(d.refund_fen for d in history), sum(d.pay_fen for d in history))
    paid = max(today.pay_fen, int(sum(d.pay_fen for d in history) / days) if days else 0)
    refund = _rate(today.refund_fen, paid)
    if today.refund_count >= REFUND_MIN_COUNT and refund >= max(0.3, 3 * base_refund):
        found.append(Finding("refund_rate", "warning",
                             f"refunds today are {refund:.0%} of its volume "
                             f"(usually {base_refund:.0%})"))
    if today.review_count >= REVIEWS_PER_DAY:
        found.append(Finding("many_reviews", "warning",
                             f"{today.review_count} payments sent to review today"))
    return found


def channel_findings(today: DayFigures, history: Sequence[DayFigures]) -> list[Finding]:
    attempts = today.pay_count + today.fail_count
    if attempts < CHANNEL_MIN_ATTEMPTS:
        return []
    usual_attempts = sum(d.pay_count + d.fail_count for d in history)
    usual = _rate(sum(d.pay_count for d in history), usual_attempts) if usual_attempts else 0.95
    rate = _rate(today.pay_count, attempts)
    if rate < usual - CHANNEL_DROP:
        return [Finding("channel_success_drop", "critical",
                        f"success rate {rate:.0%} over {attempts} payments (usually {usual:.0%})")]
    return []
