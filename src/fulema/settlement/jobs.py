"""Settlement's scheduled jobs: the daily run (every closed trade date not yet settled) and the
payout loop (send, ask, retry)."""

from __future__ import annotations

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.settlement.bank import PayoutAdapter
from fulema.settlement.batches import run_due
from fulema.settlement.payouts import process_payouts


async def settle_due(db: Database, settings: Settings) -> int:
    return await run_due(db, settings)


async def send_payouts(db: Database, settings: Settings, bank: PayoutAdapter) -> int:
    return await process_payouts(db, settings, bank)
