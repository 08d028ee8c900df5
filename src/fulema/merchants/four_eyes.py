"""The merchant actions that need a second operator (four eyes), declared for `core.approvals`.

- `merchant.set_fee_rate`: what the bank earns on every payment; asked by finance, approved by
  another finance operator.
- `merchant.change_settlement_account`: where the merchant's money goes (the classic fraud:
  redirect a merchant's payouts); asked by a reviewer or finance, approved by finance. A
  rejected application's corrections (resubmit) are not this: a reviewer approves those before
  the merchant can take a payment at all.
- `merchant.unfreeze`: only risk and admin can freeze, so every freeze is a risk measure;
  lifting one is asked by risk or admin and approved by another risk operator.

Each runs in the approver's transaction with the approver as the operator of record; the
request (who asked, why) is in the approval's own audit records.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.approvals import ApprovalAction
from fulema.merchants.domain import MerchantAction
from fulema.merchants.fees import set_fee_rate_in
from fulema.merchants.lifecycle import change_settlement_account_in, transition_in

SET_FEE_RATE = "merchant.set_fee_rate"
CHANGE_SETTLEMENT_ACCOUNT = "merchant.change_settlement_account"
UNFREEZE = "merchant.unfreeze"


async def _set_fee_rate(s: AsyncSession, params: dict[str, Any], approver: str) -> dict[str, Any]:
    view = await set_fee_rate_in(s, merchant_id=params["merchant_id"], channel=params["channel"],
                                 bps=params["bps"], operator=approver)
    return {"channel": view.channel, "bps": view.bps}


async def _change_account(s: AsyncSession, params: dict[str, Any],
                          approver: str) -> dict[str, Any]:
    view = await change_settlement_account_in(
        s, merchant_id=params["merchant_id"], settlement_account=params["settlement_account"],
        settlement_account_name=params["settlement_account_name"], operator=approver,
        reason=params.get("reason"))
    return {"merchant_id": view.id, "status": view.status}


async def _unfreeze(s: AsyncSession, params: dict[str, Any], approver: str) -> dict[str, Any]:
    view = await transition_in(s, params["merchant_id"], MerchantAction.UNFREEZE, approver,
                               params.get("reason"))
    return {"merchant_id": view.id, "status": view.status}


def approval_actions() -> list[ApprovalAction]:
    return [ApprovalAction(SET_FEE_RATE, ("finance",), _set_fee_rate),
            ApprovalAction(CHANGE_SETTLEMENT_ACCOUNT, ("finance",), _change_account),
            ApprovalAction(UNFREEZE, ("risk",), _unfreeze)]
