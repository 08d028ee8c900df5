"""WeChat Pay API v2 (XML) payer-code endpoints on the WeChat sandbox: the same host, the same
payers, payer codes and orders as the v3 sandbox, so a code the wallet issues pays through
either API and an order paid through v2 is refunded or queried through v3.

    POST /pay/micropay  /pay/orderquery  /secapi/pay/reverse  /pay/refundquery

Requests are checked as WeChat does: well-formed XML (no DTD), the common fields, then the
sign (MD5 or HMAC-SHA256 with the v2 API key); a failure answers return_code FAIL with the
reason in return_msg (unsigned, as WeChat does). Processed requests answer return_code SUCCESS,
result_code SUCCESS/FAIL (err_code, err_code_des), signed with the request's sign_type. The v3
fault switch (POST /wallet/faults: 5xx, slow, garbled) applies here too; POST /wallet/v2/faults
{"reverse_recall": n} makes the next n reverses answer SYSTEMERROR with recall=Y.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from fulema.core.clock import clock
from fulema.sandbox.wallet import CodeRefusal, Refusal
from fulema.sandbox.wechat.protocol import (
    CST,
    HMAC_SHA256,
    MD5,
    from_xml,
    to_xml,
    v2_sign,
    v2_verify,
)
from fulema.sandbox.wechat.routes import AUTH_CODE, OUT_NO, close
from fulema.sandbox.wechat.state import V2_REFUSALS, Order, WechatSandbox

Fields = dict[str, str]
_DESC = {"NOTPAY": "未支付", "USERPAYING": "用户支付中，需要输入密码", "SUCCESS": "支付成功",
         "REFUND": "转入退款", "CLOSED": "已关闭", "REVOKED": "已撤销", "PAYERROR": "支付失败"}
_REFUND_STATUS = {"SUCCESS": "SUCCESS", "PROCESSING": "PROCESSING", "CLOSED": "REFUNDCLOSE",
                  "ABNORMAL": "CHANGE"}


def fail(code: str, desc: str, **extra: str) -> Fields:
    return {"result_code": "FAIL", "err_code": code, "err_code_des": desc, **extra}


def _time_end(at: datetime | None) -> str:
    return f"{(at or clock.now()).astimezone(CST):%Y%m%d%H%M%S}"


@dataclass
class V2Api:
    sb: WechatSandbox
    recall_left: int = 0  # fault: reverses still to answer recall=Y

    # --- protocol --------------------------------------------------------------------------

    @staticmethod
    def communication_fail(message: str) -> Response:
        """return_code FAIL: the request was not processed. Unsigned, as WeChat sends it."""
        return Response(to_xml({"return_code": "FAIL", "return_msg": message}), 200,
                        media_type="text/xml")

    def check(self, params: Fields) -> str | None:
        for name in ("appid", "mch_id", "nonce_str", "sign"):
            if not params.get(name):
                return f"缺少参数{name}"
        if len(params["nonce_str"]) > 32:
            return "nonce_str参数长度有误"
        if params.get("sign_type", "") not in ("", MD5, HMAC_SHA256):
            return "sign_type参数错误"
        if not v2_verify(params, self.sb.config.v2_api_key, params.get("sign_type") or MD5):
            return "签名错误"
        return None

    async def handle(self, request: Request, handler: Callable[[Fields], Fields]) -> Response:
        faults = self.sb.faults
        if faults.mode == "slow":
            await asyncio.sleep(faults.delay_ms / 1000)
        if faults.mode == "5xx":
            return Response(b"<html><body>502 Bad Gateway</body></html>", 502,
                            media_type="text/html")
        try:
            params = from_xml(await request.body())
        except ValueError:
            return self.communication_fail("XML格式错误")
        problem = self.check(params)
        if problem is not None:
            return self.communication_fail(problem)
        if params["mch_id"] != self.sb.config.mchid:
            fields = fail("MCHID_NOT_EXIST", "商户号不存在")
        elif params["appid"] != self.sb.config.appid:
            fields = fail("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        else:
            fields = handler(params)
        doc = {"return_code": "SUCCESS", "return_msg": "OK", "appid": params["appid"],
               "mch_id": params["mch_id"], "nonce_str": secrets.token_hex(8), **fields}
        doc["sign"] = v2_sign(doc, self.sb.config.v2_api_key, params.get("sign_type") or MD5)
        body = to_xml(doc)
        if faults.mode == "garbled":
            body = body[: len(body) // 2] + b"\x00garbled"
        return Response(body, 200, media_type="text/xml")

    # --- business --------------------------------------------------------------------------

    def paid_fields(self, o: Order) -> Fields:
        return {"openid": o.openid, "is_subscribe": "N", "trade_type": o.trade_type,
                "bank_type": "OTHERS", "fee_type": "CNY", "total_fee": str(o.total),
                "cash_fee_type": "CNY", "cash_fee": str(o.total),
                "transaction_id": o.transaction_id, "out_trade_no": o.out_trade_no,
                "time_end": _time_end(o.success_at)}

    def _again(self, o: Order, code: str, total: int) -> Fields:
        """micropay with an out_trade_no already used."""
        self.sb.refresh(o)
        if o.auth_code != code or o.total != total:
            return fail("OUT_TRADE_NO_USED", "商户订单号重复")
        if o.state in ("SUCCESS", "REFUND"):
            return fail("ORDERPAID", "订单已支付")
        if o.state == "REVOKED":
            return fail("ORDERREVERSED", "订单已撤销")
        if o.state == "USERPAYING":
            return fail("USERPAYING", "需要用户输入支付密码")
        return fail("ORDERCLOSED" if o.state == "CLOSED" else "TRADE_ERROR",
                    o.state_desc or _DESC.get(o.state, o.state))

    def sub_refusal(self, p: Fields) -> Fields | None:
        """v2's service-provider form names the sub-merchant as `sub_mch_id` beside our
        mch_id. As v3 does (`WechatSandbox.sub_refusal`), a new payment is refused for a
        sub-merchant that cannot trade: unknown or its applyment not completed
        (MCHID_NOT_EXIST, v2's code for a merchant number WeChat does not know), or its
        payments stopped (NO_AUTH, v2's 商户无此接口权限)."""
        sub = p.get("sub_mch_id")
        if sub is None:
            return None
        refused = self.sb.sub_refusal(sub)
        if refused is None:
            return None
        if (refused[1] or {}).get("code") == "NO_AUTH":
            return fail("NO_AUTH", "商户无此接口权限")
        return fail("MCHID_NOT_EXIST", "特约商户号不存在或未与服务商建立受理关系")

    def _mine(self, o: Order | None, p: Fields) -> Order | None:
        """The order if it was made in the form (and for the sub-merchant) now asking."""
        return o if o is not None and o.sub_mchid == p.get("sub_mch_id", "") else None

    def micropay(self, p: Fields) -> Fields:
        not_trading = self.sub_refusal(p)
        if not_trading is not None:
            return not_trading
        body, no, total, code = p.get("body", ""), p.get("out_trade_no", ""), \
            p.get("total_fee", ""), p.get("auth_code", "")
        if not 1 <= len(body) <= 128:
            return fail("PARAM_ERROR", "body参数长度有误")
        if not OUT_NO.match(no):
            return fail("PARAM_ERROR", "out_trade_no参数格式有误")
        if not (total.isascii() and total.isdigit() and 0 < int(total) <= 10**10):
            return fail("PARAM_ERROR", "total_fee参数有误（单位为分的正整数）")
        if not code or not p.get("spbill_create_ip"):
            return fail("LACK_PARAMS", "缺少参数auth_code或spbill_create_ip")
        if p.get("fee_type", "CNY") != "CNY":
            return fail("PARAM_ERROR", "fee_type仅支持CNY")
        found = self.sb.orders.get(no)
        if found is not None:
            return self._again(found, code, int(total))
        now = clock.now()
        o = Order(no, "MICROPAY", int(total), body, None, now, now + timedelta(minutes=5),
                  p["appid"], auth_code=code, transaction_id=self.sb.new_transaction_id(),
                  state="USERPAYING", sub_mchid=p.get("sub_mch_id", ""))
        self.sb.orders[no] = o
        payer = self.sb.wallet.redeem(code)
        if not AUTH_CODE.match(code) or payer is CodeRefusal.UNKNOWN:
            o.state, o.state_desc = "PAYERROR", "付款码无效"
            return fail("AUTH_CODE_INVALID", "101 付款码无效，请重新扫码")
        if isinstance(payer, CodeRefusal):
            o.state, o.state_desc = "PAYERROR", "付款码已过期"
            return fail("AUTHCODEEXPIRE", "二维码已过期，请用户在微信上刷新后再试")
        o.openid = payer.openid
        refused = payer.refusal(o.total, balance=not payer.password_required)
        if refused is None and payer.password_required:  # USERPAYING until .../confirm
            return fail("USERPAYING", "需要用户输入支付密码")
        refused = refused or self.sb.settle(o, payer)
        if refused is not None:
            code, desc = V2_REFUSALS[refused]
            o.state, o.state_desc = "PAYERROR", \
                "用户余额不足" if refused is Refusal.BALANCE else desc
            return fail(code, desc)
        return {"result_code": "SUCCESS", **self.paid_fields(o)}

    def _order(self, p: Fields) -> Order | None:
        if p.get("transaction_id"):
            return self._mine(next((o for o in self.sb.orders.values()
                                    if o.transaction_id == p["transaction_id"]), None), p)
        return self._mine(self.sb.orders.get(p.get("out_trade_no", "")), p)

    def orderquery(self, p: Fields) -> Fields:
        if not p.get("out_trade_no") and not p.get("transaction_id"):
            return fail("PARAM_ERROR", "transaction_id和out_trade_no不能同时为空")
        o = self._order(p)
        if o is None:
            return fail("ORDERNOTEXIST", "此交易订单号不存在")
        self.sb.refresh(o)
        out = {"result_code": "SUCCESS", "trade_state": o.state,
               "trade_state_desc": o.state_desc or _DESC.get(o.state, ""),
               "out_trade_no": o.out_trade_no, "trade_type": o.trade_type,
               "total_fee": str(o.total), "fee_type": "CNY"}
        if o.state in ("SUCCESS", "REFUND", "REVOKED") and o.success_at is not None:
            out.update(self.paid_fields(o))
        return out

    def reverse(self, p: Fields) -> Fields:
        if self.recall_left > 0:
            self.recall_left -= 1
            return fail("SYSTEMERROR", "系统超时", recall="Y")
        o = self._order(p)
        if o is None:
            return fail("ORDERNOTEXIST", "订单不存在", recall="N")
        if o.trade_type != "MICROPAY":
            return fail("TRADE_ERROR", "订单支付场景错误，拒绝请求", recall="N")
        status, doc = close(self.sb, o.out_trade_no, reverse=True)
        if status >= 400 and doc is not None:
            return fail(str(doc.get("code", "TRADE_ERROR")), str(doc.get("message", "")),
                        recall="N")
        return {"result_code": "SUCCESS", "recall": "N"}

    def refundquery(self, p: Fields) -> Fields:
        refunds = [r for r in self.sb.refunds.values()
                   if ((p.get("refund_id") and r.refund_id == p["refund_id"])
                       or (p.get("out_refund_no") and r.out_refund_no == p["out_refund_no"]))
                   and self._mine(r.order, p) is not None]
        if not refunds and (p.get("out_trade_no") or p.get("transaction_id")):
            o = self._order(p)
            refunds = [r for r in self.sb.refunds.values() if r.order is o]
        if not refunds:
            return fail("REFUNDNOTEXIST", "退款订单查询失败")
        o = refunds[0].order
        out = {"result_code": "SUCCESS", "transaction_id": o.transaction_id,
               "out_trade_no": o.out_trade_no, "total_fee": str(o.total), "fee_type": "CNY",
               "cash_fee": str(o.total), "refund_count": str(len(refunds))}
        for n, r in enumerate(refunds):
            out.update({
                f"out_refund_no_{n}": r.out_refund_no, f"refund_id_{n}": r.refund_id,
                f"refund_channel_{n}": "ORIGINAL", f"refund_fee_{n}": str(r.amount),
                f"refund_status_{n}": _REFUND_STATUS.get(r.status, r.status),
                f"refund_recv_accout_{n}": "支付用户零钱"})  # sic, WeChat's spelling
            if r.success_at is not None:
                out[f"refund_success_time_{n}"] = \
                    f"{r.success_at.astimezone(CST):%Y-%m-%d %H:%M:%S}"
        return out


def add_v2_routes(app: FastAPI, sb: WechatSandbox) -> None:
    """Serve the v2 endpoints from the v3 sandbox app, on its state. Idempotent: a second
    call (build_sandbox wired it, a test adds it again) changes nothing."""
    if isinstance(getattr(app.state, "wechat_v2", None), V2Api):
        return
    api = V2Api(sb)
    app.state.wechat_v2 = api
    routes: dict[str, Callable[[Fields], Fields]] = {
        "/pay/micropay": api.micropay, "/pay/orderquery": api.orderquery,
        "/secapi/pay/reverse": api.reverse, "/pay/refundquery": api.refundquery}
    for path, handler in routes.items():
        def bind(h: Callable[[Fields], Fields]) -> Callable[[Request], Any]:
            async def endpoint(request: Request) -> Response:
                return await api.handle(request, h)
            return endpoint
        app.add_api_route(path, bind(handler), methods=["POST"], include_in_schema=False)

    @app.post("/wallet/v2/faults", include_in_schema=False)
    async def v2_faults(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            body = None
        n = body.get("reverse_recall") if isinstance(body, dict) else None
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            return Response(orjson.dumps({"code": "PARAM_ERROR",
                                          "message": "reverse_recall is a non-negative integer"}),
                            400, media_type="application/json")
        api.recall_left = n
        return Response(orjson.dumps({"reverse_recall": n}), media_type="application/json")
