"""The WeChat Pay sandbox's memory: payers (openids with balances), orders, refunds, faults,
request verification as WeChat does it, signed answers and encrypted, signed callbacks.

A separate system: nothing here touches Fulema's database. `fulema.sandbox.wechat.server` builds the
HTTP app on top of this.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from fastapi import Request
from fastapi.responses import Response

from fulema.core.clock import clock
from fulema.core.crypto import rsa_sha256_verify
from fulema.sandbox.json_common import Faults, json_object
from fulema.sandbox.wallet import Payer, PayerBook, Refusal, three_codes
from fulema.sandbox.wechat.config import (
    WechatSandboxConfig,
    certificate_serial,
    platform_certificate,
)
from fulema.sandbox.wechat.protocol import (
    CST,
    TOLERANCE_SECONDS,
    callback_resource,
    parse_authorization,
    platform_headers,
    request_message,
    rfc3339,
)

if TYPE_CHECKING:
    from fulema.sandbox.wechat.applyment import Applyments

CODE_TTL = timedelta(seconds=60)  # a payer code refreshes every minute in the app; single use
PASSWORD_TIMEOUT = timedelta(seconds=60)  # USERPAYING that long without a password: PAYERROR
CALLBACK_DELAYS = (0.0, 0.2, 1.0, 3.0, 5.0)
RICH_OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"  # 1,000,000.00 yuan
POOR_OPENID = "oUpF8uN9pZk3lowBalanceQx7Tq0"  # 1.00 yuan
PIN_OPENID = "oUpF8uPwd8RequiredVm2kZs4Lx1"  # must enter the password for payer-code payments
Answer = tuple[int, dict[str, Any] | None]  # (HTTP status, JSON object or None for 204)


def err(status: int, code: str, message: str) -> Answer:
    return status, {"code": code, "message": message}


def new_openid() -> str:
    alphabet = string.ascii_letters + string.digits + "_-"
    return "oUpF8u" + "".join(secrets.choice(alphabet) for _ in range(22))


@dataclass
class WechatPayer(Payer):
    """A WeChat user: the payer id is the openid (under the sandbox's one appid)."""

    @property
    def openid(self) -> str:
        return self.payer_id

    def view(self) -> dict[str, Any]:
        return {**super().view(), "openid": self.openid}


# A payer WeChat's risk control or rules refuse: API v3's codes (403, from the basic-payment
# error table: ACCOUNT_ERROR 账号异常 "用户账号异常", RULE_LIMIT 业务规则限制, NOTENOUGH) and
# API v2 micropay's, which has one code for account, risk and rules (TRADE_ERROR 交易错误).
V3_REFUSALS: dict[Refusal, tuple[str, str]] = three_codes(
    risk=("ACCOUNT_ERROR", "用户账号异常，请提示用户更换付款方式"),
    limit=("RULE_LIMIT", "交易金额超出用户支付限额，请提示用户更换付款方式"),
    balance=("NOTENOUGH", "用户余额不足，请提示用户更换付款方式"))
V2_REFUSALS: dict[Refusal, tuple[str, str]] = three_codes(
    risk=("TRADE_ERROR", "用户账号异常，交易失败"),
    limit=("TRADE_ERROR", "交易金额超出用户支付限额"),
    balance=("NOTENOUGH", "余额不足"))
CODE_PREFIX, CODE_LENGTH = "13", 18  # what the sandbox issues; AUTH_CODE is what WeChat takes


@dataclass
class Order:
    out_trade_no: str
    trade_type: str  # NATIVE, JSAPI, MWEB, APP, MICROPAY
    total: int
    description: str
    notify_url: str | None
    created_at: datetime
    expire_at: datetime
    appid: str
    transaction_id: str = ""
    prepay_id: str = ""
    code_url: str = ""
    h5_url: str = ""
    openid: str = ""  # JSAPI: who may pay; afterwards: who paid
    auth_code: str = ""
    state: str = "NOTPAY"
    state_desc: str = ""
    success_at: datetime | None = None
    refunded: int = 0
    sub_mchid: str = ""  # the service-provider form: the sub-merchant whose order it is
    sub_appid: str = ""  # ... made in the sub-merchant's own app (its payer: sub_openid)


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    order: Order
    amount: int
    reason: str
    notify_url: str | None
    created_at: datetime
    status: str = "PROCESSING"
    success_at: datetime | None = None
    kind: str = "REFUND"  # or REVOKED: the reversal of a paid payer-code payment


class WechatSandbox:
    def __init__(self, config: WechatSandboxConfig, http: httpx.AsyncClient) -> None:
        self.config, self.http = config, http
        self.public = config.public_url.rstrip("/")
        self.apiv3_key = config.apiv3_key
        self.platform_key = config.platform_key
        self.merchant_key = config.merchant_public_key
        self.merchant_serial = config.merchant_serial_no
        self.certificate = platform_certificate(config.platform_key, clock.now(),
                                                config.certificate_valid)
        self.serial = (certificate_serial(self.certificate) if config.identity == "certificate"
                       else config.platform_public_key_id)
        self.wallet = PayerBook[WechatPayer](
            WechatPayer(RICH_OPENID, 100_000_000), WechatPayer(POOR_OPENID, 100),
            WechatPayer(PIN_OPENID, 100_000_000, password_required=True))
        self.orders: dict[str, Order] = {}
        self.refunds: dict[str, Refund] = {}
        self.bills: dict[str, bytes] = {}  # download token -> plain bill
        self.nonces: dict[str, int] = {}
        self.faults = Faults()
        self.tasks: set[asyncio.Task[None]] = set()
        self.applyments: Applyments | None = None  # the onboarding book (applyment.py)

    # payer codes ----------------------------------------------------------------
    def issue_code(self, payer: WechatPayer) -> tuple[str, datetime | None]:
        return self.wallet.issue_code(payer, CODE_PREFIX, CODE_LENGTH, CODE_TTL)

    # orders -------------------------------------------------------------------
    def new_transaction_id(self) -> str:
        return f"4200{clock.now().astimezone(CST):%Y%m%d}{secrets.randbelow(10**16):016d}"

    def refresh(self, o: Order) -> None:
        """Time-driven change: a password never entered ends the payer-code payment."""
        if o.state == "USERPAYING" and clock.now() - o.created_at > PASSWORD_TIMEOUT:
            o.state, o.state_desc = "PAYERROR", "用户支付超时"

    def owner(self, o: Order) -> dict[str, str]:
        """Whose order: the merchant's (appid, mchid) or, in the service-provider form, the
        provider's (sp_appid, sp_mchid) and the sub-merchant's sub_mchid."""
        if o.sub_mchid:
            return {"sp_appid": o.appid, "sp_mchid": self.config.mchid, "sub_mchid": o.sub_mchid,
                    **({"sub_appid": o.sub_appid} if o.sub_appid else {})}
        return {"appid": o.appid, "mchid": self.config.mchid}

    def sub_refusal(self, sub: Any) -> Answer | None:
        """WeChat's refusal of a sub_mchid that cannot trade under our sp_mchid: unknown or its
        applyment not completed (MCH_NOT_EXISTS), or its payments stopped (NO_AUTH)."""
        if not isinstance(sub, str) or not sub:
            return err(400, "PARAM_ERROR", "sub_mchid 必填")
        a = self.applyments.registered(sub) if self.applyments is not None else None
        if a is None or a.state != "APPLYMENT_STATE_FINISHED":
            return err(400, "MCH_NOT_EXISTS", "特约商户号不存在或未与服务商建立受理关系")
        if a.suspended:
            return err(403, "NO_AUTH", "特约商户已被暂停交易权限，请联系服务商")
        return None

    def order_view(self, o: Order) -> dict[str, Any]:
        """The transaction object of 查询订单 / callbacks: payment facts only once paid."""
        self.refresh(o)
        doc: dict[str, Any] = {
            **self.owner(o), "out_trade_no": o.out_trade_no,
            "trade_type": o.trade_type, "trade_state": o.state,
            "trade_state_desc": o.state_desc or _DESC.get(o.state, ""),
            "amount": {"total": o.total, "currency": "CNY"}}
        if o.state in ("SUCCESS", "REFUND", "REVOKED") and o.success_at is not None:
            doc.update({"transaction_id": o.transaction_id, "bank_type": "OTHERS",
                        "success_time": rfc3339(o.success_at),
                        "payer": {"sp_openid" if o.sub_mchid else "openid": o.openid},
                        "attach": ""})
            doc["amount"] = {"total": o.total, "payer_total": o.total, "currency": "CNY",
                             "payer_currency": "CNY"}
        return doc

    def refund_view(self, r: Refund) -> dict[str, Any]:
        """退款 object: success_time appears only once the refund has succeeded (WeChat omits
        the field while it is PROCESSING rather than sending null)."""
        doc: dict[str, Any] = {
                "refund_id": r.refund_id, "out_refund_no": r.out_refund_no,
                "transaction_id": r.order.transaction_id, "out_trade_no": r.order.out_trade_no,
                "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
                "create_time": rfc3339(r.created_at), "status": r.status,
                "funds_account": "AVAILABLE",
                "amount": {"total": r.order.total, "refund": r.amount, "payer_total": r.order.total,
                           "payer_refund": r.amount, "settlement_refund": r.amount,
                           "settlement_total": r.order.total, "discount_refund": 0,
                           "currency": "CNY", "refund_fee": 0}}
        if r.status == "SUCCESS" and r.success_at is not None:
            doc["success_time"] = rfc3339(r.success_at)
        return doc

    def settle(self, o: Order, payer: WechatPayer) -> Refusal | None:
        """Debit the payer and notify; the refusal (order untouched) when the wallet refuses."""
        refused = payer.pay(o.total)
        if refused is not None:
            return refused
        o.state, o.state_desc, o.openid = "SUCCESS", "", payer.openid
        o.success_at, o.transaction_id = clock.now(), o.transaction_id or self.new_transaction_id()
        if o.trade_type != "MICROPAY":  # payer-code payments have no asynchronous notification
            self.notify(o.notify_url, "TRANSACTION.SUCCESS", "支付成功", "transaction",
                        self.order_view(o))
        return None

    def complete_refund(self, r: Refund) -> None:
        r.status, r.success_at = "SUCCESS", clock.now()
        view = self.refund_view(r)
        if r.order.sub_mchid:
            view.update(sp_mchid=self.config.mchid, sub_mchid=r.order.sub_mchid)
        else:
            view["mchid"] = self.config.mchid
        view["refund_status"] = view.pop("status")
        self.notify(r.notify_url, "REFUND.SUCCESS", "退款成功", "refund", view)

    # callbacks ----------------------------------------------------------------
    def notify(self, url: str | None, event: str, summary: str, kind: str,
               resource: dict[str, Any]) -> None:
        if not url:
            return
        now = clock.now()
        doc = {"id": f"{secrets.token_hex(18)}", "create_time": rfc3339(now),
               "resource_type": "encrypt-resource", "event_type": event, "summary": summary,
               "resource": callback_resource(self.apiv3_key, resource, kind)}
        task = asyncio.get_running_loop().create_task(self._deliver(url, orjson.dumps(doc)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, body: bytes) -> None:
        for delay in CALLBACK_DELAYS:
            await asyncio.sleep(delay)
            try:  # signed afresh per attempt, as WeChat does
                resp = await self.http.post(url, content=body, timeout=5.0, headers={
                    **self.sign(body), "Content-Type": "application/json"})
                if resp.status_code in (200, 204):
                    return
            except httpx.HTTPError:
                pass

    # HTTP ---------------------------------------------------------------------
    def sign(self, body: bytes) -> dict[str, str]:
        return platform_headers(self.platform_key, self.serial, body)

    def answer(self, status: int, doc: dict[str, Any] | None) -> Response:
        content = orjson.dumps(doc) if doc is not None else b""
        headers = self.sign(content)
        if self.faults.mode == "garbled" and content:
            content = content[: len(content) // 2] + b"\x00garbled"
        return Response(content, status, headers=headers,
                        media_type="application/json" if doc is not None else None)

    def check_request(self, request: Request, raw: bytes) -> Answer | None:
        """WeChat's checks on the Authorization header; None when the request is authentic."""
        auth = parse_authorization(request.headers.get("authorization", ""))
        if auth is None or not all(auth.get(k) for k in
                                   ("mchid", "nonce_str", "signature", "timestamp", "serial_no")):
            return err(401, "SIGN_ERROR",
                       "Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》")
        if auth["mchid"] != self.config.mchid:
            return err(400, "MCH_NOT_EXISTS", "商户号不存在")
        if auth["serial_no"] != self.merchant_serial:
            return err(401, "SIGN_ERROR", "商户证书序列号有误。请使用签名私钥匹配的证书序列号")
        ts = auth["timestamp"]
        if not ts.isdigit() or abs(clock.timestamp() - int(ts)) > TOLERANCE_SECONDS:
            return err(401, "SIGN_ERROR", "请求的时间戳与当前时间相差超过5分钟")
        if not any(rsa_sha256_verify(self.merchant_key,
                                     request_message(request.method, url, ts, auth["nonce_str"], raw),
                                     auth["signature"]) for url in signed_urls(request)):
            return err(401, "SIGN_ERROR", "签名错误，请检查后再试")
        now = clock.timestamp()
        if self.nonces.get(auth["nonce_str"], 0) >= now:
            return err(401, "SIGN_ERROR", "请求的随机串已使用过")
        if len(self.nonces) > 10_000:
            self.nonces = {n: exp for n, exp in self.nonces.items() if exp >= now}
        self.nonces[auth["nonce_str"]] = now + 2 * TOLERANCE_SECONDS
        return None

    async def api(self, request: Request, handler: Callable[[dict[str, Any]], Answer]) -> Response:
        """Faults, then WeChat's signature and JSON checks, then the handler; signed answer."""
        if self.faults.mode == "slow":
            await asyncio.sleep(self.faults.delay_ms / 1000)
        if self.faults.mode == "5xx":
            return Response(orjson.dumps({"code": "SYSTEM_ERROR", "message": "系统错误"}), 500,
                            media_type="application/json")
        raw = await request.body()
        refused = self.check_request(request, raw)
        if refused is not None:
            return self.answer(*refused)
        body = json_object(raw)
        if body is None:
            return self.answer(*err(400, "PARAM_ERROR", "请求体不是合法的JSON对象"))
        if "mchid" in body and body["mchid"] != self.config.mchid:
            return self.answer(*err(400, "PARAM_ERROR", "mchid与请求头中的商户号不一致"))
        if "appid" in body and body["appid"] != self.config.appid:
            return self.answer(*err(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"))
        return self.answer(*handler(body))


def signed_urls(request: Request) -> list[str]:
    """The URL paths (with query) a merchant may have signed for this request.

    At the sandbox's own root that is the request path, exactly as WeChat sees it. Mounted
    under a prefix (/sandbox/wechat), a client that signs what WeChat's server would see
    (/v3/...) is as right as one that signs the path it sent, so both forms verify.
    """
    scope = request.scope
    raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    forms = [raw]
    root = str(scope.get("root_path", "")).rstrip("/")
    if root and raw.startswith(root + "/"):
        forms.append(raw[len(root):])
    return [f + ("?" + query if query else "") for f in forms]


_DESC = {"NOTPAY": "未支付", "USERPAYING": "用户支付中，需要输入密码", "SUCCESS": "支付成功",
         "REFUND": "转入退款", "CLOSED": "已关闭", "REVOKED": "已撤销", "PAYERROR": "支付失败"}
