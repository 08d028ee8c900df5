"""`settlement.paid`: a payout that reached the merchant's account is told once, through the
outbox, in the payout's own transaction; the same answer given again tells nothing (a
returned payout tells nothing either: tests/settlement/test_settlement.py)."""

from __future__ import annotations

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.sandbox.banktransfer import SandboxBank
from fulema.settlement import service as settlement
from tests.settlement.test_settlement import (
    MON,
    at,
    drive_payouts,
    paid_events,
    payouts_of,
    settled_payout,
)


async def test_a_successful_payout_publishes_settlement_paid_once(db: Database,
                                                                  settings: Settings) -> None:
    mid = await settled_payout(db, settings)
    bank = SandboxBank()
    clock.freeze(at(MON, 8))
    await drive_payouts(db, settings, bank)
    (p,) = await payouts_of(db, mid)
    assert p.status == "SUCCEEDED"

    (event,) = await paid_events(db)
    assert event["payout_id"] == p.id
    assert event["merchant_id"] == mid
    assert event["amount"] == 10000 - 38 == sum(bank.paid.values())
    assert event["bank_ref"] == p.bank_ref

    ok = settlement.TransferResult(settlement.TransferState.SUCCESS, bank_ref="again")
    await settlement.apply_answer(db, settings, payout_id=p.id, request_id=p.request_id,
                                  result=ok)
    assert len(await paid_events(db)) == 1  # the same answer again tells nothing
