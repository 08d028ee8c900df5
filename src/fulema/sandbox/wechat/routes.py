"""The WeChat Pay v3 endpoints the sandbox serves, in the direct-merchant form and the
service-provider (partner) form (`/v3/pay/partner/transactions/...` with sp_appid, sp_mchid
and sub_mchid), with WeChat's error codes: PARAM_ERROR / INVALID_REQUEST (400), SIGN_ERROR
(401), business refusals (403), ORDER_NOT_EXIST / RESOURCE_NOT_EXISTS (404), SYSTEM_ERROR (500).

A partner-form request for a sub_mchid that has no completed applyment here is refused with
MCH_NOT_EXISTS (400), one whose payments the sandbox operator suspended with NO_AUTH (403).
An order belongs to the form it was made in: the other form does not find it."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import re
import secrets
import string
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, Request
from fastapi.responses import Response

from fulema.core.clock import clock
from fulema.sandbox.wallet import CodeRefusal, Refusal
from fulema.sandbox.wechat import statement as wechat_statement
from fulema.sandbox.wechat.config import certificate_serial
from fulema.sandbox.wechat.protocol import AEAD, CST, rfc3339, seal
from fulema.sandbox.wechat.state import V3_REFUSALS, Answer, Order, Refund, WechatSandbox, err

OUT_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
AUTH_CODE = re.compile(r"^1[0-5]\d{16}$")
APPID = re.compile(r"^wx[0-9a-f]{16}$")  # an appid: wx and 16 lower-case hex digits
_BALANCE_DESC = "用户余额不足"  # trade_state_desc of an order the balance could not pay
PREPAY_TYPES = {"native": "NATIVE", "jsapi": "JSAPI", "h5": "MWEB", "app": "APP"}


def _pos_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _check_order(body: dict[str, Any], *, notify: bool) -> Answer | None:
    if not isinstance(body.get("description"), str) or not 1 <= len(body["description"]) <= 127:
        return err(400, "PARAM_ERROR", "description 必填，长度1-127")
    if not isinstance(body.get("out_trade_no"), str) or not OUT_NO.match(body["out_trade_no"]):
        return err(400, "PARAM_ERROR", "out_trade_no 须为6-32位数字、字母或_-|*")
    amount = body.get("amount")
    if not isinstance(amount, dict) or _pos_int(amount.get("total")) is None:
        return err(400, "PARAM_ERROR", "amount.total 须为正整数（分）")
    if amount.get("currency", "CNY") != "CNY":
        return err(400, "PARAM_ERROR", "amount.currency 仅支持CNY")
    if notify and (not isinstance(body.get("notify_url"), str)
                   or not body["notify_url"].startswith(("https://", "http://"))):
        return err(400, "PARAM_ERROR", "notify_url 必填且须为合法的URL")
    if "time_expire" in body:
        try:
            if datetime.fromisoformat(str(body["time_expire"])).tzinfo is None:
                raise ValueError
        except ValueError:
            return err(400, "PARAM_ERROR", "time_expire 须为rfc3339格式")
    return None


def _prepay_answer(sb: WechatSandbox, o: Order, kind: str) -> Answer:
    if kind == "native":
        return 200, {"code_url": o.code_url}
    if kind == "h5":
        return 200, {"h5_url": o.h5_url}
    return 200, {"prepay_id": o.prepay_id}


def partner_refusal(sb: WechatSandbox, body: dict[str, Any], *,
                    trading: bool = True) -> Answer | None:
    """The partner form's own checks: our sp_mchid and sp_appid, and a sub_mchid that may
    trade (for a new payment; closing or reversing one only needs it named)."""
    if body.get("sp_mchid") != sb.config.mchid:
        return err(400, "PARAM_ERROR", "sp_mchid 必填且须与请求头中的商户号一致")
    if "sp_appid" in body and body["sp_appid"] != sb.config.appid:
        return err(400, "APPID_MCHID_NOT_MATCH", "sp_appid和sp_mchid不匹配")
    if not trading:
        sub = body.get("sub_mchid")
        return None if isinstance(sub, str) and sub else err(400, "PARAM_ERROR", "sub_mchid 必填")
    return sb.sub_refusal(body.get("sub_mchid"))


def _payer(body: dict[str, Any], sub: str) -> tuple[Any, Answer | None]:
    """The JSAPI payer's openid: `openid` (direct form); in the partner form `sp_openid`
    (under the provider's appid) or `sub_openid` (under the sub-merchant's own app, which
    needs `sub_appid`). The sandbox keeps one id per payer, whichever app it is under."""
    payer = body.get("payer") if isinstance(body.get("payer"), dict) else {}
    assert isinstance(payer, dict)
    if not sub:
        return payer.get("openid", ""), None
    sub_appid = body.get("sub_appid")
    if sub_appid is not None and (not isinstance(sub_appid, str) or not APPID.match(sub_appid)):
        return "", err(400, "PARAM_ERROR", "sub_appid 格式错误")
    if "sub_openid" in payer:
        if sub_appid is None:
            return "", err(400, "PARAM_ERROR", "传入sub_openid时sub_appid必填")
        return payer["sub_openid"], None
    return payer.get("sp_openid", ""), None


def prepay(sb: WechatSandbox, body: dict[str, Any], kind: str, sub: str = "") -> Answer:
    bad = _check_order(body, notify=True)
    if bad:
        return bad
    openid, bad = _payer(body, sub)
    if bad:
        return bad
    if kind == "jsapi" and (not isinstance(openid, str) or not openid):
        return err(400, "PARAM_ERROR", "payer.sp_openid 或 payer.sub_openid 必填" if sub
                   else "payer.openid 必填")
    scene = body.get("scene_info")
    if kind == "h5" and (not isinstance(scene, dict) or not scene.get("payer_client_ip")
                         or not isinstance(scene.get("h5_info"), dict)):
        return err(400, "PARAM_ERROR", "scene_info.payer_client_ip 与 scene_info.h5_info 必填")
    found = sb.orders.get(body["out_trade_no"])
    total, trade_type = body["amount"]["total"], PREPAY_TYPES[kind]
    if found is not None:
        sb.refresh(found)
        if found.state in ("SUCCESS", "REFUND"):
            return err(400, "ORDERPAID", "该订单已支付")
        if found.state in ("CLOSED", "REVOKED"):
            return err(400, "ORDER_CLOSED", "该订单已关闭")
        if (found.total, found.trade_type, found.description, found.openid, found.sub_mchid) != \
                (total, trade_type, body["description"], openid, sub):
            return err(400, "INVALID_REQUEST", "该订单号已使用，且请求参数与首次请求时不一致")
        return _prepay_answer(sb, found, kind)
    now = clock.now()
    expire = now + timedelta(hours=2)
    if "time_expire" in body:
        expire = datetime.fromisoformat(str(body["time_expire"]))
    suffix = secrets.token_hex(11)
    o = Order(body["out_trade_no"], trade_type, total, body["description"], body["notify_url"],
              now, expire, body.get("sp_appid" if sub else "appid", sb.config.appid),
              openid=openid, prepay_id=f"wx{now.astimezone(CST):%d%H%M%S}{suffix}",
              sub_mchid=sub, sub_appid=str(body.get("sub_appid") or "") if sub else "")
    o.code_url = "weixin://wxpay/bizpayurl?pr=" + "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(7))
    o.h5_url = f"{sb.public}/h5pay?prepay_id={o.prepay_id}&package={secrets.randbelow(10**10)}"
    sb.orders[o.out_trade_no] = o
    return _prepay_answer(sb, o, kind)


def codepay(sb: WechatSandbox, body: dict[str, Any], sub: str = "") -> Answer:
    bad = _check_order(body, notify=False)
    if bad:
        return bad
    payer = body.get("payer")
    code = payer.get("auth_code") if isinstance(payer, dict) else None
    if not isinstance(code, str) or not code:
        return err(400, "PARAM_ERROR", "payer.auth_code 必填")
    if not isinstance(body.get("scene_info"), dict):
        return err(400, "PARAM_ERROR", "scene_info 必填")
    found = sb.orders.get(body["out_trade_no"])
    if found is not None:
        if found.auth_code != code or found.total != body["amount"]["total"] \
                or found.sub_mchid != sub:
            return err(400, "INVALID_REQUEST", "更换授权码或金额须更换商户订单号")
        return 200, sb.order_view(found)
    now = clock.now()
    o = Order(body["out_trade_no"], "MICROPAY", body["amount"]["total"], body["description"],
              None, now, now + timedelta(minutes=5),
              body.get("sp_appid" if sub else "appid", sb.config.appid), auth_code=code,
              transaction_id=sb.new_transaction_id(), state="USERPAYING", sub_mchid=sub)
    sb.orders[o.out_trade_no] = o
    payer_obj = sb.wallet.redeem(code)
    if not AUTH_CODE.match(code) or payer_obj is CodeRefusal.UNKNOWN:
        o.state, o.state_desc = "PAYERROR", "付款码无效"
        return err(403, "AUTH_CODE_INVALID", "付款码无效，请用户刷新付款码后重新支付")
    if isinstance(payer_obj, CodeRefusal):
        o.state, o.state_desc = "PAYERROR", "付款码已过期"
        return err(403, "AUTHCODEEXPIRE", "付款码已过期，请用户刷新付款码后重新支付")
    o.openid = payer_obj.openid
    # Refused before the password is asked for; the balance only once it is entered.
    refused = payer_obj.refusal(o.total, balance=not payer_obj.password_required)
    if refused is None and payer_obj.password_required:  # USERPAYING until the password
        return 200, {**sb.owner(o), "out_trade_no": o.out_trade_no,
                     "trade_type": "MICROPAY", "trade_state": "USERPAYING"}
    refused = refused or sb.settle(o, payer_obj)
    if refused is not None:
        code, message = V3_REFUSALS[refused]
        o.state, o.state_desc = "PAYERROR", _BALANCE_DESC if refused is Refusal.BALANCE else message
        return err(403, code, message)
    return 200, sb.order_view(o)


def close(sb: WechatSandbox, no: str, *, reverse: bool, sub: str = "") -> Answer:
    o = sb.orders.get(no)
    if o is None or o.sub_mchid != sub:  # the other form's order is not this merchant's
        return err(404, "ORDER_NOT_EXIST", "订单不存在")
    sb.refresh(o)
    if o.state == "REFUND":
        return err(400, "INVALID_REQUEST", "订单已退款，不能关闭或撤销")
    if o.state == "SUCCESS" and not reverse:
        return err(400, "ORDERPAID", "订单已支付，不能关闭")
    if o.state == "SUCCESS":  # reversal of a paid payment: the whole amount goes back at once
        sb.wallet.payers[o.openid].reverse(o.total, o.success_at or clock.now())
        r = Refund(f"REVOKE{o.out_trade_no}"[:64], f"5030{secrets.randbelow(10**24):024d}", o,
                   o.total, "撤销", None, clock.now(), status="SUCCESS", success_at=clock.now(),
                   kind="REVOKED")
        sb.refunds[r.out_refund_no] = r
        o.refunded = o.total
    if o.state in ("NOTPAY", "USERPAYING", "PAYERROR", "SUCCESS"):
        o.state, o.state_desc = ("REVOKED", "已撤销") if reverse else ("CLOSED", "已关闭")
    return 204, None


def refund(sb: WechatSandbox, body: dict[str, Any]) -> Answer:
    no, rno, amount = body.get("out_trade_no"), body.get("out_refund_no"), body.get("amount")
    if not isinstance(no, str) or not isinstance(rno, str) or not 1 <= len(rno) <= 64:
        return err(400, "PARAM_ERROR", "out_trade_no 与 out_refund_no 必填")
    if not isinstance(amount, dict) or _pos_int(amount.get("refund")) is None \
            or _pos_int(amount.get("total")) is None or amount.get("currency") != "CNY":
        return err(400, "PARAM_ERROR", "amount.refund、amount.total（分）与 amount.currency 必填")
    o = sb.orders.get(no)
    if o is None or o.sub_mchid != (body.get("sub_mchid") or ""):  # the partner's: sub_mchid
        return err(404, "RESOURCE_NOT_EXISTS", "订单不存在")
    found = sb.refunds.get(rno)
    if found is not None:
        if found.order is not o or found.amount != amount["refund"]:
            return err(400, "INVALID_REQUEST", "该退款单号已使用，且请求参数与首次请求时不一致")
        return 200, sb.refund_view(found)
    sb.refresh(o)
    if o.state not in ("SUCCESS", "REFUND"):
        return err(400, "INVALID_REQUEST", f"订单状态为{o.state}，不能退款")
    if amount["total"] != o.total:
        return err(400, "INVALID_REQUEST", "amount.total 与原订单金额不一致")
    if amount["refund"] > o.total - o.refunded:
        return err(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
    r = Refund(rno, f"5030{secrets.randbelow(10**24):024d}", o, amount["refund"],
               str(body.get("reason") or ""), body.get("notify_url") or None, clock.now())
    sb.refunds[rno] = r
    o.refunded += r.amount
    o.state = "REFUND"
    view = sb.refund_view(r)  # accepted: PROCESSING; the money reaches the payer a moment later

    async def later() -> None:
        await asyncio.sleep(0.05)
        sb.wallet.payers[o.openid].credit(r.amount)
        sb.complete_refund(r)

    task = asyncio.get_running_loop().create_task(later())
    sb.tasks.add(task)
    task.add_done_callback(sb.tasks.discard)
    return 200, view


def tradebill(sb: WechatSandbox, request: Request) -> Answer:
    q = request.query_params
    try:
        day = date.fromisoformat(q.get("bill_date", ""))
    except ValueError:
        return err(400, "PARAM_ERROR", "bill_date 须为YYYY-MM-DD")
    if day > clock.now().astimezone(CST).date():
        return err(400, "PARAM_ERROR", "bill_date 不能晚于今天")
    bill_type = q.get("bill_type", "ALL")
    if bill_type not in ("ALL", "SUCCESS", "REFUND"):
        return err(400, "PARAM_ERROR", "bill_type 须为ALL、SUCCESS或REFUND")
    sub = q.get("sub_mchid", "")  # a service provider's bill of one 特约商户
    if sub and (sb.applyments is None or sb.applyments.registered(sub) is None):
        return err(400, "PARAM_ERROR", "sub_mchid 不存在或未与服务商建立受理关系")
    plain = wechat_statement.render(wechat_statement.bill_rows(sb, day, bill_type, sub))
    token = secrets.token_urlsafe(24)
    sb.bills[token] = gzip.compress(plain, mtime=0) if q.get("tar_type") == "GZIP" else plain
    return 200, {"hash_type": "SHA1",
                 "hash_value": hashlib.sha1(plain, usedforsecurity=False).hexdigest(),
                 "download_url": f"{sb.public}/v3/billdownload/file?token={token}"}


def certificates(sb: WechatSandbox) -> Answer:
    """下载平台证书: the platform certificate, sealed with the APIv3 key (associated data
    "certificate"), as clients in certificate mode fetch it before verifying anything."""
    cert = sb.certificate
    pem = cert.public_bytes(serialization.Encoding.PEM)
    nonce, ct = seal(sb.apiv3_key, pem, "certificate")
    return 200, {"data": [{
        "serial_no": certificate_serial(cert),
        "effective_time": rfc3339(cert.not_valid_before_utc),
        "expire_time": rfc3339(cert.not_valid_after_utc),
        "encrypt_certificate": {"algorithm": AEAD, "nonce": nonce,
                                "associated_data": "certificate", "ciphertext": ct}}]}


def api_routes(app: FastAPI, sb: WechatSandbox) -> None:
    @app.get("/v3/certificates")
    async def platform_certificates(request: Request) -> Response:
        return await sb.api(request, lambda _: certificates(sb))

    for kind in PREPAY_TYPES:
        def bind(k: str) -> None:
            @app.post(f"/v3/pay/transactions/{k}", name=f"prepay_{k}")
            async def create(request: Request) -> Response:
                return await sb.api(request, lambda b: prepay(sb, b, k))
        bind(kind)

    @app.post("/v3/pay/transactions/codepay")
    async def code_pay(request: Request) -> Response:
        return await sb.api(request, lambda b: codepay(sb, b))

    @app.get("/v3/pay/transactions/out-trade-no/{no}")
    async def query(no: str, request: Request) -> Response:
        def handle(_: dict[str, Any]) -> Answer:
            if request.query_params.get("mchid") != sb.config.mchid:
                return err(400, "PARAM_ERROR", "查询参数mchid必填且须与请求头一致")
            o = sb.orders.get(no)
            return (200, sb.order_view(o)) if o and not o.sub_mchid else err(
                404, "ORDER_NOT_EXIST", "订单不存在")
        return await sb.api(request, handle)

    partner_routes(app, sb)

    @app.post("/v3/pay/transactions/out-trade-no/{no}/close")
    async def close_order(no: str, request: Request) -> Response:
        return await sb.api(request, lambda _: close(sb, no, reverse=False))

    @app.post("/v3/pay/transactions/out-trade-no/{no}/reverse")
    async def reverse_order(no: str, request: Request) -> Response:
        return await sb.api(request, lambda _: close(sb, no, reverse=True))

    @app.post("/v3/refund/domestic/refunds")
    async def create_refund(request: Request) -> Response:
        return await sb.api(request, lambda b: refund(sb, b))

    @app.get("/v3/refund/domestic/refunds/{rno}")
    async def query_refund(rno: str, request: Request) -> Response:
        def handle(_: dict[str, Any]) -> Answer:
            r = sb.refunds.get(rno)
            sub = request.query_params.get("sub_mchid", "")  # the partner form names it
            return (200, sb.refund_view(r)) if r and r.order.sub_mchid == sub else err(
                404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return await sb.api(request, handle)

    @app.get("/v3/bill/tradebill")
    async def trade_bill(request: Request) -> Response:
        return await sb.api(request, lambda _: tradebill(sb, request))

    @app.get("/v3/billdownload/file")
    async def bill_file(request: Request) -> Response:
        """The file itself: a signed request, an unsigned answer (check the hash instead)."""
        refused = sb.check_request(request, await request.body())
        if refused is not None:
            return sb.answer(*refused)
        data = sb.bills.get(request.query_params.get("token", ""))
        if data is None:
            return sb.answer(*err(404, "RESOURCE_NOT_EXISTS", "账单文件不存在或下载链接已失效"))
        return Response(data, 200, media_type="application/octet-stream")


def partner_routes(app: FastAPI, sb: WechatSandbox) -> None:
    """The service-provider form of the same operations (普通服务商)."""
    base = "/v3/pay/partner/transactions"

    def checked(body: dict[str, Any], then: Callable[[str], Answer], *,
                trading: bool = True) -> Answer:
        refused = partner_refusal(sb, body, trading=trading)
        return refused if refused is not None else then(str(body["sub_mchid"]))

    for kind in PREPAY_TYPES:
        def bind(k: str) -> None:
            @app.post(f"{base}/{k}", name=f"partner_prepay_{k}")
            async def create(request: Request) -> Response:
                return await sb.api(request, lambda b: checked(
                    b, lambda sub: prepay(sb, b, k, sub)))
        bind(kind)

    @app.post(f"{base}/codepay")
    async def code_pay(request: Request) -> Response:
        return await sb.api(request, lambda b: checked(b, lambda sub: codepay(sb, b, sub)))

    @app.get(f"{base}/out-trade-no/{{no}}")
    async def query(no: str, request: Request) -> Response:
        def handle(_: dict[str, Any]) -> Answer:
            q = request.query_params
            if q.get("sp_mchid") != sb.config.mchid or not q.get("sub_mchid"):
                return err(400, "PARAM_ERROR", "查询参数sp_mchid、sub_mchid必填，"
                                               "sp_mchid须与请求头一致")
            o = sb.orders.get(no)
            return (200, sb.order_view(o)) if o and o.sub_mchid == q["sub_mchid"] else err(
                404, "ORDER_NOT_EXIST", "订单不存在")
        return await sb.api(request, handle)

    @app.post(f"{base}/out-trade-no/{{no}}/close")
    async def close_order(no: str, request: Request) -> Response:
        return await sb.api(request, lambda b: checked(
            b, lambda sub: close(sb, no, reverse=False, sub=sub), trading=False))

    @app.post(f"{base}/out-trade-no/{{no}}/reverse")
    async def reverse_order(no: str, request: Request) -> Response:
        return await sb.api(request, lambda b: checked(
            b, lambda sub: close(sb, no, reverse=True, sub=sub), trading=False))
