"""UnionPay 全渠道 sandbox: the acquirer-facing API plus the payers' UnionPay app (wallet).

Mounted at /sandbox/unionpay, or served at its own root (`fulema sandbox unionpay`), where the
paths are UnionPay's own (/gateway/api/backTransReq.do, ...). It checks certId and the
signature as UnionPay's specification defines them (signMethod 01 RSA, 02 SM2, 11/12
SHA-256/SM3 with the shared secure key; see `protocol.py`, an implementation independent of the
adapter's) and answers a bad one with respCode 11 验证签名失败; it
signs every answer and back notification with the development UnionPay keys; notifications
are posted after the answer, from background tasks, retried until HTTP 200.
"""

from __future__ import annotations

import asyncio
import base64
import io
import zipfile
import zlib
from collections.abc import Callable
from datetime import date, timedelta

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool, StrictInt

from fulema.core.clock import clock
from fulema.sandbox.unionpay import zm
from fulema.sandbox.unionpay.config import UnionpaySandboxConfig
from fulema.sandbox.unionpay.protocol import (
    BEIJING,
    CERT_METHODS,
    FORM_TYPE,
    MESSAGES,
    SIGN_METHODS,
    SIGN_RSA,
    VERSION,
    cert_serial,
    order_id_candidates,
    parse_txn_time,
    read_form,
    sign,
    verify,
    write_answer,
    write_form,
)
from fulema.sandbox.unionpay.register import Registrations, add_register_routes
from fulema.sandbox.unionpay.state import Books, Refusal, Txn

NOTIFY_DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0)  # seconds before each delivery attempt
ECHOED = ("version", "encoding", "bizType", "txnType", "txnSubType", "accessType", "acqInsCode",
          "merId", "orderId", "txnTime", "txnAmt", "currencyCode", "reqReserved")


# The fields ACP 5.1.0 marks M (mandatory) for each txnType, beyond version, encoding,
# signMethod, signature, certId (01/02), merId, txnType and accessType, checked first.
_COMMON = ("txnSubType", "bizType", "txnTime")
_BACK = (*_COMMON, "channelType", "orderId", "backUrl")
REQUIRED: dict[str, tuple[str, ...]] = {
    "01": (*_BACK, "txnAmt", "currencyCode"),  # consume (申码 07, 付款码 06)
    "31": (*_BACK, "txnAmt", "origQryId"),  # consume void
    "04": (*_BACK, "txnAmt", "currencyCode", "origQryId"),  # refund
    "00": (*_COMMON, "orderId"),  # query: no channelType in queryTrans.do
    "76": (*_COMMON, "settleDate", "fileType"),  # file transfer: no orderId
}


def _is_txn_time(value: str) -> bool:
    """yyyyMMddHHmmss, 14 digits, a real date and time. No staleness window: a query carries
    the original order's txnTime, and a void reuses it."""
    if len(value) != 14 or not (value.isascii() and value.isdigit()):
        return False
    try:
        parse_txn_time(value)
    except ValueError:
        return False
    return True


def _is_fen(value: str) -> bool:
    """txnAmt: a positive integer of fen, no sign, no leading zero, at most 12 digits."""
    return (value.isascii() and value.isdigit() and len(value) <= 12
            and not value.startswith("0"))


FORMATS: dict[str, Callable[[str], bool]] = {
    "txnTime": _is_txn_time,
    "txnAmt": _is_fen,
    "currencyCode": lambda v: v == "156",  # CNY only
}


def _access_refusal(fields: dict[str, str], mer_id: str, acq_ins_code: str
                    ) -> tuple[str, str] | None:
    """accessType 0 (商户直连): our own merId only. accessType 1 (收单机构接入): the acquirer
    names itself in acqInsCode (13 when missing, 31 when it is not the acquirer this sandbox
    serves); its merId is the sub-merchant's, checked by the payment handlers."""
    access = fields["accessType"]
    if access == "0":
        return None if fields["merId"] == mer_id else ("31", MESSAGES["31"])
    if access != "1":
        return _malformed("accessType")
    if not fields.get("acqInsCode"):
        return _missing("acqInsCode")
    return None if fields["acqInsCode"] == acq_ins_code else ("31", MESSAGES["31"])


def _missing(key: str) -> tuple[str, str]:
    return "13", f"{MESSAGES['13']}[{key}]"


def _malformed(key: str) -> tuple[str, str]:
    return "10", f"{MESSAGES['10']}[{key}]"


class NewPayer(BaseModel):
    payer_id: str | None = Field(default=None, min_length=1, max_length=64)
    balance_fen: int = Field(ge=0)
    password_required: bool = False
    risk_refused: StrictBool = False  # UnionPay's risk control refuses every payment: respCode 38
    limit_fen: StrictInt | None = Field(default=None, ge=0)  # above it: respCode 33


class Scan(BaseModel):
    code_url: str | None = None
    order_id: str | None = None
    payer_id: str


class Faults(BaseModel):
    mode: str = Field(default="none", pattern="^(none|5xx|slow|garbled)$")
    delay_ms: int = Field(default=0, ge=0, le=60_000)
    statement_diff: dict[str, object] = Field(default_factory=dict)


def _self_signed(key: rsa.RSAPrivateKey, serial: int) -> str:
    """The signPubKeyCert the sandbox attaches to RSA-signed messages, as UnionPay does."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "UnionPay Sandbox Signing")])
    now = clock.now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class UnionpaySandbox:
    def __init__(self, config: UnionpaySandboxConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http
        self.mer_id = config.mer_id
        self.secure_key = config.secure_key  # shared with the merchant (11/12)
        self.cert_ids = dict(config.merchant_cert_ids)
        self.cert_pem = _self_signed(config.platform_rsa, cert_serial(config.platform_rsa))
        self.books = Books()
        self.faults = Faults()
        self.tasks: set[asyncio.Task[None]] = set()
        self.registrations = Registrations(config.acq_ins_code)  # build_sandbox's, routed

    # --- signing -----------------------------------------------------------------------------

    def _signed(self, fields: dict[str, str], method: str) -> dict[str, str]:
        fields = {k: v for k, v in fields.items() if v != ""}
        fields["signMethod"] = method
        if method == SIGN_RSA:
            fields["signPubKeyCert"] = self.cert_pem
        fields["signature"] = sign(fields, rsa_key=self.config.platform_rsa,
                                   sm2_key=self.config.platform_sm2, secure_key=self.secure_key)
        return fields

    def _answer(self, request: dict[str, str], out: dict[str, str]) -> Response:
        fields = {k: request[k] for k in ECHOED if k in request}
        fields.update(out)
        fields.setdefault("respMsg", MESSAGES.get(fields["respCode"], ""))
        method = request.get("signMethod", SIGN_RSA)
        signed = self._signed(fields, method if method in SIGN_METHODS else SIGN_RSA)
        return Response(write_answer(signed), media_type="text/plain;charset=UTF-8")

    def _refusal(self, fields: dict[str, str]) -> tuple[str, str] | None:
        """(respCode, respMsg) for a request refused before any business rule, else None.

        13 报文交易要素缺失 names the missing field; 10 报文格式错误 names the malformed one.
        """
        required = ("version", "encoding", "signMethod", "signature", "merId", "txnType",
                    "accessType")
        for key in required:
            if not fields.get(key):
                return _missing(key)
        method = fields["signMethod"]
        if method in CERT_METHODS and not fields.get("certId"):
            return _missing("certId")
        if fields["version"] != VERSION:
            return _malformed("version")
        if method not in SIGN_METHODS:
            return _malformed("signMethod")
        for key in REQUIRED.get(fields["txnType"], ()):
            if not fields.get(key):
                return _missing(key)
        for key, valid in FORMATS.items():
            if key in fields and not valid(fields[key]):
                return _malformed(key)
        access = _access_refusal(fields, self.mer_id, self.config.acq_ins_code)
        if access is not None:
            return access
        if method in CERT_METHODS and fields["certId"] != self.cert_ids[method]:
            return "11", MESSAGES["11"]
        if not verify(fields, rsa_public=self.config.merchant_rsa_public,
                      sm2_public=self.config.merchant_sm2_public, secure_key=self.secure_key):
            return "11", MESSAGES["11"]
        return None

    # --- API endpoints -----------------------------------------------------------------------

    async def api(self, request: Request,
                  handler: Callable[[dict[str, str]], dict[str, str]]) -> Response:
        if self.faults.mode == "5xx":
            return Response("Internal Server Error", status_code=500)
        if self.faults.mode == "slow":
            await asyncio.sleep(self.faults.delay_ms / 1000)
        if self.faults.mode == "garbled":
            return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
        try:
            fields = read_form(await request.body())
        except ValueError:
            return self._answer({}, {"respCode": "10"})
        refusal = self._refusal(fields)
        if refusal is not None:
            code, message = refusal
            return self._answer(fields, {"respCode": code, "respMsg": message})
        try:
            out = handler(fields)
        except Refusal as exc:
            out = {"respCode": exc.code}
        except (KeyError, ValueError):
            out = {"respCode": "13"}
        return self._answer(fields, out)

    def _sub_merchant(self, f: dict[str, str]) -> None:
        """A new payment (申码, 消费: txnType 01) in the acquirer form (accessType=1) is the
        sub-merchant's: its merId must be one UnionPay registered for this acquirer, in effect
        and not suspended, else 31 商户状态不正确 (the code UnionPay gives a merchant that may
        not trade). Queries, voids and refunds of its earlier payments go on (found only under
        the merId they were made under)."""
        if f["accessType"] == "1" and f["txnType"] == "01" \
                and not self.registrations.usable(f["merId"]):
            raise Refusal("31")

    def _new_txn(self, f: dict[str, str], txn_type: str, sub: str) -> Txn:
        order_id, txn_time, amount = f["orderId"], f["txnTime"], f["txnAmt"]
        if not (order_id.isascii() and order_id.isalnum() and 8 <= len(order_id) <= 40):
            raise Refusal("10")
        if not amount.isdigit() or int(amount) <= 0:
            raise Refusal("10")
        return Txn(order_id=order_id, txn_type=txn_type, txn_sub_type=sub, txn_time=txn_time,
                   amount=int(amount), back_url=f["backUrl"], sign_method=f["signMethod"],
                   mer_id=f["merId"], acq_ins_code=f.get("acqInsCode", ""),
                   orig_query_id=f.get("origQryId"),
                   req_reserved=f.get("reqReserved", ""))

    def back(self, f: dict[str, str]) -> dict[str, str]:
        self._sub_merchant(f)
        original = self.books.by_query_id.get(f.get("origQryId", ""))
        if original is not None and original.mer_id != f["merId"]:
            raise Refusal("35")  # a void or refund of another merchant's transaction
        kind = (f["txnType"], f.get("txnSubType", ""))
        if kind == ("01", "07"):
            pay_timeout = parse_txn_time(f["payTimeout"]) if f.get("payTimeout") else None
            txn = self.books.apply_qr(self._new_txn(f, "01", "07"), pay_timeout)
            return {"respCode": "00", "qrCode": txn.qr_code or ""}
        if kind == ("01", "06"):
            txn = self.books.consume_code(self._new_txn(f, "01", "06"), f["qrNo"])
        elif kind == ("31", "00"):
            txn = self.books.void(self._new_txn(f, "31", "00"))
        elif kind == ("04", "00"):
            txn = self.books.refund(self._new_txn(f, "04", "00"))
        else:
            raise Refusal("10")
        if txn.code == "00":
            self._notify(txn)
        return {"respCode": txn.code, "queryId": txn.query_id, **self._result(txn)}

    def _result(self, txn: Txn) -> dict[str, str]:
        out = {"traceNo": txn.trace_no, "traceTime": txn.trace_time,
               "origQryId": txn.orig_query_id or ""}
        if txn.code == "00":
            out.update(settleAmt=str(txn.amount), settleCurrencyCode="156",
                       settleDate=txn.settle_date)
            if txn.payer_id:
                out["accNo"] = self.books.payers[txn.payer_id].acc_no
        return out

    def query(self, f: dict[str, str]) -> dict[str, str]:
        if f["txnType"] != "00":
            raise Refusal("10")
        txn = self.books.find(f["orderId"], f["txnTime"])
        if txn.mer_id != f["merId"]:  # another merchant's order (or the other form's)
            raise Refusal("34")
        # The answer describes the original transaction (its type, amount, state).
        return {"respCode": "00", "origRespCode": txn.code,
                "origRespMsg": MESSAGES.get(txn.code, ""), "queryId": txn.query_id,
                "txnType": txn.txn_type, "txnSubType": txn.txn_sub_type,
                "txnAmt": str(txn.amount), "reqReserved": txn.req_reserved, **self._result(txn)}

    def file(self, f: dict[str, str]) -> dict[str, str]:
        day = f["settleDate"]
        if f["txnType"] != "76" or len(day) != 4 or not day.isdigit():
            raise Refusal("10")
        content = self.books.statement(day, self.faults.statement_diff)
        buf = io.BytesIO()
        zm_name = zm.file_name(_settle_day(day), self.mer_id)
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(zm_name, content)
        name = f"{zm_name[:9]}_{self.mer_id}.zip"  # INN{yyMMdd}_{merId}.zip (a sandbox choice)
        return {"respCode": "00", "fileName": name, "settleDate": day, "fileType": "00",
                "fileContent": base64.b64encode(zlib.compress(buf.getvalue())).decode()}

    # --- notifications -----------------------------------------------------------------------

    def _notify(self, txn: Txn) -> None:
        fields = {"version": VERSION, "encoding": "UTF-8", "bizType": "000000",
                  "txnType": txn.txn_type, "txnSubType": txn.txn_sub_type,
                  "accessType": "1" if txn.acq_ins_code else "0",
                  "acqInsCode": txn.acq_ins_code, "merId": txn.mer_id,
                  "orderId": txn.order_id, "txnTime": txn.txn_time,
                  "txnAmt": str(txn.amount), "currencyCode": "156", "queryId": txn.query_id,
                  "respCode": txn.code, "respMsg": MESSAGES.get(txn.code, ""),
                  "origRespCode": txn.code, "origRespMsg": MESSAGES.get(txn.code, ""),
                  "reqReserved": txn.req_reserved, **self._result(txn)}
        body = write_form(self._signed(fields, txn.sign_method))
        task = asyncio.create_task(self._deliver(txn.back_url, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, body: str) -> None:
        for delay in NOTIFY_DELAYS:
            await asyncio.sleep(delay)
            try:
                resp = await self.http.post(url, content=body, timeout=5.0,
                                            headers={"Content-Type": FORM_TYPE})
            except httpx.HTTPError:
                continue
            if resp.status_code == 200:
                return

    # --- wallet ------------------------------------------------------------------------------

    def find_order(self, ref: str) -> Txn | None:
        return next((self.books.txns[r] for r in order_id_candidates(ref)
                     if r in self.books.txns), None)


def _settle_day(mmdd: str) -> date:
    """The latest date with this MMDD that is not after today (Beijing); MMDD has no year."""
    today = clock.now().astimezone(BEIJING).date()
    for year in (today.year, today.year - 1, today.year - 4):  # 0229 exists every 4 years
        try:
            day = date(year, int(mmdd[:2]), int(mmdd[2:]))
        except ValueError:
            continue
        if day <= today:
            return day
    raise Refusal("10")


def _refused(exc: Refusal) -> JSONResponse:
    status = 404 if exc.code == "34" else 409
    return JSONResponse({"respCode": exc.code, "respMsg": MESSAGES.get(exc.code, "")},
                        status_code=status)


def build_sandbox(config: UnionpaySandboxConfig, http: httpx.AsyncClient) -> FastAPI:
    sb = UnionpaySandbox(config, http)
    app = FastAPI(title="UnionPay sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = sb
    # acquirer registration of sub-merchants (accessType=1), our documented assumption
    app.state.registrations = add_register_routes(app, sb)

    @app.post("/gateway/api/backTransReq.do")
    async def back_trans(request: Request) -> Response:
        return await sb.api(request, sb.back)

    @app.post("/gateway/api/queryTrans.do")
    async def query_trans(request: Request) -> Response:
        return await sb.api(request, sb.query)

    @app.post("/fileTransRequest.do")
    async def file_trans(request: Request) -> Response:
        return await sb.api(request, sb.file)

    @app.post("/wallet/payers")
    async def new_payer(body: NewPayer) -> dict[str, object]:
        known = sb.books.payers.get(body.payer_id or "")
        if known is not None:
            return known.as_json()
        return sb.books.add_payer(body.payer_id, body.balance_fen, body.password_required,
                                  body.risk_refused, body.limit_fen).as_json()

    @app.get("/wallet/payers/{payer_id}", response_model=None)
    async def get_payer(payer_id: str) -> dict[str, object] | JSONResponse:
        payer = sb.books.payers.get(payer_id)
        return payer.as_json() if payer else _refused(Refusal("34"))

    @app.post("/wallet/payers/{payer_id}/code", response_model=None)
    async def payer_code(payer_id: str) -> dict[str, object] | JSONResponse:
        payer = sb.books.payers.get(payer_id)
        if payer is None:
            return _refused(Refusal("34"))
        return {"auth_code": sb.books.issue_code(payer), "payer_id": payer_id}

    @app.post("/wallet/payers/{payer_id}/confirm", response_model=None)
    async def confirm(payer_id: str) -> dict[str, object] | JSONResponse:
        if payer_id not in sb.books.payers:
            return _refused(Refusal("34"))
        done = sb.books.confirm(payer_id)
        if not done:
            return _refused(Refusal("34"))
        for txn in done:
            if txn.code == "00":
                sb._notify(txn)
        return {"confirmed": [t.as_json() for t in done]}

    @app.post("/wallet/scan", response_model=None)
    async def scan(body: Scan) -> dict[str, object] | JSONResponse:
        found = sb.find_order(body.order_id) if body.order_id else None
        ref = body.code_url or (found.order_id if found else "")
        try:
            txn = sb.books.scan(ref, body.payer_id)
        except Refusal as exc:
            return _refused(exc)
        sb._notify(txn)
        return {"respCode": "00", "respMsg": MESSAGES["00"], **txn.as_json()}

    @app.get("/wallet/lookup", response_model=None)
    async def lookup(ref: str = "") -> dict[str, object] | JSONResponse:
        """What the payer's app shows on its confirm sheet (sandbox/appshell): the order a
        payment reference names, in one shape for every sandbox."""
        txn = sb.books.by_qr.get(ref) if ref else None
        if txn is None:
            return _refused(Refusal("34"))
        return {"amount_fen": txn.amount, "subject": "", "payable": txn.applied_only}

    @app.post("/wallet/faults")
    async def faults(body: Faults) -> dict[str, object]:
        sb.faults = body
        return body.model_dump()

    @app.get("/wallet/orders/{out_trade_no}", response_model=None)
    async def order(out_trade_no: str) -> dict[str, object] | JSONResponse:
        txn = sb.find_order(out_trade_no)
        if txn is None:
            return _refused(Refusal("34"))
        sb.books.expire(txn)
        return txn.as_json()

    return app
