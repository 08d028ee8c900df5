"""UnionPay sub-merchant registration (收单机构商户报备) in the sandbox (nothing imported from our
adapter).

UnionPay's acquirer registration interface is not public; the sandbox implements the form our
documentation assumes (docs/onboarding.md): an ACP 5.1.0 message, signed and checked exactly as
the payment messages are (`UnionpaySandbox.api`), sent by the acquirer with `accessType=1` and
its `acqInsCode`, to `/gateway/api/merRegister.do`. `txnType=81` registers (`orderId` is the
acquirer's application number, idempotent), `txnType=82` asks about it: `regState` 01 审核中,
02 待补充/待签约, 00 已生效 (with the sub-merchant's `subMerId`), 03 驳回 (with `regMsg`). The
sandbox operator decides at `/sandbox-ops/registrations/{orderId}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from fulema.sandbox.unionpay.state import Refusal

if TYPE_CHECKING:
    from fulema.sandbox.unionpay.server import UnionpaySandbox

REGISTER_FIELDS = ("subMerName", "subMerAbbr", "mcc", "licenseNo", "contactName", "contactPhone",
                   "settleAcctNo", "settleAcctName", "merAddr", "areaCode")
ORDER_ID = re.compile(r"^[0-9A-Za-z]{8,40}$")


@dataclass
class SubMerchant:
    order_id: str
    name: str
    state: str = "01"
    message: str = "审核中"
    sub_mer_id: str | None = None
    suspended: bool = False

    def answer(self) -> dict[str, str]:
        out = {"respCode": "00", "orderId": self.order_id, "regState": self.state,
               "regMsg": self.message}
        if self.sub_mer_id:
            out["subMerId"] = self.sub_mer_id
        return out


class Registrations:
    def __init__(self, acq_ins_code: str) -> None:
        self.acq_ins_code = acq_ins_code
        self.by_order: dict[str, SubMerchant] = {}
        self.area: dict[str, tuple[str, str]] = {}  # per order: the area and MCC a merId encodes
        self.seq = 0

    def usable(self, sub_mer_id: str) -> bool:
        return any(r.sub_mer_id == sub_mer_id and r.state == "00" and not r.suspended
                   for r in self.by_order.values())

    def handle(self, f: dict[str, str]) -> dict[str, str]:
        if f.get("accessType") != "1" or f.get("acqInsCode") != self.acq_ins_code:
            raise Refusal("31")  # 商户状态不正确: only the registered acquirer reports merchants
        order_id = f.get("orderId", "")
        if not ORDER_ID.match(order_id):
            raise Refusal("10")
        if f["txnType"] == "82":
            found = self.by_order.get(order_id)
            if found is None:
                raise Refusal("34")
            return found.answer()
        if f["txnType"] != "81":
            raise Refusal("10")
        found = self.by_order.get(order_id)
        if found is not None:
            return found.answer()  # the same application again
        for key in REGISTER_FIELDS:
            if not f.get(key):
                raise Refusal("13")
        if not (f["mcc"].isdigit() and len(f["mcc"]) == 4 and f["areaCode"].isdigit()):
            raise Refusal("10")
        self.by_order[order_id] = SubMerchant(order_id, f["subMerName"])
        self.area[order_id] = f["areaCode"][:4], f["mcc"]
        return self.by_order[order_id].answer()

    def decide(self, order_id: str, body: dict[str, Any]) -> JSONResponse:
        r = self.by_order.get(order_id)
        if r is None:
            return JSONResponse({"respCode": "34"}, 404)
        decision = body.get("decision")
        if decision == "approve":
            self.seq += 1
            area, mcc = self.area.get(order_id, ("0000", "0000"))
            r.state, r.message = "00", "已生效"
            # 15 digits: acquirer prefix, area, MCC, sequence, as UnionPay merchant codes are
            r.sub_mer_id = r.sub_mer_id or f"898{area}{mcc}{self.seq:04d}"
        elif decision == "reject":
            r.state, r.message = "03", str(body.get("reason") or "资料不符")
        elif decision in ("verify", "sign"):
            r.state, r.message = "02", "待补充资料或待签约"
        elif decision in ("suspend", "resume") and r.state == "00":
            r.suspended = decision == "suspend"
        else:
            return JSONResponse({"respCode": "10"}, 400)
        return JSONResponse(r.answer())


def add_register_routes(app: FastAPI, sb: UnionpaySandbox) -> Registrations:
    """Route the sandbox's registrations (`sb.registrations`, which its payments consult)."""
    book = sb.registrations

    @app.post("/gateway/api/merRegister.do")
    async def register(request: Request) -> Response:
        return await sb.api(request, book.handle)

    @app.post("/sandbox-ops/registrations/{order_id}")
    async def decide(order_id: str, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        return book.decide(order_id, body if isinstance(body, dict) else {})

    return book
