"""Alipay indirect-merchant registration (间连商户入驻): `ant.merchant.expand.indirect.create`
and `.query` through the signed gateway, giving the `sub_merchant_id` (smid) the trade APIs
carry in `sub_merchant.merchant_id`.

`external_id` is our application number (unique per merchant x version), so a resend is the
same merchant at Alipay. Alipay answers the smid at once; whether it may take payments yet is
Alipay's review, which we read as `audit_status` on the query answer (our documented
assumption, docs/onboarding.md): one exhaustive table below.
"""

from __future__ import annotations

from typing import Any

import httpx

from fulema.channels.alipay.client import AlipayGateway
from fulema.channels.alipay.protocol import alipay_public_key, app_private_key
from fulema.channels.base import ChannelUnavailable
from fulema.channels.onboarding import Application, ReviewResult, ReviewStatus
from fulema.core.config import Settings
from fulema.core.vocab import ChannelName

CREATE, QUERY = "ant.merchant.expand.indirect.create", "ant.merchant.expand.indirect.query"

STATES: dict[str, ReviewStatus] = {
    "AUDITING": ReviewStatus.REVIEWING,  # 审核中
    "WAIT_CONFIRM": ReviewStatus.NEEDS_ACTION,  # 待商户确认
    "PASS": ReviewStatus.ACTIVE,  # 审核通过
    "REJECT": ReviewStatus.REJECTED,  # 审核驳回
}

REQUIRED = frozenset({"name", "short_name", "licence_no", "contact_name", "contact_phone",
                      "service_phone", "mcc", "settlement_account", "settlement_account_name",
                      "store_address", "address_code"})


def indirect_biz(app: Application) -> dict[str, Any]:
    p = app.profile
    code = p.address_code or ""
    return {
        "external_id": app.application_no, "name": p.name, "alias_name": p.short_name,
        "service_phone": p.service_phone, "category_id": p.mcc, "mcc": p.mcc,
        "business_license": p.licence_no, "business_license_type": "NATIONAL_LEGAL_MERGE",
        "contact_info": [{"name": p.contact_name, "mobile": p.contact_phone,
                          "type": "LEGAL_PERSON"}],
        "address_info": [{"province_code": code[:2] + "0000", "city_code": code[:4] + "00",
                          "district_code": code, "address": p.store_address,
                          "type": "BUSINESS_ADDRESS"}],
        "bankcard_info": [{"card_no": p.settlement_account,
                           "card_name": p.settlement_account_name}],
    }


def review_result(node: dict[str, Any]) -> ReviewResult:
    status = STATES.get(str(node.get("audit_status")), ReviewStatus.UNKNOWN)
    smid = node.get("sub_merchant_id")
    return ReviewResult(status=status, channel_ref=str(smid) if smid else None,
                        sub_merchant_id=str(smid) if smid and status == ReviewStatus.ACTIVE
                        else None,
                        reason=node.get("reject_reason") or None, raw=node)


class AlipayOnboarding:
    name = ChannelName.ALIPAY

    def __init__(self, gateway: AlipayGateway) -> None:
        self.gateway = gateway

    @property
    def required_fields(self) -> frozenset[str]:
        return REQUIRED

    async def submit(self, app: Application) -> ReviewResult:
        node = await self.gateway._call(CREATE, indirect_biz(app))
        self.gateway._raise_for(node)
        if not node.get("sub_merchant_id"):
            raise ChannelUnavailable("alipay indirect.create: no sub_merchant_id")
        return ReviewResult(status=ReviewStatus.REVIEWING,
                            channel_ref=str(node["sub_merchant_id"]), raw=node)

    async def query(self, app: Application, channel_ref: str | None) -> ReviewResult:
        node = await self.gateway._call(QUERY, {"external_id": app.application_no})
        self.gateway._raise_for(node)
        return review_result(node)


def build_onboarding(settings: Settings, http: httpx.AsyncClient) -> AlipayOnboarding:
    ali = settings.alipay
    return AlipayOnboarding(AlipayGateway(settings, ali, http, app_private_key(settings, ali),
                                          alipay_public_key(settings, ali)))
