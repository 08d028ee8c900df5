"""UnionPay QR payments (银联二维码, acquirer side) over the 全渠道 ACP 5.1.0 protocol.

主扫 (the payer scans the merchant-presented order QR): 申请二维码 txnType=01 txnSubType=07
returns ``qrCode``, handed out as ``code_url``. 被扫 with the payer's C2B码 (付款码, UnionPay's
name for the payer-presented code; the merchant scans its 19 digits starting 62): 消费
txnType=01 txnSubType=06 with ``qrNo`` = that code. Void 31, refund 04, query 00 (queryTrans.do),
file transfer 76. The wire format and signatures live in `unionpay_sign`; settings and keys in
`unionpay_config`. See docs/channels/unionpay.md for the decisions this adapter makes.
"""

from __future__ import annotations

import asyncio
import base64
import zlib
from dataclasses import replace
from datetime import date, datetime, timedelta

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

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
    with_backup,
)
from fulema.channels.unionpay.bill import zm_from_archive
from fulema.channels.unionpay.config import AdapterKeys, adapter_keys
from fulema.channels.unionpay.sign import (
    BEIJING,
    ENCODING,
    SECURE_KEY_METHODS,
    SIGN_RSA,
    VERSION,
    beijing,
    decode_form,
    decode_response,
    encode_form,
    from_order_id,
    sign_fields,
    to_order_id,
    txn_time_for,
    verify_fields,
)
from fulema.core.channel_settings import UnionpaySection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.text import is_ascii_digits
from fulema.core.vocab import ChannelName, WayCode

__all__ = ["TRADE_STATES", "UnionpayChannel", "build_channel"]

# UnionPay answer codes (《平台接入接口规范-第5部分-附录》) -> our states, in ONE place.
# As a transaction's final state (origRespCode): 00 success, 03/04/05 still processing, 45 the
# consume was voided (our sandbox reports a voided consume so), every other documented code a
# failure. An undocumented code is UNKNOWN (queried again), never FAILED.
_FAILED_CODES = ("01", "02", "06", "10", "11", "12", "13", "14", "30", "31", "32", "33", "34",
                 "35", "36", "37", "38", "39", "40", "41", "42", "43", "44",
                 *(str(n) for n in range(60, 85)), *(str(n) for n in range(90, 100)))
TRADE_STATES: dict[str, TradeState] = {
    "00": TradeState.SUCCESS,
    "03": TradeState.PAYING, "04": TradeState.PAYING, "05": TradeState.PAYING,
    "45": TradeState.CLOSED,
    **{code: TradeState.FAILED for code in _FAILED_CODES},
}
REFUND_STATES: dict[TradeState, RefundState] = {
    TradeState.SUCCESS: RefundState.SUCCESS, TradeState.PAYING: RefundState.PROCESSING,
    TradeState.FAILED: RefundState.FAILED, TradeState.CLOSED: RefundState.FAILED,
    TradeState.NOT_FOUND: RefundState.FAILED, TradeState.UNKNOWN: RefundState.UNKNOWN,
}
PENDING = ("03", "04", "05")  # respCode of a request: outcome unknown, query
NOT_FOUND = "34"  # 查无此交易
SUB_MERCHANT_REFUSED = "31"  # 商户状态不正确: in the acquirer form, the sub-merchant refused
DEV_ACQ_INS_CODE = "48020000"  # development only: the sandbox's acquirer when none is set
DUPLICATE = "12"  # 重复交易


def _state(code: str) -> TradeState:
    return TRADE_STATES.get(code, TradeState.UNKNOWN)


def _money(value: str | None) -> Money | None:
    return Money(int(value)) if value and is_ascii_digits(value) else None


def _currency(code: str | None) -> str | None:
    """UnionPay states ISO 4217 numeric codes: 156 is CNY; any other is passed on as stated."""
    return None if not code else ("CNY" if code == "156" else code)


def _paid_at(trace_time: str | None) -> datetime | None:
    """traceTime is MMDDhhmmss (Beijing) without a year: take the latest one not in the future."""
    if not trace_time or len(trace_time) != 10 or not is_ascii_digits(trace_time):
        return None
    now = clock.now().astimezone(BEIJING)
    for year in (now.year, now.year - 1):
        try:
            dt = datetime.strptime(f"{year}{trace_time}", "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
        except ValueError:
            continue
        if dt <= now + timedelta(days=1):
            return dt
    return None


class UnionpayChannel:
    # C2B (the payer scans: dynamic and plate) and B2C (the payer's code); no H5/app/JSAPI
    supported_ways = frozenset({WayCode.QR_DYNAMIC, WayCode.QR_STATIC, WayCode.BARCODE})
    name = ChannelName.UNIONPAY

    def __init__(self, settings: Settings, up: UnionpaySection, http: httpx.AsyncClient,
                 keys: AdapterKeys) -> None:
        self.settings = settings
        self.up = up
        self.http = http
        self.keys = keys
        self.base_url = (up.base_url or settings.sandbox_url("unionpay")).rstrip("/")
        self.file_url = up.file_url or f"{self.base_url}/fileTransRequest.do"
        self.timeout = up.timeout_seconds or settings.channel_timeout_seconds
        # certId names the signing certificate (01/02); secure-key methods (11/12) send none
        self.cert_id = "" if up.sign_method in SECURE_KEY_METHODS else (
            up.cert_id or (keys.merchant.rsa_cert_id if up.sign_method == SIGN_RSA
                           else keys.merchant.sm2_cert_id))

    # --- transport ---------------------------------------------------------------------------

    def _access(self, sub: str | None) -> dict[str, str]:
        """Who sells: the bank itself (`accessType=0`, its own merId: the direct form) or, in
        the acquirer form, the sub-merchant UnionPay registered (`accessType=1`, the bank's
        `acqInsCode`, the sub-merchant's merId)."""
        if sub:
            return {"merId": sub, "accessType": "1", "acqInsCode": acq_ins_code(self.up)}
        return {"merId": self.up.mer_id, "accessType": "0"}

    def _signed(self, fields: dict[str, str]) -> dict[str, str]:
        """The request signed; `fields` may name the access (`_access`), else the direct form."""
        body = {**self._access(None), **{k: v for k, v in fields.items() if v}}
        body.update(version=VERSION, encoding=ENCODING, signMethod=self.up.sign_method)
        if self.cert_id:
            body["certId"] = self.cert_id
        body["signature"] = sign_fields(body, method=self.up.sign_method,
                                        rsa_key=self.keys.merchant.rsa,
                                        sm2_key=self.keys.merchant.sm2,
                                        secure_key=self.keys.secure_key)
        return body

    def _verified(self, fields: dict[str, str]) -> bool:
        """Signed by UnionPay's pinned key; a carried signPubKeyCert must hold that same key.

        (Real 5.1.0 answers carry the signing certificate, which the SDK validates against
        UnionPay's root; we pin the configured key instead, which is stricter.)
        """
        cert = fields.get("signPubKeyCert")
        if cert is not None and not _same_key(cert, self.keys.unionpay_rsa_public):
            return False
        return verify_fields(fields, rsa_public=self.keys.unionpay_rsa_public,
                             sm2_public=self.keys.unionpay_sm2_public,
                             secure_key=self.keys.secure_key)

    async def _call(self, url: str, fields: dict[str, str]) -> dict[str, str]:
        """POST a signed form; the verified answer, or ChannelUnavailable."""
        try:
            # A whole-call deadline as well as httpx's own: the ASGI transport used in-process
            # (sandbox, tests) ignores httpx timeouts.
            async with asyncio.timeout(self.timeout):
                resp = await self.http.post(
                    url, content=encode_form(self._signed(fields)), timeout=self.timeout,
                    headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"})
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ChannelUnavailable(f"unionpay: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise ChannelUnavailable(f"unionpay: HTTP {resp.status_code}")
        try:
            answer = decode_response(resp.text)
        except ValueError as exc:
            raise ChannelUnavailable("unionpay: garbled response") from exc
        if not self._verified(answer) or "respCode" not in answer:
            raise ChannelUnavailable("unionpay: response signature does not verify")
        return answer

    async def _back(self, sub: str | None, fields: dict[str, str]) -> dict[str, str]:
        return await self._call(f"{self.base_url}/gateway/api/backTransReq.do",
                                {**self._access(sub), **fields})

    async def _query_raw(self, fulema_id: str, sub: str | None) -> dict[str, str]:
        return await self._call(f"{self.base_url}/gateway/api/queryTrans.do", {
            **self._access(sub), "txnType": "00", "txnSubType": "00", "bizType": "000000",
            "orderId": _order_id(fulema_id), "txnTime": _txn_time(fulema_id)})

    @staticmethod
    def _refused_sub(sub: str | None, answer: dict[str, str]) -> None:
        """In the acquirer form, 31 商户状态不正确 is UnionPay refusing the sub-merchant itself
        (unknown to it, not yet in effect, or suspended): SubMerchantRefused, not this order."""
        if sub and answer["respCode"] == SUB_MERCHANT_REFUSED:
            raise SubMerchantRefused(SUB_MERCHANT_REFUSED, answer.get("respMsg", ""))

    # --- payments ----------------------------------------------------------------------------

    def static_code_way(self, payer_id: str | None) -> WayCode:
        return WayCode.QR_STATIC  # UnionPay's app confirms a plate payment itself (C2B 主扫)

    async def create(self, req: CreatePaymentRequest) -> CreatePaymentResult:
        if req.way_code not in (WayCode.QR_DYNAMIC, WayCode.QR_STATIC):
            raise ChannelError("UNSUPPORTED_WAY_CODE",
                               f"unionpay supports QR_DYNAMIC, QR_STATIC and BARCODE, not "
                               f"{req.way_code}")
        answer = await self._back(req.sub_merchant_id, {
            "txnType": "01", "txnSubType": "07", "bizType": "000000", "channelType": "08",
            "orderId": _order_id(req.order_id), "txnTime": _txn_time(req.order_id),
            "txnAmt": str(req.amount.fen), "currencyCode": "156", "backUrl": req.notify_url,
            "payTimeout": beijing(req.expire_at)})
        self._refused_sub(req.sub_merchant_id, answer)
        code = answer["respCode"]
        if code == "00" and answer.get("qrCode"):
            return CreatePaymentResult(state=TradeState.PAYING, code_url=answer["qrCode"],
                                       raw=answer)
        if code == "00" or code in PENDING:
            raise ChannelUnavailable(f"unionpay: no qrCode yet (respCode {code})")
        raise ChannelError(code, answer.get("respMsg", ""))

    async def barcode_pay(self, req: BarcodePayRequest) -> TradeResult:
        # ChannelUnavailable propagates: the breaker must count it, and payments turns it
        # into "paying, query it" (the payer may have been charged).
        answer = await self._back(req.sub_merchant_id, {
            "txnType": "01", "txnSubType": "06", "bizType": "000000", "channelType": "08",
            "orderId": _order_id(req.order_id), "txnTime": _txn_time(req.order_id),
            "txnAmt": str(req.amount.fen), "currencyCode": "156", "qrNo": req.auth_code,
            "backUrl": self.settings.callback_url("unionpay")})
        self._refused_sub(req.sub_merchant_id, answer)
        code = answer["respCode"]
        if code == "00":
            return TradeResult(state=TradeState.SUCCESS, channel_trade_no=answer.get("queryId"),
                               amount=_money(answer.get("txnAmt")),
                               currency=_currency(answer.get("currencyCode")),
                               paid_at=_paid_at(answer.get("traceTime")), raw=answer)
        if code in PENDING or code == DUPLICATE:
            found = await self.query(req.order_id, sub_merchant_id=req.sub_merchant_id)
            return found if found.state != TradeState.NOT_FOUND else TradeResult(
                state=TradeState.UNKNOWN, error_code=code, raw=answer)
        return TradeResult(state=TradeState.FAILED, error_code=code,
                           error_message=answer.get("respMsg"), raw=answer)

    def _trade(self, answer: dict[str, str]) -> TradeResult:
        code = answer.get("origRespCode") or answer["respCode"]
        state = _state(code)
        return TradeResult(
            state=state, channel_trade_no=answer.get("queryId"),
            amount=_money(answer.get("txnAmt")) if state == TradeState.SUCCESS else None,
            currency=_currency(answer.get("currencyCode")),
            paid_at=_paid_at(answer.get("traceTime")) if state == TradeState.SUCCESS else None,
            error_code=None if state == TradeState.SUCCESS else code,
            error_message=answer.get("origRespMsg") or answer.get("respMsg"), raw=answer)

    async def query(self, order_id: str, *, sub_merchant_id: str | None = None) -> TradeResult:
        answer = await self._query_raw(order_id, sub_merchant_id)
        code = answer["respCode"]
        if code == NOT_FOUND:
            return TradeResult(state=TradeState.NOT_FOUND, error_code=code,
                               error_message=answer.get("respMsg"), raw=answer)
        if code != "00":
            return TradeResult(state=TradeState.UNKNOWN, error_code=code,
                               error_message=answer.get("respMsg"), raw=answer)
        return self._trade(answer)

    async def close(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        """UnionPay has no close for a 主扫 order QR: it lapses at payTimeout (= the order's expiry).

        A paid order cannot be closed (ChannelError ORDER_PAID); a payer-code payment still
        waiting for the payer is voided.
        """
        found = await self.query(order_id, sub_merchant_id=sub_merchant_id)
        if found.state == TradeState.UNKNOWN:
            raise ChannelUnavailable("unionpay: order state unknown")
        if found.state == TradeState.SUCCESS:
            raise ChannelError("ORDER_PAID", "the order is paid; refund it instead")
        if found.state == TradeState.PAYING and found.raw.get("txnSubType") == "06":
            await self._void(order_id, found, sub_merchant_id)

    async def cancel(self, order_id: str, *, sub_merchant_id: str | None = None) -> None:
        """撤销: void the payer-code payment whether it is paid or still waiting for the payer."""
        found = await self.query(order_id, sub_merchant_id=sub_merchant_id)
        if found.state == TradeState.UNKNOWN:
            raise ChannelUnavailable("unionpay: order state unknown")
        if found.state in (TradeState.SUCCESS, TradeState.PAYING):
            await self._void(order_id, found, sub_merchant_id)

    async def _void(self, order_id: str, found: TradeResult, sub: str | None) -> None:
        answer = await self._back(sub, {
            "txnType": "31", "txnSubType": "00", "bizType": "000000", "channelType": "08",
            "orderId": _void_order_id(order_id), "txnTime": _txn_time(order_id),
            "txnAmt": found.raw.get("txnAmt", ""), "origQryId": found.raw.get("queryId", ""),
            "backUrl": self.settings.callback_url("unionpay")})
        code = answer["respCode"]
        if code in ("00", DUPLICATE):
            return
        if code in PENDING:
            raise ChannelUnavailable(f"unionpay: void pending (respCode {code})")
        raise ChannelError(code, answer.get("respMsg", ""))

    # --- refunds -----------------------------------------------------------------------------

    async def refund(self, req: RefundRequest) -> RefundResult:
        original = await self.query(req.order_id, sub_merchant_id=req.sub_merchant_id)
        if original.state == TradeState.UNKNOWN:
            return RefundResult(state=RefundState.UNKNOWN, error_message=original.error_message)
        if original.state != TradeState.SUCCESS:
            return RefundResult(state=RefundState.FAILED, error_code=original.error_code or "35",
                                error_message="原交易不存在或状态不正确")
        answer = await self._back(req.sub_merchant_id, {
            "txnType": "04", "txnSubType": "00", "bizType": "000000", "channelType": "08",
            "orderId": _order_id(req.refund_id), "txnTime": _txn_time(req.refund_id),
            "txnAmt": str(req.amount.fen), "currencyCode": "156",
            "origQryId": original.channel_trade_no or "",
            "backUrl": req.notify_url, "reqReserved": _order_id(req.order_id)})
        code = answer["respCode"]
        if code == "00":  # 受理成功: the outcome arrives by notification or query
            return RefundResult(state=RefundState.PROCESSING,
                                channel_refund_no=answer.get("queryId"), raw=answer)
        if code in PENDING or code == DUPLICATE:
            return await self.refund_query(req.order_id, req.refund_id,
                                           sub_merchant_id=req.sub_merchant_id)
        return RefundResult(state=RefundState.FAILED, error_code=code,
                            error_message=answer.get("respMsg"), raw=answer)

    async def refund_query(self, order_id: str, refund_id: str, *,
                           sub_merchant_id: str | None = None) -> RefundResult:
        found = await self.query(refund_id, sub_merchant_id=sub_merchant_id)
        return RefundResult(state=REFUND_STATES[found.state],
                            channel_refund_no=found.channel_trade_no,
                            error_code=found.error_code, error_message=found.error_message,
                            raw=found.raw)

    # --- callbacks ---------------------------------------------------------------------------

    async def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackResult:
        try:
            fields = decode_form(body)
        except ValueError as exc:
            raise FulemaError(ErrorCode.CALLBACK_INVALID, "unionpay: not a form body") from exc
        if not self._verified(fields):
            raise FulemaError(ErrorCode.CALLBACK_INVALID, "unionpay: signature does not verify")
        sub = self._notified_sub(fields)  # payments checks it is the order's (None: direct)
        return replace(self._callback(fields), sub_merchant_id=sub, names_sub_merchant=True)

    def _callback(self, fields: dict[str, str]) -> CallbackResult:
        result = self._trade(fields)
        txn_type, order_id = fields.get("txnType"), fields["orderId"]
        if txn_type == "01":
            return CallbackResult(kind=CallbackKind.PAYMENT, order_id=from_order_id(order_id),
                                  trade=result)
        if txn_type == "31" and "V" in order_id:
            closed = TradeResult(state=TradeState.CLOSED, channel_trade_no=fields.get("origQryId"),
                                 raw=fields) if result.state == TradeState.SUCCESS else result
            return CallbackResult(kind=CallbackKind.PAYMENT,
                                  order_id=_voided_order(order_id), trade=closed)
        if txn_type == "04" and fields.get("reqReserved"):
            refund = RefundResult(state=REFUND_STATES[result.state],
                                  channel_refund_no=fields.get("queryId"),
                                  error_code=result.error_code,
                                  error_message=result.error_message, raw=fields)
            return CallbackResult(kind=CallbackKind.REFUND,
                                  order_id=from_order_id(fields["reqReserved"]),
                                  refund_id=from_order_id(order_id), refund=refund)
        raise FulemaError(ErrorCode.CALLBACK_INVALID, f"unionpay: unexpected txnType {txn_type}")

    def _notified_sub(self, fields: dict[str, str]) -> str | None:
        """The sub-merchant a verified notification is for (None: the direct form), which
        payments checks against the order's; CALLBACK_INVALID when it is not ours at all."""
        if not fields.get("orderId"):
            raise FulemaError(ErrorCode.CALLBACK_INVALID, "unionpay: no orderId")
        access, mer_id = fields.get("accessType", "0"), fields.get("merId")
        if access == "0" and mer_id == self.up.mer_id:
            return None
        if access == "1" and fields.get("acqInsCode") == acq_ins_code(self.up) and mer_id:
            return mer_id
        raise FulemaError(ErrorCode.CALLBACK_INVALID, "unionpay: not for this merchant")

    def callback_ack(self, ok: bool) -> CallbackAck:
        """UnionPay retries a back notification until it gets HTTP 200."""
        if ok:
            return CallbackAck(status_code=200, body=b"ok", media_type="text/plain")
        return CallbackAck(status_code=400, body=b"fail", media_type="text/plain")

    # --- statement ---------------------------------------------------------------------------

    async def download_statement(self, day: date) -> bytes:
        """The day's ZM 流水 file (GBK fixed-width; read it with `unionpay_bill.parse_zm`).

        b"" when the archive holds no ZM file."""
        answer = await self._call(self.file_url, {
            "txnType": "76", "txnSubType": "01", "bizType": "000000",
            "settleDate": day.strftime("%m%d"), "txnTime": beijing(clock.now()),
            "fileType": "00"})
        if answer["respCode"] != "00":
            raise ChannelError(answer["respCode"], answer.get("respMsg", ""))
        try:
            archive = zlib.decompress(base64.b64decode(answer.get("fileContent", ""),
                                                       validate=True))
            return zm_from_archive(archive)
        except (ValueError, zlib.error) as exc:
            raise ChannelUnavailable("unionpay: statement file is corrupt") from exc


def _same_key(cert_pem: str, pinned: rsa.RSAPublicKey) -> bool:
    try:
        key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    except ValueError:
        return False
    return isinstance(key, rsa.RSAPublicKey) and key.public_numbers() == pinned.public_numbers()


def _order_id(fulema_id: str) -> str:
    try:
        return to_order_id(fulema_id)
    except ValueError as exc:
        raise ChannelError("INVALID_ORDER_ID", str(exc)) from exc


def _void_order_id(fulema_id: str) -> str:
    """The void's orderId: the order's with its `Z` separator written `V` (`ordV…`), so it is
    as long as the order's and fits the ZM file's 32-byte orderId. Fulema ids are lower-case,
    so `V` appears nowhere else."""
    return _order_id(fulema_id).replace("Z", "V")


def _voided_order(void_order_id: str) -> str:
    """The Fulema order id a void's orderId names; also reads the earlier `<orderId>V` form."""
    if void_order_id.endswith("V"):
        return from_order_id(void_order_id[:-1])
    return void_order_id.replace("V", "_")


def _txn_time(fulema_id: str) -> str:
    try:
        return txn_time_for(fulema_id)
    except ValueError as exc:
        raise ChannelError("INVALID_ORDER_ID", str(exc)) from exc


def acq_ins_code(up: UnionpaySection) -> str:
    """The bank's acquirer institution code (FULEMA_UNIONPAY_ACQ_INS_CODE)."""
    return up.acq_ins_code or DEV_ACQ_INS_CODE


def build_channel(settings: Settings, http: httpx.AsyncClient) -> UnionpayChannel:
    up = settings.unionpay
    return UnionpayChannel(settings, up, http, adapter_keys(settings, up))


def build_endpoints(settings: Settings, http: httpx.AsyncClient) -> list[tuple[str, Channel]]:
    """Primary and, when FULEMA_UNIONPAY_BACKUP_BASE_URL is set, the backup. The backup keeps a
    configured FILE_URL; an empty one is derived from the backup's base URL."""
    up = settings.unionpay
    keys = adapter_keys(settings, up)
    return with_backup(up, lambda cfg: UnionpayChannel(settings, cfg, http, keys))
