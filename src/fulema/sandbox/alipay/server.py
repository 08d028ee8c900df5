"""Alipay OpenAPI sandbox: the gateway (/gateway.do), bill downloads and the payers' wallet.

A second, independent implementation of Alipay's protocol (`protocol.py`, written from the
vendor's documentation; nothing is imported from our adapter). Mounted at /sandbox/alipay, or
served at its own root by `fulema sandbox alipay`. It checks requests as Alipay's gateway
does (app_id, sign_type, timestamp, then the RSA2 signature over the sorted parameters) and
answers a bad signature with 40002 isv.invalid-signature, quoting the string it verified, as
Alipay does; it signs every answer for the app it knows over the node's exact text (an
unknown or missing app_id is answered unsigned); it posts signed trade_status_sync
notifications after the answer, from background tasks, retried until the receiver answers
`success`. State lives in `books.py`, the bill file in `bill.py`, notifications in
`notify.py`, the HTTP routes (and the wallet) in `routes.py`, its configuration in `config.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI

from fulema.core.clock import clock
from fulema.core.errors import FulemaError
from fulema.core.money import Money
from fulema.sandbox.alipay.bill import render_bill_zip
from fulema.sandbox.alipay.books import (
    DEFAULT_EXPIRY,
    WAIT,
    Books,
    GatewayError,
    Refusal,
    Trade,
)
from fulema.sandbox.alipay.config import AlipaySandboxConfig
from fulema.sandbox.alipay.indirect import IndirectBook, add_indirect
from fulema.sandbox.alipay.notify import Notifier
from fulema.sandbox.alipay.oauth import add_oauth_routes
from fulema.sandbox.alipay.protocol import (
    BEIJING,
    BUSINESS_FAILED,
    ERROR_NODE,
    INVALID_ARGUMENTS,
    MESSAGES,
    MISSING_ARGUMENTS,
    PAYING,
    SIGN_TYPE,
    SUCCESS,
    VERSION,
    beijing_time,
    encode_answer,
    parse_beijing,
    request_verifies,
    sign_content,
)
from fulema.sandbox.alipay.routes import Faults, install_routes

TIMESTAMP_WINDOW = timedelta(minutes=30)
BILL_LINK_TTL = timedelta(seconds=30)  # Alipay's bill links lapse after 30 seconds


def _amount(biz: dict[str, Any], key: str) -> int:
    try:
        fen = Money.from_yuan(str(biz.get(key, ""))).fen
    except FulemaError as exc:
        raise Refusal("ACQ.INVALID_PARAMETER", f"{key} 不合法") from exc
    if not 1 <= fen <= 10_000_000_000:
        raise Refusal("ACQ.INVALID_PARAMETER", f"{key} 超出范围")
    return fen


def _text(biz: dict[str, Any], key: str, max_len: int = 64) -> str:
    value = biz.get(key)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise Refusal("ACQ.INVALID_PARAMETER", f"{key} 不合法")
    return value


class AlipaySandbox:
    def __init__(self, config: AlipaySandboxConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http
        self.app_id = config.app_id
        self.seller_id = config.seller_id
        self.app_public = config.app_public_key
        self.key = config.platform_key
        self.books = Books()
        self.faults = Faults()
        self.notifier = Notifier(http, self.key, self.app_id, self.seller_id, self.books)
        self.tasks = self.notifier.tasks  # background deliveries (tests cancel them)
        self.bill_secret = secrets.token_bytes(16)
        self.indirect: IndirectBook | None = None  # the indirect merchants (indirect.py)
        self.handlers: dict[str, Callable[[dict[str, str], dict[str, Any]], dict[str, Any]]] = {
            "alipay.trade.precreate": self.precreate, "alipay.trade.create": self.create,
            "alipay.trade.pay": self.pay, "alipay.trade.wap.pay": self.wap_pay,
            "alipay.trade.query": self.query, "alipay.trade.close": self.close,
            "alipay.trade.cancel": self.cancel, "alipay.trade.refund": self.refund,
            "alipay.trade.fastpay.refund.query": self.refund_query,
            "alipay.data.dataservice.bill.downloadurl.query": self.bill_url}

    # --- protocol ----------------------------------------------------------------------------

    def check(self, params: dict[str, str]) -> dict[str, Any]:
        """Gateway checks in Alipay's order; the parsed biz_content, or GatewayError."""
        method = params.get("method", "")
        if not method:
            raise GatewayError(MISSING_ARGUMENTS, "isv.missing-method", "缺少方法名参数", ERROR_NODE)
        if method not in self.handlers:
            raise GatewayError(INVALID_ARGUMENTS, "isv.invalid-method", "不存在的方法名", ERROR_NODE)
        required = (("app_id", "isv.missing-app-id", "缺少AppID参数"),
                    ("sign", "isv.missing-signature", "缺少签名参数"),
                    ("sign_type", "isv.missing-signature-type", "缺少签名类型参数"),
                    ("timestamp", "isv.missing-timestamp", "缺少时间戳参数"),
                    ("version", "isv.missing-version", "缺少版本参数"))
        for name, sub_code, sub_msg in required:
            if not params.get(name):
                raise GatewayError(MISSING_ARGUMENTS, sub_code, sub_msg,
                                   signed=name != "app_id")
        if params["app_id"] != self.app_id:  # no app, no key to sign the answer with
            raise GatewayError(INVALID_ARGUMENTS, "isv.invalid-app-id", "无效的AppID参数",
                               signed=False)
        if params["sign_type"] != SIGN_TYPE:
            raise GatewayError(INVALID_ARGUMENTS, "isv.invalid-signature-type", "无效的签名类型")
        if params["version"] != VERSION:
            raise GatewayError(INVALID_ARGUMENTS, "isv.invalid-version", "无效的版本号")
        if params.get("charset", "utf-8").lower() != "utf-8":
            raise GatewayError(INVALID_ARGUMENTS, "isv.invalid-charset", "字符集错误")
        try:
            sent = parse_beijing(params["timestamp"])
        except ValueError:
            sent = None
        if sent is None or abs(clock.now() - sent) > TIMESTAMP_WINDOW:
            raise GatewayError(INVALID_ARGUMENTS, "isv.invalid-timestamp", "非法的时间戳参数")
        if not request_verifies(params, self.app_public):
            text = sign_content(params).replace("&", "&amp;")
            raise GatewayError(INVALID_ARGUMENTS, "isv.invalid-signature",
                               "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，"
                               f"网关生成的验签字符串为：{text}")
        try:
            biz = json.loads(params.get("biz_content") or "{}")
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            raise GatewayError(INVALID_ARGUMENTS, "isv.invalid-biz-content", "biz_content格式错误")
        return biz

    def answer(self, params: dict[str, str]) -> str:
        """The JSON body for one gateway call."""
        method = params.get("method", "")
        try:
            biz = self.check(params)
        except GatewayError as exc:
            node = {"code": exc.code, "msg": MESSAGES[exc.code], "sub_code": exc.sub_code,
                    "sub_msg": exc.sub_msg}
            if exc.node == ERROR_NODE:  # no method to answer for: unsigned, as Alipay does
                return encode_answer(ERROR_NODE, node, None)
            return encode_answer(method, node, self.key if exc.signed else None)
        try:
            out = self.handlers[method](params, biz)
            code = out.pop("code", SUCCESS)
            node = {"code": code, "msg": MESSAGES[code], **out}
        except Refusal as exc:
            node = {"code": BUSINESS_FAILED, "msg": MESSAGES[BUSINESS_FAILED],
                    "sub_code": exc.sub_code, "sub_msg": exc.sub_msg}
        return encode_answer(method, node, self.key)

    # --- business handlers -------------------------------------------------------------------

    def _new_trade(self, params: dict[str, str], biz: dict[str, Any], product: str) -> Trade:
        expire = clock.now() + DEFAULT_EXPIRY
        if biz.get("time_expire"):
            try:
                expire = parse_beijing(str(biz["time_expire"]))
            except ValueError as exc:
                raise Refusal("ACQ.INVALID_PARAMETER", "time_expire 不合法") from exc
        smid = ""
        if "sub_merchant" in biz:  # the service provider's form: an indirect merchant's trade
            node = biz["sub_merchant"]
            smid_value = node.get("merchant_id") if isinstance(node, dict) else None
            if self.indirect is None:
                raise Refusal("ACQ.SECONDARY_MERCHANT_ID_INVALID", "二级商户不存在或未审核通过")
            self.indirect.check_trading(smid_value)
            smid = str(smid_value)
        return Trade(out_trade_no=_text(biz, "out_trade_no"), total_fen=_amount(biz, "total_amount"),
                     subject=_text(biz, "subject", 256), product=product,
                     notify_url=params.get("notify_url", ""), expire_at=expire, smid=smid)

    def _paid_fields(self, trade: Trade) -> dict[str, Any]:
        payer = self.books.wallet.get(trade.buyer_id)
        yuan = Money(trade.total_fen).to_yuan()
        out: dict[str, Any] = {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                               "buyer_logon_id": payer.logon_id if payer else "",
                               "buyer_user_id": trade.buyer_id, "total_amount": yuan}
        if trade.paid_at is not None:
            out.update(receipt_amount=yuan, buyer_pay_amount=yuan, invoice_amount=yuan,
                       point_amount="0.00", gmt_payment=beijing_time(trade.paid_at),
                       fund_bill_list=[{"fund_channel": "ALIPAYACCOUNT", "amount": yuan}])
        return out

    def precreate(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        trade = self.books.precreate(self._new_trade(params, biz, "precreate"))
        return {"out_trade_no": trade.out_trade_no, "qr_code": trade.qr_code}

    def create(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._new_trade(params, biz, "create")
        trade.buyer_id = _text(biz, "buyer_id", 28)
        trade = self.books.create(trade)
        return {"out_trade_no": trade.out_trade_no, "trade_no": trade.trade_no}

    def wap_pay(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        trade = self.books.open_wap(self._new_trade(params, biz, "wap"))
        return {"out_trade_no": trade.out_trade_no, "trade_no": trade.trade_no,
                "total_amount": Money(trade.total_fen).to_yuan(), "subject": trade.subject,
                "return_url": params.get("return_url", "")}

    def pay(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        if biz.get("scene", "bar_code") != "bar_code":
            raise Refusal("ACQ.INVALID_PARAMETER", "scene 不合法")
        code = str(biz.get("auth_code", ""))
        if not (code.isdigit() and 16 <= len(code) <= 24 and 25 <= int(code[:2]) <= 30):
            raise Refusal("ACQ.PAYMENT_AUTH_CODE_INVALID")
        trade = self.books.pay_with_code(self._new_trade(params, biz, "pay"), code)
        if trade.status == WAIT:
            return {"code": PAYING, **self._paid_fields(trade)}
        self.notifier.notify(trade)
        return self._paid_fields(trade)

    def _find(self, biz: dict[str, Any]) -> Trade:
        trade_no = biz.get("trade_no")
        if isinstance(trade_no, str) and trade_no:
            found = self.books.by_trade_no.get(trade_no)
            if found is None or not found.exists:
                raise Refusal("ACQ.TRADE_NOT_EXIST")
            return self.books.visible(found.out_trade_no)
        return self.books.visible(_text(biz, "out_trade_no"))

    def query(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._find(biz)
        out = self._paid_fields(trade)
        out.pop("gmt_payment", None)
        out["trade_status"] = trade.status
        if trade.paid_at is not None:
            out["send_pay_date"] = beijing_time(trade.paid_at)
        if not trade.buyer_id:
            out.pop("buyer_user_id"), out.pop("buyer_logon_id")
        return out

    def close(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._find(biz)
        was_open = trade.status == WAIT
        trade = self.books.close(trade.out_trade_no)
        if was_open:
            self.notifier.notify(trade)
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}

    def cancel(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        trade, action = self.books.cancel(_text(biz, "out_trade_no"))
        if action and trade.product != "void":
            self.notifier.notify(trade)
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                "retry_flag": "N", "action": action}

    def refund(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        out_trade_no = _text(biz, "out_trade_no")
        request_no = str(biz.get("out_request_no") or out_trade_no)
        trade, refund, changed = self.books.refund(out_trade_no, request_no,
                                                   _amount(biz, "refund_amount"),
                                                   str(biz.get("refund_reason", "")))
        if changed:
            self.notifier.notify(trade, refund_no=request_no)
        paid = self._paid_fields(trade)
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                "buyer_logon_id": paid["buyer_logon_id"], "buyer_user_id": trade.buyer_id,
                "fund_change": "Y" if changed else "N",
                "refund_fee": Money(trade.refunded_fen).to_yuan(),
                "send_back_fee": Money(refund.fen).to_yuan(),
                "gmt_refund_pay": beijing_time(refund.at)}

    def refund_query(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._find(biz)
        request_no = _text(biz, "out_request_no")
        refund = trade.refunds.get(request_no)
        if refund is None:  # Alipay answers success with no refund data
            return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                "out_request_no": request_no, "total_amount": Money(trade.total_fen).to_yuan(),
                "refund_amount": Money(refund.fen).to_yuan(), "refund_status": "REFUND_SUCCESS",
                "gmt_refund_pay": beijing_time(refund.at)}

    def bill_url(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        if biz.get("bill_type") != "trade":
            raise Refusal("ACQ.INVALID_PARAMETER", "bill_type 不合法")
        try:
            day = date.fromisoformat(str(biz.get("bill_date", "")))
        except ValueError as exc:
            raise Refusal("ACQ.INVALID_PARAMETER", "bill_date 不合法") from exc
        if day > clock.now().date() + timedelta(days=1):
            raise Refusal("isp.bill_not_exist")
        stamp = str(int(clock.now().timestamp() * 1000))
        query = {"bizType": "trade", "userId": self.seller_id, "fileType": "csv.zip",
                 "bizDates": f"{day:%Y%m%d}", "downloadFileName": f"{self.account}_{day:%Y%m%d}"
                 ".csv.zip", "fileId": f"/trade/{self.seller_id}/{day:%Y%m%d}",
                 "timestamp": stamp, "token": self.bill_token(f"{day:%Y%m%d}", stamp)}
        url = f"{self.config.public_url.rstrip('/')}/downloadBillFile.resource?{urlencode(query)}"
        return {"bill_download_url": url}

    # --- bills -------------------------------------------------------------------------------

    @property
    def account(self) -> str:
        return self.seller_id + "0156"

    def bill_token(self, biz_dates: str, stamp: str) -> str:
        return hmac.new(self.bill_secret, f"{biz_dates}|{stamp}".encode(),
                        hashlib.sha256).hexdigest()

    def bill(self, biz_dates: str, stamp: str, token: str) -> tuple[str, bytes] | None:
        """The zip behind a download link, or None for a forged or lapsed link."""
        if not hmac.compare_digest(self.bill_token(biz_dates, stamp), token):
            return None
        try:
            issued = datetime.fromtimestamp(int(stamp) / 1000, clock.now().tzinfo)
            day = datetime.strptime(biz_dates, "%Y%m%d").replace(tzinfo=BEIJING).date()
        except ValueError:
            return None
        if clock.now() - issued > BILL_LINK_TTL:
            return None
        return render_bill_zip(self.books.trades.values(), self.books.wallet.payers, day=day,
                               account=self.account, diff=self.faults.statement_diff)

def build_sandbox(config: AlipaySandboxConfig, http: httpx.AsyncClient) -> FastAPI:
    """The sandbox app; its gateway is /gateway.do whether served at its own root
    (`fulema sandbox alipay`) or mounted under /sandbox/alipay (Alipay signs no path)."""
    sb = AlipaySandbox(config, http)
    app = FastAPI(title="Alipay sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = sb
    install_routes(app, sb)
    add_oauth_routes(app, sb)
    app.state.indirect = add_indirect(app, sb.handlers)  # sub-merchant registration
    sb.indirect = app.state.indirect  # the trade APIs ask it about sub_merchant.merchant_id
    return app
