"""Risk decision seam.

Payments asks `decide` before it creates an order. For now it allows everything; the risk
context plugs its rules in here without payments changing.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulema.core.db import Database
from fulema.core.money import Money


@dataclass(frozen=True)
class Decision:
    allow: bool
    reason: str = ""


async def decide(db: Database, *, merchant_id: str, amount: Money, channel: str, way_code: str,
                 payer_id: str | None) -> Decision:
    """Pre-transaction decision (事前决策)."""
    del db, merchant_id, amount, channel, way_code, payer_id
    return Decision(allow=True)
