"""Alipay (支付宝) over the OpenAPI gateway: 当面付, JSAPI / mini-program and 手机网站支付.

QR_DYNAMIC / QR_STATIC -> alipay.trade.precreate (qr_code); BARCODE -> alipay.trade.pay
(scene=bar_code); JSAPI -> alipay.trade.create (buyer_id -> trade_no for my.tradePay);
H5 -> a signed alipay.trade.wap.pay URL the browser is sent to. Query, close, cancel, refund,
refund query and the bill download are the matching alipay.trade.* / data.dataservice methods.
Wire format, keys and settings live in `alipay_proto`; the bill parser in `alipay_bill`. See
docs/channels/alipay.md for the decisions taken here.
"""

from __future__ import annotations

import asyncio
import zipfile
from datetime import date, datetime
from io import BytesIO
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from fulema.channels.alipay.bill import parse_bill
from fulema.channels.alipay.client import (
    RETRYABLE,
    SUB_MERCHANT_REFUSALS,
    AlipayGateway,
    refusal,
)
from fulema.channels.alipay.protocol import (
    PAYING,
    SUCCESS,
    alipay_public_key,
    app_private_key,
    beijing_time,
    parse_beijing,
    verify_notify,
)
from fulema.channels.base import (
    BarcodePayRequest,
    CallbackAck,
    CallbackKind,
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
    in_app_static_way,
    with_backup,
)
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode

__all__ = ["REFUND_STATES", "TRADE_STATES", "AlipayChannel", "build_channel",
           "parse_bill"]

# Alipay's trade_status -> our states, in ONE place. An undocumented status is UNKNOWN.
# TRADE_CLOSED also covers a paid trade refunded in full: see `_trade` and the docs.
TRADE_STATES: dict[str, TradeState] = {
    "WAIT_BUYER_PAY": TradeState.PAYING,
    "TRADE_SUCCESS": TradeState.SUCCESS,
    "TRADE_FINISHED": TradeState.SUCCESS,  # paid, past the refund period
    "TRADE_CLOSED": TradeState.CLOSED,
}
# alipay.trade.fastpay.refund.query refund_status; an empty status on a found refund is
# success (the field is only returned to some merchants).
REFUND_STATES: dict[str, RefundState] = {
    "REFUND_SUCCESS": RefundState.SUCCESS,
    "": RefundState.SUCCESS,
    "REFUND_PROCESSING": RefundState.PROCESSING,
    "REFUND_FAIL": RefundState.FAILED,
}
NOT_EXIST = "ACQ.TRADE_NOT_EXIST"


def sub_merchant(smid: str | None) -> dict[str, Any]:
    """The indirect merchant a trade is for (partner form): `sub_merchant.merchant_id` in the
    biz_content of precreate, create, wap.pay and pay. Query, close, cancel and refunds name the
    trade by our out_trade_no under our app, which Alipay keeps apart per app: no smid there."""
    return {"sub_merchant": {"merchant_id": smid}} if smid else {}


def _money(value: Any) -> Money | None:
    try:
        return Money.from_yuan(str(value)) if value not in (None, "") else None
    except FulemaError:
        return None


def _time(value: Any) -> datetime | None:
    try:
        return parse_beijing(str(value)) if value else None
    except ValueError:
        return None


class AlipayChannel(AlipayGateway):
    name = ChannelName.ALIPAY
    # precreate, trade.create (JSAPI), wap.pay (H5), trade.pay; app pay (alipay.trade.app.pay)
    # is not implemented
    supported_ways = frozenset({WayCode.QR_DYNAMIC, WayCode.QR_STATIC, WayCode.JSAPI, WayCode.H5,
                                WayCode.BARCODE})

    # --- payments ----------------------------------------------------------------------------

    def _order_biz(self, req: CreatePaymentRequest) -> dict[str, Any]:
        return {"out_trade_no": req.order_id, "total_amount": req.amount.to_yuan(),
                "subject": req.subject[:256], "time_expire": beijing_time(req.expire_at),
                **sub_merchant(req.sub_merchant_id)}

    def static_code_way(self, payer_id: str | None) -> WayCode:
        return in_app_static_way(payer_id)  # the plate's cashier runs inside the app

    async def create(self, req: CreatePaymentRequest) -> CreatePaymentResult:
        if req.way_code in (WayCode.QR_DYNAMIC, WayCode.QR_STATIC):
            node = await self._call("alipay.trade.precreate", self._order_biz(req),
                                    req.notify_url)
            self._raise_for(node)
            if not node.get("qr_code"):
                raise ChannelUnavailable("alipay: precreate answered no qr_code")
            return CreatePaymentResult(state=TradeState.PAYING, code_url=str(node["qr_code"]),
                                       raw=node)
        if req.way_code == WayCode.JSAPI:
            if not req.payer_id:
                raise ChannelError("PAYER_ID_REQUIRED", "alipay JSAPI needs the buyer_id")
            biz = {**self._order_biz(req), "buyer_id": req.payer_id, "product_code": "JSAPI_PAY"}
            node = await self._call("alipay.trade.create", biz, req.notify_url)
            self._raise_for(node)
            if not node.get("trade_no"):
                raise ChannelUnavailable("alipay: trade.create answered no trade_no")
            trade_no = str(node["trade_no"])
            return CreatePaymentResult(state=TradeState.PAYING, channel_trade_no=trade_no,
                                       pay_params={"tradeNO": trade_no}, raw=node)
        if req.way_code == WayCode.H5:
            # 手机网站支付 is a page at Alipay, not an API call: the browser is sent to the
            # gateway with the signed request in the query string.
            biz = {**self._order_biz(req), "product_code": "QUICK_WAP_WAY"}
            if req.return_url:
                biz["quit_url"] = req.return_url
            params = self.signed_params("alipay.trade.wap.pay", biz, notify_url=req.notify_url,
                                        return_url=req.return_url)
            return CreatePaymentResult(state=TradeState.PAYING,
                                       h5_url=f"{self.gateway}?{urlencode(params)}")
        raise ChannelError("UNSUPPORTED_WAY_CODE",
                           f"alipay supports QR_DYNAMIC, QR_STATIC, JSAPI, H5 and BARCODE, not "
                           f"{req.way_code}")

    async def barcode_pay(self, req: BarcodePayRequest) -> TradeResult:
        biz = {"out_trade_no": req.order_id, "scene": "bar_code", "auth_code": req.auth_code,
               "product_code": "FACE_TO_FACE_PAYMENT", "subject": req.subject[:256],
               "total_amount": req.amount.to_yuan(), **sub_merchant(req.sub_merchant_id)}
        # ChannelUnavailable propagates: the breaker must count it, and payments turns it
        # into "paying, query it" (the payer may have been charged).
        node = await self._call("alipay.trade.pay", biz, self.settings.callback_url("alipay"))
        code = node.get("code")
        if code == SUCCESS:
            return self._paid(node, node.get("buyer_user_id"), node.get("gmt_payment"))
        if code == PAYING:  # 10003: waiting for the payer's password in the app
            return TradeResult(state=TradeState.PAYING, channel_trade_no=node.get("trade_no"),
                               raw=node)
        sub_code, sub_msg = refusal(node)
        if sub_code == "ACQ.TRADE_HAS_SUCCESS":  # a retry of a payment that went through
            return await self.query(req.order_id)
        if code == "20000" or sub_code in RETRYABLE:
            return TradeResult(state=TradeState.UNKNOWN, error_code=sub_code,
                               error_message=sub_msg, raw=node)
        if sub_code in SUB_MERCHANT_REFUSALS:
            raise SubMerchantRefused(sub_code, sub_msg)
        return TradeResult(state=TradeState.FAILED, error_code=sub_code, error_message=sub_msg,
                           raw=node)

    def _paid(self, node: dict[str, Any], buyer: Any, paid_at: Any) -> TradeResult:
        return TradeResult(state=TradeState.SUCCESS, channel_trade_no=node.get("trade_no"),
                           amount=_money(node.get("total_amount")),
                           currency=str(node["trans_currency"]) if node.get("trans_currency")
                           else None,
                           payer_id=str(buyer) if buyer else None, paid_at=_time(paid_at),
                           raw=node)

    def _trade(self, node: dict[str, Any], buyer: Any, paid_at: Any) -> TradeResult:
        status = str(node.get("trade_status", ""))
        state = TRADE_STATES.get(status, TradeState.UNKNOWN)
        if state == TradeState.SUCCESS or (state == TradeState.CLOSED and paid_at):
            # A trade refunded in full is TRADE_CLOSED at Alipay but it *was* paid (it carries
            # its payment time): it must not read as "never paid". Refunds are tracked apart.
            return self._paid(node, buyer, paid_at)
        return TradeResult(state=state, channel_trade_no=node.get("trade_no"),
                           error_code=None if state != TradeState.UNKNOWN else status, raw=node)

    async def query(self, order_id: str, *, sub_merchant_id: str | None = None) -> TradeResult:
        node = await self._call("alipay.trade.query", {"out_trade_no": order_id})
        if node.get("code") == SUCCESS:
            return self._trade(node, node.get("buyer_user_id"), node.get("send_pay_date"))
        sub_code, sub_msg = refusal(node)
        # A precreate QR is no trade at Alipay until someone scans it: NOT_FOUND, not failed.
        state = TradeState.NOT_FOUND if sub_code == NOT_EXIST else TradeState.UNKNOWN
        return TradeResult(state=state, error_code=sub_code, error_message=sub_msg, raw=node)

    async def close(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        node = await self._call("alipay.trade.close", {"out_trade_no": order_id})
        sub_code, _ = refusal(node)
        if sub_code == NOT_EXIST:
            # Nobody scanned the QR yet, so there is nothing to close, but the code would stay
            # payable until time_expire: 撤销 (cancel) voids the out_trade_no for good.
            await self.cancel(order_id)
            return
        if sub_code == "ACQ.TRADE_HAS_CLOSE":
            return
        self._raise_for(node)

    async def cancel(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        node = await self._call("alipay.trade.cancel", {"out_trade_no": order_id})
        self._raise_for(node)
        if node.get("retry_flag") == "Y":
            raise ChannelUnavailable("alipay: cancel must be retried (retry_flag=Y)")

    # --- refunds -----------------------------------------------------------------------------

    async def refund(self, req: RefundRequest) -> RefundResult:
        """Synchronous at Alipay. No pre-query: a retry after a full refund (trade now
        TRADE_CLOSED) must reach Alipay, which deduplicates by out_request_no."""
        biz = {"out_trade_no": req.order_id, "refund_amount": req.amount.to_yuan(),
               "out_request_no": req.refund_id, "refund_reason": req.reason[:256]}
        node = await self._call("alipay.trade.refund", biz)
        if node.get("code") == SUCCESS:
            if node.get("fund_change") == "Y":
                return RefundResult(state=RefundState.SUCCESS,
                                    channel_refund_no=node.get("trade_no"), raw=node)
            # fund_change=N: this call moved no money (a repeat); Alipay says to query.
            return await self.refund_query(req.order_id, req.refund_id)
        sub_code, sub_msg = refusal(node)
        if node.get("code") == "20000" or sub_code in RETRYABLE:
            return RefundResult(state=RefundState.UNKNOWN, error_code=sub_code,
                                error_message=sub_msg, raw=node)
        return RefundResult(state=RefundState.FAILED, error_code=sub_code, error_message=sub_msg,
                            raw=node)

    async def refund_query(self, order_id: str, refund_id: str, *,
                           sub_merchant_id: str | None = None) -> RefundResult:
        """ChannelError REFUND_NOT_FOUND when Alipay never got the refund (send it again)."""
        node = await self._call("alipay.trade.fastpay.refund.query",
                                {"out_trade_no": order_id, "out_request_no": refund_id})
        sub_code, sub_msg = refusal(node)
        if node.get("code") == SUCCESS and not node.get("refund_amount"):
            raise ChannelError("REFUND_NOT_FOUND", "alipay has no refund with this request no")
        if sub_code == NOT_EXIST:
            raise ChannelError(sub_code, sub_msg)
        if node.get("code") != SUCCESS:
            return RefundResult(state=RefundState.UNKNOWN, error_code=sub_code,
                                error_message=sub_msg, raw=node)
        state = REFUND_STATES.get(str(node.get("refund_status") or ""), RefundState.UNKNOWN)
        return RefundResult(state=state, channel_refund_no=node.get("trade_no"), raw=node)

    # --- callbacks ---------------------------------------------------------------------------

    async def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackResult:
        try:
            fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                    strict_parsing=True))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FulemaError(ErrorCode.CALLBACK_INVALID, "alipay: not a form body") from exc
        if not verify_notify(fields, self.alipay_key):
            raise FulemaError(ErrorCode.CALLBACK_INVALID, "alipay: signature does not verify")
        if fields.get("app_id") != self.ali.app_id or not fields.get("out_trade_no") or (
                fields.get("seller_id") and fields["seller_id"] != self.ali.seller_id):
            raise FulemaError(ErrorCode.CALLBACK_INVALID, "alipay: not for this app")
        order_id = fields["out_trade_no"]
        if fields.get("out_biz_no") and fields.get("refund_fee"):
            # a refund's notification: same notify_type, carrying out_biz_no = out_request_no
            refund = RefundResult(state=RefundState.SUCCESS, channel_refund_no=fields.get(
                "trade_no"), raw=dict(fields))
            return CallbackResult(kind=CallbackKind.REFUND, order_id=order_id,
                                  refund_id=fields["out_biz_no"], refund=refund)
        trade = self._trade(dict(fields), fields.get("buyer_id"), fields.get("gmt_payment"))
        if trade.state == TradeState.UNKNOWN:
            raise FulemaError(ErrorCode.CALLBACK_INVALID,
                              f"alipay: unknown trade_status {fields.get('trade_status')!r}")
        return CallbackResult(kind=CallbackKind.PAYMENT, order_id=order_id, trade=trade)

    def callback_ack(self, ok: bool) -> CallbackAck:
        """Alipay retries (about 8 times over 25 hours) until the body is exactly `success`."""
        if ok:
            return CallbackAck(status_code=200, body=b"success", media_type="text/plain")
        return CallbackAck(status_code=400, body=b"fail", media_type="text/plain")

    # --- statement ---------------------------------------------------------------------------

    async def download_statement(self, day: date) -> bytes:
        """The bill zip for `day` (Beijing date) as Alipay serves it; read it with
        `parse_bill`."""
        node = await self._call("alipay.data.dataservice.bill.downloadurl.query",
                                {"bill_type": "trade", "bill_date": day.isoformat()})
        self._raise_for(node)
        url = str(node.get("bill_download_url") or "")
        if not url:
            raise ChannelUnavailable("alipay: no bill_download_url")
        try:
            async with asyncio.timeout(self.timeout):
                resp = await self.http.get(url, timeout=self.timeout)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ChannelUnavailable(f"alipay: bill download {type(exc).__name__}") from exc
        if resp.status_code != 200 or not zipfile.is_zipfile(BytesIO(resp.content)):
            raise ChannelUnavailable(f"alipay: bill download failed (HTTP {resp.status_code})")
        return resp.content


def build_channel(settings: Settings, http: httpx.AsyncClient) -> AlipayChannel:
    ali = settings.alipay
    return AlipayChannel(settings, ali, http, app_private_key(settings, ali),
                         alipay_public_key(settings, ali))


def build_endpoints(settings: Settings, http: httpx.AsyncClient) -> list[tuple[str, Channel]]:
    """Primary and, when FULEMA_ALIPAY_BACKUP_BASE_URL is set, the backup; same keys on both."""
    ali = settings.alipay
    private_key, alipay_key = app_private_key(settings, ali), alipay_public_key(settings, ali)
    return with_backup(ali, lambda cfg: AlipayChannel(settings, cfg, http, private_key,
                                                      alipay_key))
