"""Sub-merchant registration for the channels whose onboarding interface is **our assumption**
(docs/onboarding.md): the e-CNY operating institution's merchant registration and the bank's own
channel, where registering a merchant means the bank verifying its settlement account. Both
speak their channel's signed JSON API (the adapter's own `_call`, so the same keys, signatures
and answer checks as payments):

    POST {path}                      {application_no, name, licence_no, mcc, contact..., account...}
    GET  {path}/{application_no}     -> {application_no, status, sub_merchant_id?, reason?, action_url?}

`status` is REVIEWING, NEED_VERIFY (the merchant must confirm a small test transfer or sign),
ACTIVE (with the sub-merchant id the channel knows the merchant by) or REJECTED (with a reason).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fulema.channels.onboarding import Application, ReviewResult, ReviewStatus
from fulema.core.vocab import ChannelName

Call = Callable[..., Awaitable[dict[str, Any]]]

STATES: dict[str, ReviewStatus] = {
    "REVIEWING": ReviewStatus.REVIEWING,
    "NEED_VERIFY": ReviewStatus.NEEDS_ACTION,
    "ACTIVE": ReviewStatus.ACTIVE,
    "REJECTED": ReviewStatus.REJECTED,
}


def review_result(data: dict[str, Any]) -> ReviewResult:
    status = STATES.get(str(data.get("status")), ReviewStatus.UNKNOWN)
    sub = data.get("sub_merchant_id")
    return ReviewResult(status=status, channel_ref=data.get("application_no"),
                        sub_merchant_id=str(sub) if sub and status == ReviewStatus.ACTIVE
                        else None,
                        reason=data.get("reason") or None,
                        action_url=data.get("action_url") or None, raw=data)


class JsonOnboarding:
    def __init__(self, name: ChannelName, call: Call, path: str, required: frozenset[str],
                 base: dict[str, Any]) -> None:
        self.name = name
        self.call = call
        self.path = path
        self.required = required
        self.base = base

    @property
    def required_fields(self) -> frozenset[str]:
        return self.required

    async def submit(self, app: Application) -> ReviewResult:
        p = app.profile
        data = await self.call("POST", self.path, {
            **self.base, "application_no": app.application_no, "name": p.name,
            "short_name": p.short_name, "licence_no": p.licence_no, "mcc": p.mcc,
            "legal_person": p.legal_person, "contact_name": p.contact_name,
            "contact_phone": p.contact_phone, "settlement_account": p.settlement_account,
            "settlement_account_name": p.settlement_account_name,
            "store_address": p.store_address})
        return review_result(data)

    async def query(self, app: Application, channel_ref: str | None) -> ReviewResult:
        return review_result(await self.call("GET", f"{self.path}/{app.application_no}"))
