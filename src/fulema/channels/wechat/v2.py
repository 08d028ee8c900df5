"""WeChat Pay API v2 (the XML API) for payer-code payments: 付款码支付 and what goes with it.

Banks still meet v2 terminals and acquirers, so `WechatV2Codepay` speaks it next to the v3
adapter: POST /pay/micropay, /pay/orderquery, /secapi/pay/reverse and /pay/refundquery, bodies
``<xml><k>v</k>...</xml>`` signed with the merchant's 32-character API key. The rules, as
WeChat documents them (安全规范 / 签名算法):

- sign: the non-empty parameters except ``sign``, sorted by key (ASCII), joined as ``k=v&...``,
  then ``&key=API_KEY``; MD5 (the default) or HMAC-SHA256 keyed with the API key; upper-case
  hex. Example in WeChat's docs: appid=wxd930ea5d5a258f4f ... key 192006250b4c09247ec02edce69f6a2d
  gives 9A0A8659F005D6984697E2CA0A9CF3B7 (MD5), 6A9AE165...DACD6 (HMAC-SHA256); tested.
- answers carry ``return_code`` (communication: SUCCESS/FAIL with ``return_msg``) and, when it is
  SUCCESS, ``result_code`` / ``err_code`` / ``err_code_des`` (business) and a ``sign`` made the
  same way; we act on an answer only after that sign verifies.

XML is parsed with defusedxml (``forbid_dtd=True``): the standard library's expat is not open to
external entities and, from expat 2.4.1, limits entity amplification, but an answer or a request
body comes from the network and WeChat's XML never has a DTD, so refusing DTDs outright costs
nothing and holds on any expat. Building XML uses ElementTree, which escapes for us.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import xml.etree.ElementTree as ET  # only to build XML (and ParseError); parsing is defusedxml
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml

from fulema.channels.base import (
    BarcodePayRequest,
    ChannelError,
    ChannelUnavailable,
    RefundResult,
    RefundState,
    SubMerchantRefused,
    TradeResult,
    TradeState,
)
from fulema.core.channel_settings import DEV_V2_API_KEY, WechatSection, WechatV2Section
from fulema.core.config import Settings
from fulema.core.money import Money

CST = timezone(timedelta(hours=8), "CST")  # time_end is yyyyMMddHHmmss in Beijing time
MD5, HMAC_SHA256 = "MD5", "HMAC-SHA256"
DEV_API_KEY = DEV_V2_API_KEY  # 32 characters, refused outside development

# orderquery trade_state -> ours. ONE exhaustive table; anything else is UNKNOWN (query again).
TRADE_STATES: dict[str, TradeState] = {
    "SUCCESS": TradeState.SUCCESS,
    "REFUND": TradeState.SUCCESS,  # paid; refunds are tracked on their own
    "NOTPAY": TradeState.PAYING,
    "USERPAYING": TradeState.PAYING,  # the payer is entering the password
    "ACCEPT": TradeState.PAYING,  # received, waiting for the debit
    "CLOSED": TradeState.CLOSED,
    "REVOKED": TradeState.CLOSED,  # reversed (撤销)
    "PAYERROR": TradeState.FAILED,
}
# micropay err_code -> outcome. None: the request itself was refused (nothing was charged), a
# ChannelError. A code not listed is UNKNOWN: query, never assume the payer was not charged.
MICROPAY_ERRORS: dict[str, TradeState | None] = {
    "USERPAYING": TradeState.PAYING,
    "SYSTEMERROR": TradeState.UNKNOWN,
    "BANKERROR": TradeState.UNKNOWN,
    "ORDERPAID": TradeState.SUCCESS,  # answered with a query, which carries the payment facts
    "NOTENOUGH": TradeState.FAILED,
    "NOTSUPORTCARD": TradeState.FAILED,  # sic, WeChat's spelling
    "AUTHCODEEXPIRE": TradeState.FAILED,
    "AUTH_CODE_ERROR": TradeState.FAILED,
    "AUTH_CODE_INVALID": TradeState.FAILED,
    "BUYER_MISMATCH": TradeState.FAILED,
    "TRADE_ERROR": TradeState.FAILED,
    "ORDERCLOSED": TradeState.CLOSED,
    "ORDERREVERSED": TradeState.CLOSED,
    **dict.fromkeys(("PARAM_ERROR", "SIGNERROR", "XML_FORMAT_ERROR", "LACK_PARAMS", "NOT_UTF8",
                     "REQUIRE_POST_METHOD", "APPID_NOT_EXIST", "MCHID_NOT_EXIST",
                     "APPID_MCHID_NOT_MATCH", "OUT_TRADE_NO_USED", "INVALID_REQUEST"), None),
}
# In the service-provider form, WeChat refusing the sub-merchant itself: unknown to it or not
# completed (MCHID_NOT_EXIST), its payments stopped (NO_AUTH, 商户无此接口权限).
SUB_MERCHANT_REFUSALS = frozenset({"MCHID_NOT_EXIST", "NO_AUTH"})
# refundquery refund_status_$n -> ours.
REFUND_STATES: dict[str, RefundState] = {
    "SUCCESS": RefundState.SUCCESS,
    "PROCESSING": RefundState.PROCESSING,
    "REFUNDCLOSE": RefundState.FAILED,
    "CHANGE": RefundState.FAILED,  # refunded to a card that is gone: handled by hand
}


# --- signing and XML (shared with the sandbox) -----------------------------------------------

def sign_source(params: Mapping[str, str], api_key: str) -> str:
    """stringSignTemp: the string the sign covers."""
    pairs = [f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != ""]
    return "&".join([*pairs, f"key={api_key}"])


def sign(params: Mapping[str, str], api_key: str, sign_type: str = MD5) -> str:
    source = sign_source(params, api_key).encode()
    if sign_type == HMAC_SHA256:
        return hmac.new(api_key.encode(), source, hashlib.sha256).hexdigest().upper()
    if sign_type in (MD5, ""):
        return hashlib.md5(source, usedforsecurity=False).hexdigest().upper()
    raise ValueError(f"unsupported sign_type {sign_type!r}")


def verify(params: Mapping[str, str], api_key: str, sign_type: str = MD5) -> bool:
    given = params.get("sign", "")
    try:
        expected = sign(params, api_key, sign_type)
    except ValueError:
        return False
    return bool(given) and hmac.compare_digest(expected.encode(), given.upper().encode())


def nonce_str() -> str:
    return secrets.token_hex(16)  # "不长于32位"


def to_xml(params: Mapping[str, str]) -> bytes:
    """``<xml><k>v</k>...</xml>``; empty values are left out (they are not signed either)."""
    root = ET.Element("xml")
    for key, value in params.items():
        if value != "":
            ET.SubElement(root, key).text = value
    return ET.tostring(root, encoding="unicode").encode()


def from_xml(body: bytes) -> dict[str, str]:
    """A flat ``<xml>`` document as a dict; ValueError for anything else (a DTD, nesting, a
    repeated key: two values for one signed name would let the sign cover the wrong one)."""
    try:
        root = parse_xml(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise ValueError(f"not WeChat XML: {exc}") from exc
    if root.tag != "xml":
        raise ValueError("the root element is not <xml>")
    out: dict[str, str] = {}
    for child in root:
        if len(child) or child.tag in out:
            raise ValueError(f"nested or repeated element <{child.tag}>")
        out[child.tag] = child.text or ""
    return out


def parse_time_end(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=CST).astimezone(UTC)
    except ValueError:
        return None


def _fen(text: str | None) -> int | None:
    return int(text) if text and text.isascii() and text.isdigit() else None


def trade_result(doc: Mapping[str, str], state: TradeState) -> TradeResult:
    total = _fen(doc.get("total_fee"))
    paid = state == TradeState.SUCCESS
    failed = state == TradeState.FAILED
    return TradeResult(
        state=state, channel_trade_no=doc.get("transaction_id") or None,
        amount=Money(total) if paid and total is not None else None,
        currency=doc.get("fee_type") or None,
        payer_id=doc.get("openid") or None,
        paid_at=parse_time_end(doc.get("time_end", "")) if paid else None,
        error_code=(doc.get("err_code") or doc.get("trade_state")) if failed else None,
        error_message=(doc.get("err_code_des") or doc.get("trade_state_desc")) if failed else None,
        raw=dict(doc))


def _sub(sub_merchant_id: str | None) -> dict[str, str]:
    """v2's service-provider form: the sub-merchant as `sub_mch_id` beside our mch_id."""
    return {"sub_mch_id": sub_merchant_id} if sub_merchant_id else {}


# --- the client ------------------------------------------------------------------------------

class WechatV2Codepay:
    """Payer-code payments over v2. Same contract as the Channel methods it stands in for."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient,
                 wx: WechatSection | None = None, v2: WechatV2Section | None = None) -> None:
        self.wx = wx or settings.wechat
        self.v2 = v2 or settings.wechat_v2
        self.v2.check(settings)
        self.http = http
        self.base_url = (self.wx.base_url or settings.sandbox_url("wechat")).rstrip("/")
        self.timeout = self.wx.timeout_seconds or settings.channel_timeout_seconds
        self._tls: httpx.AsyncClient | None = None

    def _client(self, path: str) -> httpx.AsyncClient:
        """The shared client, or for /secapi/ one presenting the merchant certificate."""
        if not path.startswith("/secapi/") or self.v2.cert_path is None \
                or self.v2.cert_key_path is None:
            return self.http
        if self._tls is None:
            self._tls = httpx.AsyncClient(
                cert=(str(self.v2.cert_path), str(self.v2.cert_key_path)), timeout=self.timeout)
        return self._tls

    async def aclose(self) -> None:
        if self._tls is not None:
            await self._tls.aclose()

    async def call(self, path: str, fields: Mapping[str, str]) -> dict[str, str]:
        """POST one signed request; the verified answer of a request WeChat processed
        (return_code SUCCESS). Anything less is ChannelUnavailable: a return_code FAIL answer
        is unsigned, so it cannot prove that nothing happened."""
        params = {"appid": self.wx.appid, "mch_id": self.wx.mchid, "nonce_str": nonce_str(),
                  "sign_type": self.v2.sign_type, **fields}
        params["sign"] = sign(params, self.v2.api_key, self.v2.sign_type)
        try:
            # asyncio.timeout also bounds in-process transports, which ignore httpx timeouts
            async with asyncio.timeout(self.timeout):
                resp = await self._client(path).post(
                    self.base_url + path, content=to_xml(params), timeout=self.timeout,
                    headers={"Content-Type": "text/xml; charset=utf-8"})
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ChannelUnavailable(f"wechat v2 {path}: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise ChannelUnavailable(f"wechat v2 {path}: HTTP {resp.status_code}")
        try:
            doc = from_xml(resp.content)
        except ValueError as exc:
            raise ChannelUnavailable(f"wechat v2 {path}: garbled answer") from exc
        if doc.get("return_code") != "SUCCESS":
            raise ChannelUnavailable(f"wechat v2 {path}: return_code {doc.get('return_code')!r} "
                                     f"{doc.get('return_msg', '')}".rstrip())
        if not verify(doc, self.v2.api_key, self.v2.sign_type):
            raise ChannelUnavailable(f"wechat v2 {path}: the answer's sign does not verify")
        if doc.get("appid") != self.wx.appid or doc.get("mch_id") != self.wx.mchid:
            raise ChannelUnavailable(f"wechat v2 {path}: the answer is for another merchant")
        return doc

    async def barcode_pay(self, req: BarcodePayRequest) -> TradeResult:
        doc = await self.call("/pay/micropay", {
            "body": req.subject[:127] or "-", "out_trade_no": req.order_id,
            "total_fee": str(req.amount.fen), "fee_type": "CNY",
            "spbill_create_ip": req.client_ip, "auth_code": req.auth_code,
            **_sub(req.sub_merchant_id)})
        if doc.get("result_code") == "SUCCESS":
            if doc.get("out_trade_no") != req.order_id or _fen(doc.get("total_fee")) != \
                    req.amount.fen:
                raise ChannelUnavailable("wechat v2 micropay: the answer is about another payment")
            return trade_result(doc, TradeState.SUCCESS)
        code, desc = doc.get("err_code", ""), doc.get("err_code_des", "")
        if req.sub_merchant_id and code in SUB_MERCHANT_REFUSALS:
            raise SubMerchantRefused(code, desc)  # the sub-merchant, not this payment
        outcome = MICROPAY_ERRORS.get(code, TradeState.UNKNOWN)
        if outcome is None:
            raise ChannelError(code, desc)
        if code == "ORDERPAID":
            return await self.query(req.order_id)
        return TradeResult(state=outcome, error_code=code, error_message=desc, raw=doc)

    async def query(self, order_id: str, *, sub_merchant_id: str | None = None) -> TradeResult:
        doc = await self.call("/pay/orderquery", {"out_trade_no": order_id,
                                                  **_sub(sub_merchant_id)})
        if doc.get("result_code") != "SUCCESS":
            code, desc = doc.get("err_code", ""), doc.get("err_code_des", "")
            if code == "ORDERNOTEXIST":
                return TradeResult(state=TradeState.NOT_FOUND, error_code=code,
                                   error_message=desc, raw=doc)
            if code in ("SYSTEMERROR", ""):
                raise ChannelUnavailable(f"wechat v2 orderquery: {code or 'FAIL'} {desc}")
            raise ChannelError(code, desc)
        if doc.get("out_trade_no") != order_id:
            raise ChannelUnavailable("wechat v2 orderquery: the answer is about another order")
        return trade_result(doc, TRADE_STATES.get(doc.get("trade_state", ""), TradeState.UNKNOWN))

    async def cancel(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        """Reverse (撤销): closes an unpaid payment, refunds a paid one. WeChat asks callers to
        call again while it answers recall=Y, or when the call gets no answer."""
        last: Exception = ChannelUnavailable("wechat v2 reverse: no attempt made")
        for attempt in range(max(1, self.v2.reverse_attempts)):
            if attempt:
                await asyncio.sleep(self.v2.reverse_retry_seconds)
            try:
                doc = await self.call("/secapi/pay/reverse", {"out_trade_no": order_id,
                                                              **_sub(sub_merchant_id)})
            except ChannelUnavailable as exc:
                last = exc
                continue
            code, desc = doc.get("err_code", ""), doc.get("err_code_des", "")
            if doc.get("recall") == "Y" or code == "SYSTEMERROR":
                last = ChannelUnavailable(f"wechat v2 reverse: recall=Y {code} {desc}".rstrip())
                continue
            if doc.get("result_code") == "SUCCESS" or code == "ORDERNOTEXIST":
                return  # reversed, or nothing reached WeChat: nothing to reverse
            raise ChannelError(code or "FAIL", desc)
        raise last

    async def refund_query(self, order_id: str, refund_id: str, *,
                           sub_merchant_id: str | None = None) -> RefundResult:
        doc = await self.call("/pay/refundquery", {"out_refund_no": refund_id,
                                                   **_sub(sub_merchant_id)})
        if doc.get("result_code") != "SUCCESS":
            code, desc = doc.get("err_code", ""), doc.get("err_code_des", "")
            if code in ("SYSTEMERROR", ""):
                raise ChannelUnavailable(f"wechat v2 refundquery: {code or 'FAIL'} {desc}")
            raise ChannelError(code, desc)
        if doc.get("out_trade_no") != order_id:
            raise ChannelError("REFUNDNOTEXIST", "the refund belongs to another order")
        count = _fen(doc.get("refund_count")) or 0
        for n in range(count):
            if doc.get(f"out_refund_no_{n}") == refund_id:
                status = doc.get(f"refund_status_{n}", "")
                state = REFUND_STATES.get(status, RefundState.UNKNOWN)
                return RefundResult(state=state, channel_refund_no=doc.get(f"refund_id_{n}"),
                                    error_code=status if state == RefundState.FAILED else None,
                                    raw=doc)
        raise ChannelUnavailable("wechat v2 refundquery: the answer does not list the refund")
