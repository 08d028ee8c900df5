"""Revealing a merchant's full settlement account or contact phone to an operator.

Every answer and page masks them (`core.masking`); a finance operator who must read one whole
(to check a payout with the bank's core system, to call the merchant) asks for it with a
reason, and the read is written to the audit trail in the same transaction as the read, so a
reveal without its record cannot happen. The record names the fields and the reason, never the
values.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulema.core import audit
from fulema.core.db import Database
from fulema.core.masking import mask_account, mask_phone
from fulema.merchants.lifecycle import merchant_row

REVEALABLE = ("settlement_account", "contact_phone")


@dataclass(frozen=True)
class Revealed:
    merchant_id: str
    settlement_account: str | None
    contact_phone: str | None
    audit_id: str


async def reveal_contact(db: Database, *, merchant_id: str, fields: tuple[str, ...],
                         reason: str, operator: str) -> Revealed:
    """The requested fields in full, and the audit record of this read."""
    wanted = tuple(dict.fromkeys(f for f in fields if f in REVEALABLE))
    async with db.transaction() as s:
        m = await merchant_row(s, merchant_id)
        audit_id = await audit.record(
            s, actor=operator, action="merchant.reveal", target_type="merchant",
            target_id=m.id, detail={
                "fields": list(wanted), "reason": reason,
                # what the operator saw before asking, so the trail says which value it was
                "masked": {"settlement_account": mask_account(m.settlement_account),
                           "contact_phone": mask_phone(m.contact_phone)}})
        return Revealed(merchant_id=m.id, audit_id=audit_id,
                        settlement_account=(m.settlement_account
                                            if "settlement_account" in wanted else None),
                        contact_phone=m.contact_phone if "contact_phone" in wanted else None)
