"""Alipay's indirect-merchant registration (间连商户入驻) in the sandbox, written from Alipay's
documentation of `ant.merchant.expand.indirect.create` / `.query` (nothing imported from our
adapter). Both go through the same signed gateway as the trade APIs.

Create registers the merchant under the service provider's external_id and answers its
`sub_merchant_id` (smid). Alipay's own review of an indirect merchant is not part of the public
answer; the sandbox models it (our documented assumption, docs/onboarding.md) as an
`audit_status` on the query answer: AUDITING until the sandbox operator decides
(`/sandbox-ops/indirect/{external_id}`), then PASS, REJECT (with `reject_reason`) or
WAIT_CONFIRM (the merchant must confirm in the Alipay app). `usable(smid)` is what the trade
APIs consult for `sub_merchant.merchant_id`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fulema.sandbox.alipay.books import Refusal

EXTERNAL_ID = re.compile(r"^[0-9A-Za-z_\-]{1,64}$")
REQUIRED = ("name", "alias_name", "service_phone", "category_id", "business_license", "mcc")


@dataclass
class Indirect:
    external_id: str
    smid: str
    name: str
    audit_status: str = "AUDITING"
    reject_reason: str | None = None
    suspended: bool = False

    def view(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"external_id": self.external_id, "sub_merchant_id": self.smid,
                               "name": self.name, "audit_status": self.audit_status}
        if self.reject_reason:
            doc["reject_reason"] = self.reject_reason
        return doc


class IndirectBook:
    def __init__(self) -> None:
        self.by_external: dict[str, Indirect] = {}
        self.seq = 0

    def usable(self, smid: str) -> bool:
        return any(i.smid == smid and i.audit_status == "PASS" and not i.suspended
                   for i in self.by_external.values())

    def check_trading(self, smid: Any) -> None:
        """Refusal unless `sub_merchant.merchant_id` may trade under this app: not registered
        or not approved (ACQ.SECONDARY_MERCHANT_ID_INVALID), or suspended by the sandbox
        operator (ACQ.SECONDARY_MERCHANT_STATUS_ERROR)."""
        if not isinstance(smid, str) or not smid:
            raise Refusal("ACQ.SECONDARY_MERCHANT_ID_BLANK", "受理商户号不能为空")
        if self.usable(smid):
            return
        if any(i.smid == smid and i.audit_status == "PASS" for i in self.by_external.values()):
            raise Refusal("ACQ.SECONDARY_MERCHANT_STATUS_ERROR", "二级商户状态异常，已暂停交易")
        raise Refusal("ACQ.SECONDARY_MERCHANT_ID_INVALID", "二级商户不存在或未审核通过")

    def create(self, _params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        ext = biz.get("external_id")
        if not isinstance(ext, str) or not EXTERNAL_ID.match(ext):
            raise Refusal("INVALID_PARAMETER", "external_id 不合法")
        found = self.by_external.get(ext)
        if found is not None and found.audit_status != "REJECT":
            return {"sub_merchant_id": found.smid}  # the same external_id: the same merchant
        for key in REQUIRED:
            if not isinstance(biz.get(key), str) or not biz[key]:
                raise Refusal("INVALID_PARAMETER", f"{key} 不能为空")
        contacts = biz.get("contact_info")
        if not isinstance(contacts, list) or not contacts or not all(
                isinstance(c, dict) and c.get("name") and c.get("mobile") for c in contacts):
            raise Refusal("INVALID_PARAMETER", "contact_info 须含联系人姓名与手机号")
        cards = biz.get("bankcard_info")
        if not isinstance(cards, list) or not cards or not all(
                isinstance(c, dict) and c.get("card_no") and c.get("card_name") for c in cards):
            raise Refusal("INVALID_PARAMETER", "bankcard_info 须含卡号与户名")
        self.seq += 1
        smid = found.smid if found else f"2088{self.seq:012d}"
        self.by_external[ext] = Indirect(ext, smid, str(biz["name"]))
        return {"sub_merchant_id": smid}

    def query(self, _params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        ext, smid = biz.get("external_id"), biz.get("sub_merchant_id")
        found = self.by_external.get(ext) if isinstance(ext, str) else next(
            (i for i in self.by_external.values() if i.smid == smid), None)
        if found is None:
            raise Refusal("MERCHANT_NOT_EXIST", "商户不存在")
        return found.view()

    def decide(self, ext: str, body: dict[str, Any]) -> JSONResponse:
        found = self.by_external.get(ext)
        if found is None:
            return JSONResponse({"code": "MERCHANT_NOT_EXIST"}, 404)
        decision = body.get("decision")
        if decision == "approve":
            found.audit_status, found.reject_reason = "PASS", None
        elif decision == "reject":
            found.audit_status = "REJECT"
            found.reject_reason = str(body.get("reason") or "资料不符")
        elif decision in ("verify", "sign"):
            found.audit_status = "WAIT_CONFIRM"
        elif decision in ("suspend", "resume") and found.audit_status == "PASS":
            found.suspended = decision == "suspend"
        else:
            return JSONResponse({"code": "INVALID_PARAMETER",
                                 "msg": "decision: approve/reject/verify/suspend/resume"}, 400)
        return JSONResponse(found.view())


def add_indirect(app: FastAPI, handlers: dict[str, Any]) -> IndirectBook:
    """Registers the two gateway methods and the sandbox operator's lever."""
    book = IndirectBook()
    handlers["ant.merchant.expand.indirect.create"] = book.create
    handlers["ant.merchant.expand.indirect.query"] = book.query

    @app.post("/sandbox-ops/indirect/{external_id}")
    async def decide(external_id: str, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        return book.decide(external_id, body if isinstance(body, dict) else {})

    return book
