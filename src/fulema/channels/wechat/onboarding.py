"""WeChat Pay service-provider onboarding (特约商户进件): `/v3/applyment4sub/applyment/`.

The bank, as service provider (sp_mchid = our configured mchid), submits one application per
merchant x version under a `business_code` it chooses (ours is the registration id, so a resend
after a timeout is the same application). Identity fields (contact name and mobile, the legal
person's name, the account name and number) are encrypted with WeChat's platform public key,
RSA-OAEP (SHA-1, MGF1-SHA-1, as WeChat's SDKs' `RSA/ECB/OAEPWithSHA-1AndMGF1Padding`), and the
request names that key in `Wechatpay-Serial`. The application's state is queried by
business_code; when FINISHED it carries the `sub_mchid` the partner payment APIs take.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fulema.channels.base import ChannelError, ChannelUnavailable
from fulema.channels.onboarding import Application, ReviewResult, ReviewStatus
from fulema.channels.transport import send
from fulema.channels.wechat.config import (
    merchant_private_key,
    merchant_serial_no,
    platform_public_key,
)
from fulema.channels.wechat.sign import authorization, check_signed
from fulema.core.config import Settings
from fulema.core.vocab import ChannelName

PATH = "/v3/applyment4sub/applyment/"

# applyment_state -> ours. ONE exhaustive table: the applyment4sub names, and the shorter names
# the e-commerce (二级商户) applyment API uses for the same states; anything else is UNKNOWN.
STATES: dict[str, ReviewStatus] = {
    "APPLYMENT_STATE_EDITTING": ReviewStatus.REVIEWING,  # 编辑中: submitted, not yet in review
    "APPLYMENT_STATE_AUDITING": ReviewStatus.REVIEWING,  # 审核中
    "AUDITING": ReviewStatus.REVIEWING,
    "APPLYMENT_STATE_TO_BE_CONFIRMED": ReviewStatus.NEEDS_ACTION,  # 待账户验证
    "ACCOUNT_NEED_VERIFY": ReviewStatus.NEEDS_ACTION,
    "APPLYMENT_STATE_TO_BE_SIGNED": ReviewStatus.NEEDS_ACTION,  # 待签约
    "NEED_SIGN": ReviewStatus.NEEDS_ACTION,
    "APPLYMENT_STATE_SIGNING": ReviewStatus.REVIEWING,  # 开通权限中
    "APPLYMENT_STATE_FINISHED": ReviewStatus.ACTIVE,  # 已完成
    "FINISH": ReviewStatus.ACTIVE,
    "APPLYMENT_STATE_REJECTED": ReviewStatus.REJECTED,  # 已驳回
    "REJECTED": ReviewStatus.REJECTED,
    "APPLYMENT_STATE_CANCELED": ReviewStatus.REJECTED,  # 已作废
    "CANCELED": ReviewStatus.REJECTED,
}

REQUIRED = frozenset({"name", "short_name", "licence_no", "legal_person", "contact_name",
                      "contact_phone", "contact_email", "service_phone", "mcc",
                      "settlement_account", "settlement_account_name", "settlement_bank",
                      "store_name", "store_address", "address_code"})


def oaep_encrypt(key: rsa.RSAPublicKey, text: str) -> str:
    """One sensitive field as WeChat wants it: RSA-OAEP (SHA-1) under the platform key, base64."""
    sealed = key.encrypt(text.encode(), padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),  # noqa: S303
                                                     algorithm=hashes.SHA1(), label=None))  # noqa: S303
    return base64.b64encode(sealed).decode()


def applyment_body(app: Application, key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The applyment request (enterprise subject, in-store sales scene, corporate account)."""
    p = app.profile

    def enc(value: str | None) -> str:
        return oaep_encrypt(key, value or "")

    return {
        "business_code": app.application_no,
        "contact_info": {"contact_type": "LEGAL", "contact_name": enc(p.contact_name),
                         "mobile_phone": enc(p.contact_phone),
                         "contact_email": enc(p.contact_email)},
        "subject_info": {
            "subject_type": "SUBJECT_TYPE_ENTERPRISE",
            "business_license_info": {"license_number": p.licence_no, "merchant_name": p.name,
                                      "legal_person": p.legal_person},
            "identity_info": {"id_holder_type": "LEGAL",
                              "id_doc_type": "IDENTIFICATION_TYPE_IDCARD",
                              "id_card_info": {"id_card_name": enc(p.legal_person)}}},
        "business_info": {
            "merchant_shortname": p.short_name, "service_phone": p.service_phone,
            "sales_info": {"sales_scenes_type": ["SALES_SCENES_STORE"],
                           "biz_store_info": {"biz_store_name": p.store_name,
                                              "biz_address_code": p.address_code,
                                              "biz_store_address": p.store_address}}},
        "settlement_info": {"settlement_id": "716", "qualification_type": p.mcc},
        "bank_account_info": {"bank_account_type": "BANK_ACCOUNT_TYPE_CORPORATE",
                              "account_name": enc(p.settlement_account_name),
                              "account_bank": p.settlement_bank,
                              "bank_address_code": p.address_code,
                              "account_number": enc(p.settlement_account)},
    }


def review_result(doc: dict[str, Any]) -> ReviewResult:
    state = STATES.get(str(doc.get("applyment_state")), ReviewStatus.UNKNOWN)
    found = doc.get("audit_detail")
    details: list[Any] = found if isinstance(found, list) else []
    reasons = [f"{d.get('field_name') or d.get('field')}: {d.get('reject_reason')}"
               for d in details if isinstance(d, dict)]
    reason = "; ".join(reasons) or doc.get("applyment_state_msg")
    sub = doc.get("sub_mchid")
    return ReviewResult(status=state, channel_ref=str(doc["applyment_id"])
                        if doc.get("applyment_id") is not None else None,
                        sub_merchant_id=str(sub) if sub and state == ReviewStatus.ACTIVE else None,
                        reason=str(reason) if reason and state != ReviewStatus.ACTIVE else None,
                        action_url=doc.get("sign_url") or None, raw=doc)


class WechatOnboarding:
    name = ChannelName.WECHAT

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        wx = settings.wechat
        self.http = http
        self.mchid = wx.mchid
        self.key = merchant_private_key(settings, wx)
        self.serial_no = merchant_serial_no(settings, wx, self.key.public_key())
        self.platform_key = platform_public_key(settings, wx)
        self.platform_key_id = wx.platform_public_key_id
        self.base_url = (wx.base_url or settings.sandbox_url("wechat")).rstrip("/")
        self.timeout = wx.timeout_seconds or settings.channel_timeout_seconds

    @property
    def required_fields(self) -> frozenset[str]:
        return REQUIRED

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None
                    ) -> dict[str, Any]:
        body = orjson.dumps(payload) if payload is not None else b""
        url = self.base_url + path
        parts = urlsplit(url)
        headers = {"Authorization": authorization(
            mchid=self.mchid, serial_no=self.serial_no, key=self.key, method=method,
            url_path=parts.path, body=body), "Accept": "application/json",
            # the key the sensitive fields are encrypted with
            "Wechatpay-Serial": self.platform_key_id, "User-Agent": "fulema-wechatpay-v3"}
        if body:
            headers["Content-Type"] = "application/json"
        resp = await send(self.http, method, url, content=body, headers=headers,
                          seconds=self.timeout, label=f"wechat {PATH}")
        problem = check_signed(dict(resp.headers), resp.content, self.platform_key,
                               self.platform_key_id)
        if problem is not None:
            raise ChannelUnavailable(f"wechat applyment: unverifiable answer ({problem})")
        try:
            doc = orjson.loads(resp.content or b"{}")
        except orjson.JSONDecodeError as exc:
            raise ChannelUnavailable("wechat applyment: answer is not JSON") from exc
        if not isinstance(doc, dict):
            raise ChannelUnavailable("wechat applyment: answer is not an object")
        if resp.status_code >= 400:
            raise ChannelError(str(doc.get("code") or f"HTTP_{resp.status_code}"),
                               str(doc.get("message", "")))
        return doc

    async def submit(self, app: Application) -> ReviewResult:
        doc = await self._call("POST", PATH, applyment_body(app, self.platform_key))
        if doc.get("applyment_id") is None:
            raise ChannelUnavailable("wechat applyment: no applyment_id in the answer")
        return ReviewResult(status=ReviewStatus.REVIEWING, channel_ref=str(doc["applyment_id"]),
                            raw=doc)

    async def query(self, app: Application, channel_ref: str | None) -> ReviewResult:
        code = quote(app.application_no, safe="")
        return review_result(await self._call("GET", f"{PATH}business_code/{code}", None))


def build_onboarding(settings: Settings, http: httpx.AsyncClient) -> WechatOnboarding:
    return WechatOnboarding(settings, http)
