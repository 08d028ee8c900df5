"""WeChat Pay API v3, direct-merchant mode (普通商户直连) and service-provider mode (服务商):
the adapter.

An order that carries the merchant's `sub_mchid` (its ACTIVE registration, docs/onboarding.md)
goes through the partner endpoints (`/v3/pay/partner/transactions/...`) with `sp_appid`,
`sp_mchid` (ours) and `sub_mchid`; refunds carry `sub_mchid` in the body, refund queries in the
query string. An order without one goes out in the direct form as before.

JSON over HTTPS, amounts in integer fen (amount.total), every request signed with the
merchant's RSA key (`wechat_sign.authorization`), every answer and callback signed by the
platform key and checked here before anything is acted on; callbacks' resources are
AEAD_AES_256_GCM with the APIv3 key. Endpoints and field names follow WeChat's public API
reference; docs/channels/wechat.md lists them with the assumptions made.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from fulema.channels.base import (
    BarcodePayRequest,
    CallbackAck,
    CallbackResult,
    Channel,
    ChannelError,
    ChannelUnavailable,
    CreatePaymentRequest,
    CreatePaymentResult,
    RefundRequest,
    RefundResult,
    RefundState,
    SubMerchantRefused,
    TradeResult,
    TradeState,
    event_callback,
    in_app_static_way,
    with_backup,
)
from fulema.channels.wechat.bill import parse_tradebill, parse_tradebill_summary
from fulema.channels.wechat.config import (
    merchant_private_key,
    merchant_serial_no,
    platform_public_key,
)
from fulema.channels.wechat.sign import check_signed, decrypt_resource
from fulema.channels.wechat.transport import WechatApi, pay_params
from fulema.channels.wechat.v2 import WechatV2Codepay
from fulema.core.channel_settings import WechatSection
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode

__all__ = ["REFUND_STATES", "TRADE_STATES", "WechatChannel", "build_channel",
           "parse_tradebill", "parse_tradebill_summary", "refund_result", "trade_result"]

CST = timezone(timedelta(hours=8), "CST")  # WeChat's times are RFC 3339 in +08:00

# WeChat's trade_state -> ours. ONE exhaustive table; a state not listed is UNKNOWN (query again).
TRADE_STATES: dict[str, TradeState] = {
    "NOTPAY": TradeState.PAYING,
    "USERPAYING": TradeState.PAYING,  # payer-code payment waiting for the payer's password
    "SUCCESS": TradeState.SUCCESS,
    "REFUND": TradeState.SUCCESS,  # it was paid; refunds are tracked on their own
    "CLOSED": TradeState.CLOSED,
    "REVOKED": TradeState.CLOSED,  # payer-code payment reversed (撤销)
    "PAYERROR": TradeState.FAILED,
}
# refund `status` (query/answer) and `refund_status` (callback) -> ours.
REFUND_STATES: dict[str, RefundState] = {
    "SUCCESS": RefundState.SUCCESS,
    "PROCESSING": RefundState.PROCESSING,
    "CLOSED": RefundState.FAILED,
    "ABNORMAL": RefundState.FAILED,
}
# What WeChat answers when the sub-merchant itself cannot trade: MCH_NOT_EXISTS (no such
# sub_mchid under our sp_mchid, or its applyment not completed) and NO_AUTH (its payments
# stopped). Only in the partner form: in the direct form these are about our own mchid.
SUB_MERCHANT_REFUSALS = frozenset({"MCH_NOT_EXISTS", "NO_AUTH"})
# codepay refusals that are about the payer, not our request: the payment FAILED.
PAYER_REFUSALS = {"NOTENOUGH", "NOT_ENOUGH", "AUTH_CODE_INVALID", "AUTHCODEEXPIRE",
                  "AUTH_CODE_ERROR", "PAYER_ACCOUNT_ABNORMAL", "USER_ACCOUNT_ABNORMAL",
                  "ACCOUNT_ERROR", "TRADE_ERROR", "RULE_LIMIT", "BUYER_MISMATCH", "ORDER_CLOSED"}


def rfc3339(at: datetime) -> str:
    return at.astimezone(CST).isoformat(timespec="seconds")


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _fen(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def trade_result(data: dict[str, Any]) -> TradeResult:
    """A transaction object (query answer, codepay answer, callback resource) -> TradeResult."""
    state = TRADE_STATES.get(str(data.get("trade_state")), TradeState.UNKNOWN)
    amount = data.get("amount") if isinstance(data.get("amount"), dict) else {}
    payer = data.get("payer") if isinstance(data.get("payer"), dict) else {}
    total = _fen(amount.get("total")) if isinstance(amount, dict) else None
    failed = state == TradeState.FAILED
    return TradeResult(
        state=state, channel_trade_no=data.get("transaction_id") or None,
        amount=Money(total) if total is not None and state == TradeState.SUCCESS else None,
        currency=str(amount["currency"]) if isinstance(amount, dict) and amount.get("currency")
        else None,
        # direct form: openid; partner form: sp_openid (under our appid)
        payer_id=(payer.get("openid") or payer.get("sp_openid")) if isinstance(payer, dict)
        else None,
        paid_at=parse_time(data.get("success_time")),
        error_code=data.get("trade_state") if failed else None,
        error_message=data.get("trade_state_desc") if failed else None, raw=data)


def refund_result(data: dict[str, Any]) -> RefundResult:
    status = data.get("status", data.get("refund_status"))
    state = REFUND_STATES.get(str(status), RefundState.UNKNOWN)
    return RefundResult(state=state, channel_refund_no=data.get("refund_id"),
                        error_code=str(status) if state == RefundState.FAILED else None,
                        raw=data)



def _payer_key(order: dict[str, Any]) -> str:
    """Whose openid the JSAPI payer's is: direct form `openid` (under our appid); partner form
    `sub_openid` when the order comes from the merchant's own app (sub_appid), else
    `sp_openid` (under our appid, the cashier's silent authorisation)."""
    if "sub_mchid" not in order:
        return "openid"
    return "sub_openid" if "sub_appid" in order else "sp_openid"

class WechatChannel:
    name = ChannelName.WECHAT
    supported_ways = frozenset(WayCode)  # native, H5, JSAPI, APP, codepay; the plate via the app

    def __init__(self, settings: Settings, http: httpx.AsyncClient,
                 wx: WechatSection | None = None) -> None:
        self.settings = settings
        self.wx = wx or settings.wechat
        self.wx.check(settings)
        self.apiv3_key = self.wx.apiv3_key.encode()
        self.key = merchant_private_key(settings, self.wx)
        self.platform_key = platform_public_key(settings, self.wx)
        self.api = WechatApi(
            http=http, base_url=(self.wx.base_url or settings.sandbox_url("wechat")).rstrip("/"),
            mchid=self.wx.mchid, key=self.key,
            serial_no=merchant_serial_no(settings, self.wx, self.key.public_key()),
            platform_key=self.platform_key, platform_key_id=self.wx.platform_public_key_id,
            timeout=self.wx.timeout_seconds or settings.channel_timeout_seconds)
        v2 = settings.wechat_v2  # the older XML API for payer codes, where a bank needs it
        self.v2 = WechatV2Codepay(settings, http, self.wx, v2) if v2.enabled else None

    def _who(self, sub: str | None) -> dict[str, str]:
        """Whose order it is: ours (direct) or the sub-merchant's under us (partner)."""
        if sub:
            return {"sp_appid": self.wx.appid, "sp_mchid": self.wx.mchid, "sub_mchid": sub}
        return {"appid": self.wx.appid, "mchid": self.wx.mchid}

    @staticmethod
    def _path(sub: str | None, tail: str) -> str:
        return ("/v3/pay/partner/transactions/" if sub else "/v3/pay/transactions/") + tail

    def _order(self, req: CreatePaymentRequest) -> dict[str, Any]:
        # the merchant's own app (sub_appid) only beside a sub_mchid: the partner form
        app = {"sub_appid": req.sub_app_id} if req.sub_merchant_id and req.sub_app_id else {}
        return {**self._who(req.sub_merchant_id), **app,
                "description": req.subject[:127] or "-", "out_trade_no": req.order_id,
                "time_expire": rfc3339(req.expire_at), "notify_url": req.notify_url,
                "amount": {"total": req.amount.fen, "currency": "CNY"}}

    async def _ok(self, sub: str | None, method: str, path: str,
                  payload: dict[str, Any] | None = None) -> dict[str, Any]:
        status, doc = await self.api.call(method, path, payload)
        self._raise_for(sub, status, doc)
        return doc

    def _raise_for(self, sub: str | None, status: int, doc: dict[str, Any]) -> None:
        if sub and status >= 400 and doc.get("code") in SUB_MERCHANT_REFUSALS:
            raise SubMerchantRefused(str(doc["code"]), str(doc.get("message", "")))
        self.api.raise_for(status, doc)

    def static_code_way(self, payer_id: str | None) -> WayCode:
        return in_app_static_way(payer_id)  # the plate's cashier runs inside the app

    async def create(self, req: CreatePaymentRequest) -> CreatePaymentResult:
        body = self._order(req)
        sub = req.sub_merchant_id
        way = req.way_code
        if way == WayCode.QR_STATIC:
            way = self.static_code_way(req.payer_id)
        if way == WayCode.QR_DYNAMIC:
            data = await self._ok(sub, "POST", self._path(sub, "native"), body)
            return CreatePaymentResult(TradeState.PAYING, code_url=data.get("code_url"), raw=data)
        if way == WayCode.H5:
            body["scene_info"] = {"payer_client_ip": req.client_ip, "h5_info": {"type": "Wap"}}
            data = await self._ok(sub, "POST", self._path(sub, "h5"), body)
            return CreatePaymentResult(TradeState.PAYING, h5_url=data.get("h5_url"), raw=data)
        if way in (WayCode.JSAPI, WayCode.APP):
            if way == WayCode.JSAPI:
                if not req.payer_id:
                    raise ChannelError("PARAM_ERROR", "JSAPI needs the payer's openid")
                body["payer"] = {_payer_key(body): req.payer_id}
            path = self._path(sub, "jsapi" if way == WayCode.JSAPI else "app")
            data = await self._ok(sub, "POST", path, body)
            prepay_id = data.get("prepay_id")
            if not isinstance(prepay_id, str) or not prepay_id:
                raise ChannelUnavailable("wechat: answer has no prepay_id")
            # the payment is launched in the app that made the order: the merchant's own
            app_id = str(body.get("sub_appid") or self.wx.appid)
            params = pay_params(way, self.key, app_id, self.wx.mchid, prepay_id)
            return CreatePaymentResult(TradeState.PAYING, pay_params=params, raw=data)
        raise ChannelError("WAY_CODE_UNSUPPORTED", f"use barcode_pay for {req.way_code}")

    async def barcode_pay(self, req: BarcodePayRequest) -> TradeResult:
        if self.v2 is not None:
            return await self.v2.barcode_pay(req)
        sub = req.sub_merchant_id
        body = {**self._who(sub),
                "description": req.subject[:127] or "-", "out_trade_no": req.order_id,
                "payer": {"auth_code": req.auth_code},
                "amount": {"total": req.amount.fen, "currency": "CNY"},
                "scene_info": {"device_ip": req.client_ip,
                               "store_info": {"out_id": self.wx.store_out_id}}}
        status, doc = await self.api.call("POST", self._path(sub, "codepay"), body)
        if status in (200, 202) and doc.get("trade_state"):
            return trade_result(doc)
        code, message = str(doc.get("code", "")), str(doc.get("message", ""))
        if status == 202 or code == "USERPAYING":  # the payer is entering the password
            return TradeResult(state=TradeState.PAYING, error_code="USERPAYING",
                               error_message=message, raw=doc)
        if status >= 400 and code in PAYER_REFUSALS:
            return TradeResult(state=TradeState.FAILED, error_code=code, error_message=message,
                               raw=doc)
        if status >= 400:
            self._raise_for(sub, status, doc)
        raise ChannelUnavailable("wechat codepay: answer has no trade_state")

    async def query(self, order_id: str, *, sub_merchant_id: str | None = None) -> TradeResult:
        if self.v2 is not None:
            return await self.v2.query(order_id, sub_merchant_id=sub_merchant_id)
        sub = sub_merchant_id
        who = f"sp_mchid={self.wx.mchid}&sub_mchid={quote(sub, safe='')}" if sub else \
            f"mchid={self.wx.mchid}"
        path = self._path(sub, f"out-trade-no/{quote(order_id, safe='')}?{who}")
        status, doc = await self.api.call("GET", path, None)
        if status == 404 and doc.get("code") == "ORDER_NOT_EXIST":
            return TradeResult(state=TradeState.NOT_FOUND, error_code="ORDER_NOT_EXIST",
                               error_message=str(doc.get("message", "")), raw=doc)
        self._raise_for(sub, status, doc)
        mine = (doc.get("sp_mchid") == self.wx.mchid and doc.get("sub_mchid") == sub) if sub \
            else doc.get("mchid") == self.wx.mchid
        if doc.get("out_trade_no") != order_id or not mine:
            raise ChannelUnavailable("wechat query: the answer is about another order")
        return trade_result(doc)

    async def close(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        sub = sub_merchant_id
        who = {"sp_mchid": self.wx.mchid, "sub_mchid": sub} if sub else {"mchid": self.wx.mchid}
        await self._ok(sub, "POST", self._path(sub, f"out-trade-no/{quote(order_id, safe='')}"
                                                    "/close"), who)

    async def cancel(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        if self.v2 is not None:
            await self.v2.cancel(order_id, sub_merchant_id=sub_merchant_id)
            return
        sub = sub_merchant_id
        status, doc = await self.api.call(
            "POST", self._path(sub, f"out-trade-no/{quote(order_id, safe='')}/reverse"),
            self._who(sub))
        if status == 404 and doc.get("code") == "ORDER_NOT_EXIST":
            return  # nothing reached WeChat: nothing to reverse
        self._raise_for(sub, status, doc)

    async def refund(self, req: RefundRequest) -> RefundResult:
        data = await self._ok(req.sub_merchant_id, "POST", "/v3/refund/domestic/refunds", {
            "sub_mchid": req.sub_merchant_id,  # dropped when None (the direct form)
            "out_trade_no": req.order_id, "out_refund_no": req.refund_id,
            "reason": req.reason[:80] or None, "notify_url": req.notify_url,
            "amount": {"refund": req.amount.fen, "total": req.order_amount.fen,
                       "currency": "CNY"}})
        return refund_result(data)

    async def refund_query(self, order_id: str, refund_id: str, *,
                           sub_merchant_id: str | None = None) -> RefundResult:
        sub = sub_merchant_id
        path = f"/v3/refund/domestic/refunds/{quote(refund_id, safe='')}"
        data = await self._ok(sub, "GET", path + (f"?sub_mchid={quote(sub, safe='')}"
                                                  if sub else ""))
        if data.get("out_trade_no") != order_id:
            raise ChannelError("RESOURCE_NOT_EXISTS", "the refund belongs to another order")
        return refund_result(data)

    async def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackResult:
        problem = check_signed(headers, body, self.platform_key, self.wx.platform_public_key_id,
                               self.settings.signature_tolerance_seconds)
        if problem is not None:
            raise FulemaError(ErrorCode.CALLBACK_INVALID, f"wechat callback: {problem}")
        try:
            doc = orjson.loads(body)
            if doc.get("resource_type") != "encrypt-resource":
                raise ValueError("resource_type is not encrypt-resource")
            event = str(doc["event_type"])
            data = decrypt_resource(self.apiv3_key, doc["resource"])
            # direct form: our mchid; partner form: our sp_mchid and the sub-merchant's
            # sub_mchid, which payments checks against the order's
            sub = data.get("sub_mchid") if "sp_mchid" in data else None
            if (data.get("sp_mchid") if sub is not None else data.get("mchid")) != self.wx.mchid:
                raise ValueError("the resource is not this merchant's")
            if sub is not None and (not isinstance(sub, str) or not sub):
                raise ValueError("a partner-form resource without a sub_mchid")
            return event_callback(event, data, payment_prefix="TRANSACTION.", trade=trade_result,
                                  refund=refund_result, sub_merchant_id=sub,
                                  names_sub_merchant=True)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FulemaError(ErrorCode.CALLBACK_INVALID, f"wechat callback: {exc}") from exc

    def callback_ack(self, ok: bool) -> CallbackAck:
        """v3 success is HTTP 200/204 with no body; failure a 4xx with code FAIL."""
        if ok:
            return CallbackAck(204, b"", "application/json")
        return CallbackAck(400, b'{"code":"FAIL","message":"rejected"}', "application/json")

    async def download_statement(self, day: date, *, sub_merchant_id: str | None = None
                                 ) -> bytes:
        """The day's ALL trade bill exactly as downloaded (gzip'd); its SHA1 is checked.

        Without `sub_merchant_id` it is the service provider's whole bill (our direct-form
        orders and every sub-merchant's, each row naming its 特约商户号), which reconciliation
        imports; with it, WeChat's bill of that one sub-merchant (`sub_mchid`), e.g. to hand a
        merchant its own statement."""
        sub = f"&sub_mchid={quote(sub_merchant_id, safe='')}" if sub_merchant_id else ""
        info = await self.api.ok("GET", f"/v3/bill/tradebill?bill_date={day:%Y-%m-%d}"
                                 f"&bill_type=ALL&tar_type=GZIP{sub}")
        url = info.get("download_url")
        if not isinstance(url, str) or not url:
            raise ChannelUnavailable("wechat tradebill: no download_url")
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
        return await self.api.download(path, origin, str(info.get("hash_type", "")),
                                       str(info.get("hash_value", "")))


def build_channel(settings: Settings, http: httpx.AsyncClient) -> WechatChannel:
    return WechatChannel(settings, http)


def build_endpoints(settings: Settings, http: httpx.AsyncClient) -> list[tuple[str, Channel]]:
    """Primary and, when configured, the backup domain."""
    return with_backup(settings.wechat, lambda wx: WechatChannel(settings, http, wx))

