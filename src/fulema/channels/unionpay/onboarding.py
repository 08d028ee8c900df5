"""UnionPay sub-merchant registration (收单机构商户报备) in the acquirer form, `accessType=1`.

The bank reports each merchant it acquires to UnionPay as acquirer (`acqInsCode`) and, once
UnionPay has accepted it, the merchant pays under its own sub-merchant code (`subMerId`, 15
digits). UnionPay's registration interface is not public: this is **our assumed form**
(docs/onboarding.md), an ACP 5.1.0 message signed exactly as the payment messages (the same
keys, signMethod and certId), posted to `/gateway/api/merRegister.do`: `txnType=81` registers,
`txnType=82` asks; the answer's `regState` is mapped in one table below.
"""

from __future__ import annotations

import httpx

from fulema.channels.base import ChannelError, ChannelUnavailable
from fulema.channels.onboarding import Application, ReviewResult, ReviewStatus
from fulema.channels.unionpay.adapter import UnionpayChannel, acq_ins_code
from fulema.channels.unionpay.config import adapter_keys
from fulema.channels.unionpay.sign import beijing
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.vocab import ChannelName

PATH = "/gateway/api/merRegister.do"

STATES: dict[str, ReviewStatus] = {
    "01": ReviewStatus.REVIEWING,  # 审核中
    "02": ReviewStatus.NEEDS_ACTION,  # 待补充资料 / 待签约
    "00": ReviewStatus.ACTIVE,  # 已生效
    "03": ReviewStatus.REJECTED,  # 驳回
}

REQUIRED = frozenset({"name", "short_name", "licence_no", "legal_person", "contact_name",
                      "contact_phone", "mcc", "settlement_account", "settlement_account_name",
                      "store_address", "address_code"})


def order_id(application_no: str) -> str:
    """UnionPay's orderId is 8-40 letters and digits: our application number without '_'."""
    return application_no.replace("_", "")


class UnionpayOnboarding:
    name = ChannelName.UNIONPAY

    def __init__(self, form: UnionpayChannel) -> None:
        self.form = form

    @property
    def required_fields(self) -> frozenset[str]:
        return REQUIRED

    async def _ask(self, fields: dict[str, str]) -> dict[str, str]:
        # the acquirer itself reports (its own merId, accessType=1 with its acqInsCode)
        answer = await self.form._call(self.form.base_url + PATH, {
            "accessType": "1", "acqInsCode": acq_ins_code(self.form.up),
            "txnSubType": "00", "bizType": "000000", "txnTime": beijing(clock.now()), **fields})
        code = answer.get("respCode", "")
        if code in ("03", "04", "05", "06"):
            raise ChannelUnavailable(f"unionpay register: respCode {code}")
        if code != "00":
            raise ChannelError(code, answer.get("respMsg", ""))
        return answer

    async def submit(self, app: Application) -> ReviewResult:
        p = app.profile
        answer = await self._ask({
            "txnType": "81", "orderId": order_id(app.application_no),
            "subMerName": p.name or "", "subMerAbbr": p.short_name or "", "mcc": p.mcc or "",
            "licenseNo": p.licence_no or "", "legalPerson": p.legal_person or "",
            "contactName": p.contact_name or "", "contactPhone": p.contact_phone or "",
            "settleAcctNo": p.settlement_account or "",
            "settleAcctName": p.settlement_account_name or "",
            "merAddr": p.store_address or "", "areaCode": p.address_code or ""})
        return self._result(answer)

    async def query(self, app: Application, channel_ref: str | None) -> ReviewResult:
        return self._result(await self._ask({"txnType": "82",
                                             "orderId": order_id(app.application_no)}))

    @staticmethod
    def _result(answer: dict[str, str]) -> ReviewResult:
        status = STATES.get(answer.get("regState", ""), ReviewStatus.UNKNOWN)
        sub = answer.get("subMerId")
        return ReviewResult(status=status, channel_ref=answer.get("orderId"),
                            sub_merchant_id=sub if sub and status == ReviewStatus.ACTIVE
                            else None,
                            reason=answer.get("regMsg") if status in (
                                ReviewStatus.REJECTED, ReviewStatus.NEEDS_ACTION) else None,
                            raw=dict(answer))


def build_onboarding(settings: Settings, http: httpx.AsyncClient) -> UnionpayOnboarding:
    up = settings.unionpay
    return UnionpayOnboarding(UnionpayChannel(settings, up, http, adapter_keys(settings, up)))
