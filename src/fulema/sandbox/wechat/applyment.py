"""WeChat's service-provider onboarding (特约商户进件) in the sandbox, written from WeChat's
documentation of `/v3/applyment4sub/applyment/` (nothing imported from our adapter).

It checks the request as WeChat does: a signed call from the service provider, a
`Wechatpay-Serial` naming the platform key the sensitive fields were encrypted with, each
sensitive field RSA-OAEP ciphertext it can decrypt with its platform private key and that is
not empty, and the required plain fields present. An application waits in 审核中 until an
operator of the sandbox decides (`/sandbox-ops/applyments/{business_code}/...`): approve
(已完成, a sub_mchid), reject with a reason (已驳回), ask for account verification (待账户验证)
or signing (待签约). `registered(sub_mchid)` is what the partner payment APIs consult.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from fastapi import FastAPI, Request
from fastapi.responses import Response

from fulema.sandbox.json_common import answer, read_json, refuse
from fulema.sandbox.wechat.state import Answer, WechatSandbox, err

ENCRYPTED: tuple[tuple[str, ...], ...] = (("contact_info", "contact_name"), ("contact_info", "mobile_phone"),
             ("contact_info", "contact_email"),
             ("subject_info", "identity_info", "id_card_info", "id_card_name"),
             ("bank_account_info", "account_name"), ("bank_account_info", "account_number"))
PLAIN: tuple[tuple[str, ...], ...] = (("subject_info", "business_license_info", "license_number"),
         ("subject_info", "business_license_info", "merchant_name"),
         ("business_info", "merchant_shortname"), ("business_info", "service_phone"),
         ("business_info", "sales_info", "biz_store_info", "biz_store_address"),
         ("bank_account_info", "account_bank"))
BUSINESS_CODE = re.compile(r"^[0-9A-Za-z_\-]{1,124}$")
MOBILE = re.compile(r"^1\d{10}$")


@dataclass
class Applyment:
    business_code: str
    applyment_id: int
    merchant_name: str
    state: str = "APPLYMENT_STATE_AUDITING"
    state_msg: str = "审核中"
    sub_mchid: str | None = None
    reject_reason: str | None = None
    suspended: bool = False
    decrypted: dict[str, str] = field(default_factory=dict)  # what the sandbox read (tests)

    def view(self, public: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"business_code": self.business_code,
                               "applyment_id": self.applyment_id,
                               "applyment_state": self.state,
                               "applyment_state_msg": self.state_msg}
        if self.sub_mchid:
            doc["sub_mchid"] = self.sub_mchid
        if self.state in ("APPLYMENT_STATE_TO_BE_CONFIRMED", "APPLYMENT_STATE_TO_BE_SIGNED"):
            doc["sign_url"] = f"{public}/sandbox-ops/applyments/{self.business_code}/sign"
        if self.reject_reason:
            doc["audit_detail"] = [{"field": "", "field_name": "", "reject_reason":
                                    self.reject_reason}]
        return doc


def _dig(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = body
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


class Applyments:
    """The sandbox's book of applications, by business_code."""

    def __init__(self, sb: WechatSandbox) -> None:
        self.sb = sb
        self.by_code: dict[str, Applyment] = {}
        self.next_id = 2000002124775691

    def registered(self, sub_mchid: str) -> Applyment | None:
        return next((a for a in self.by_code.values() if a.sub_mchid == sub_mchid), None)

    def _decrypt(self, text: Any) -> str | None:
        if not isinstance(text, str) or not text:
            return None
        try:
            plain = self.sb.platform_key.decrypt(
                base64.b64decode(text, validate=True),
                padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(),  # noqa: S303
                             label=None))
        except (ValueError, binascii.Error):
            return None
        return plain.decode("utf-8", errors="replace")

    def apply(self, request: Request, body: dict[str, Any]) -> Answer:
        if request.headers.get("wechatpay-serial") != self.sb.serial:
            return err(400, "PARAM_ERROR", "Wechatpay-Serial 须为加密敏感信息所用的平台公钥ID")
        code = body.get("business_code")
        if not isinstance(code, str) or not BUSINESS_CODE.match(code):
            return err(400, "PARAM_ERROR", "business_code 必填")
        found = self.by_code.get(code)
        if found is not None:  # the same business_code: the same application
            return 200, {"applyment_id": found.applyment_id}
        decrypted: dict[str, str] = {}
        for path in ENCRYPTED:
            plain = self._decrypt(_dig(body, path))
            if not plain:
                return err(400, "PARAM_ERROR", f"{'.'.join(path)} 解密失败或为空，"
                                               "请使用微信支付平台公钥以RSA-OAEP加密")
            decrypted[path[-1]] = plain
        for path in PLAIN:
            value = _dig(body, path)
            if not isinstance(value, str) or not value:
                return err(400, "PARAM_ERROR", f"{'.'.join(path)} 必填")
        if not MOBILE.match(decrypted["mobile_phone"]):
            return err(400, "PARAM_ERROR", "contact_info.mobile_phone 手机号格式错误")
        self.next_id += 1
        self.by_code[code] = Applyment(
            code, self.next_id, str(_dig(body, PLAIN[1])), decrypted=decrypted)
        return 200, {"applyment_id": self.next_id}

    def decide(self, code: str, body: dict[str, Any]) -> Response:
        """The sandbox operator's lever: {"decision": approve|reject|verify|sign|suspend|resume,
        "reason": ...}."""
        a = self.by_code.get(code)
        if a is None:
            return refuse(404, "RESOURCE_NOT_EXISTS", "申请单不存在")
        decision = body.get("decision")
        if decision == "approve":
            a.state, a.state_msg, a.reject_reason = "APPLYMENT_STATE_FINISHED", "已完成", None
            a.sub_mchid = a.sub_mchid or str(1900000000 + a.applyment_id % 100_000_000)
        elif decision == "reject":
            a.state, a.state_msg = "APPLYMENT_STATE_REJECTED", "已驳回"
            a.reject_reason = str(body.get("reason") or "资料不符")
        elif decision == "verify":
            a.state, a.state_msg = "APPLYMENT_STATE_TO_BE_CONFIRMED", "待账户验证"
        elif decision == "sign":
            a.state, a.state_msg = "APPLYMENT_STATE_TO_BE_SIGNED", "待签约"
        elif decision in ("suspend", "resume") and a.sub_mchid:
            a.suspended = decision == "suspend"
        else:
            return refuse(400, "PARAM_ERROR", "decision 须为 approve/reject/verify/sign/"
                                              "suspend/resume（后两者仅对已完成的申请）")
        return answer(a.view(self.sb.public))


def add_applyment_routes(app: FastAPI, sb: WechatSandbox) -> Applyments:
    book = Applyments(sb)
    sb.applyments = book  # the partner payment APIs ask it which sub_mchids may trade

    @app.post("/v3/applyment4sub/applyment/")
    async def apply(request: Request) -> Response:
        return await sb.api(request, lambda b: book.apply(request, b))

    @app.get("/v3/applyment4sub/applyment/business_code/{code}")
    async def by_code(code: str, request: Request) -> Response:
        def handle(_: dict[str, Any]) -> Answer:
            a = book.by_code.get(code)
            return (200, a.view(sb.public)) if a else err(404, "RESOURCE_NOT_EXISTS", "申请单不存在")
        return await sb.api(request, handle)

    @app.post("/sandbox-ops/applyments/{code}")
    async def decide(code: str, request: Request) -> Response:
        return book.decide(code, await read_json(request))

    return book
