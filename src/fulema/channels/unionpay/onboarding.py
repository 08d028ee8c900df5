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
from fulema.channels.unionpay.adapter import UnionpayChannel
from fulema.channels.unionpay.config import adapter_keys
from fulema.channels.unionpay.sign import ENCODING, VERSION, beijing, sign_fields
from fulema.core.channel_settings import UnionpaySection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.vocab import ChannelName

PATH = "/gateway/api/merRegister.do"
DEV_ACQ_INS_CODE = "48020000"  # development only: the sandbox's acquirer when none is set

STATES: dict[str, ReviewStatus] = {
    "01": ReviewStatus.REVIEWING,  # 审核中
    "02": ReviewStatus.NEEDS_ACTION,  # 待补充资料 / 待签约
    "00": ReviewStatus.ACTIVE,  # 已生效
    "03": ReviewStatus.REJECTED,  # 驳回
}

REQUIRED = frozenset({"name", "short_name", "licence_no", "legal_person", "contact_name",
                      "contact_phone", "mcc", "settlement_account", "settlement_account_name",
                      "store_address", "address_code"})


def acq_ins_code(up: UnionpaySection) -> str:
    return up.acq_ins_code or DEV_ACQ_INS_CODE


def order_id(application_no: str) -> str:
    """UnionPay's orderId is 8-40 letters and digits: our application number without '_'."""
    return application_no.replace("_", "")


class _AcquirerForm(UnionpayChannel):
    """The payment adapter's transport and answer checks, with the acquirer's access fields."""

    def _signed(self, fields: dict[str, str]) -> dict[str, str]:
        body = {k: v for k, v in fields.items() if v}
        body.update(version=VERSION, encoding=ENCODING, signMethod=self.up.sign_method,
                    merId=self.up.mer_id, accessType="1", acqInsCode=acq_ins_code(self.up))
        if self.cert_id:
            body["certId"] = self.cert_id
        body["signature"] = sign_fields(body, method=self.up.sign_method,
                                        rsa_key=self.keys.merchant.rsa,
                                        sm2_key=self.keys.merchant.sm2,
                                        secure_key=self.keys.secure_key)
        return body


class UnionpayOnboarding:
    name = ChannelName.UNIONPAY

    def __init__(self, form: _AcquirerForm) -> None:
        self.form = form

    @property
    def required_fields(self) -> frozenset[str]:
        return REQUIRED

    async def _ask(self, fields: dict[str, str]) -> dict[str, str]:
        answer = await self.form._call(self.form.base_url + PATH, {
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
    return UnionpayOnboarding(_AcquirerForm(settings, up, http, adapter_keys(settings, up)))
