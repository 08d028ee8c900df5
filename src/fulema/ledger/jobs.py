"""The ledger's event consumer: `ledger.postings` posts every payment, refund and
reconciliation adjustment, from the beginning of history (a ledger switched on later backfills
the payments made before it), and stops rather than skip an event (a gap unbalances nothing,
but a merchant would be paid wrong)."""

from __future__ import annotations

from fulema.core.config import Settings
from fulema.core.events import Consumer, Poison, Start
from fulema.ledger.postings import TOPICS, FeeRates, make_batch_handler, make_handler

CONSUMER = "ledger.postings"


def consumers(settings: Settings) -> list[Consumer]:
    rates = FeeRates()
    return [Consumer(name=CONSUMER, handler=make_handler(settings.settlement_cutoff, rates),
                     batch_handler=make_batch_handler(settings.settlement_cutoff, rates),
                     topics=TOPICS, on_poison=Poison.STOP, max_attempts=8,
                     start=Start.BEGINNING)]
