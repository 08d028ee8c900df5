"""The bankpay sandbox's payer side: `/wallet/...` endpoints that play the bank's app users
(add payers, show a payer code, confirm, scan a QR or H5 link), fault injection, and the pay page.

Separate from the channel API (bankpay.py): these are the test and demo controls, not the
bank's merchant-facing protocol, and they need no signatures.
"""

from __future__ import annotations

import html
import secrets

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from fulema.sandbox.bankpay.protocol import iso
from fulema.sandbox.bankpay.state import REFUSALS, BankpaySandbox
from fulema.sandbox.json_common import answer, new_payer, payer_code, read_json, refuse, set_faults
from fulema.sandbox.wallet import parse_rules


def install_wallet(app: FastAPI, sb: BankpaySandbox) -> None:
    @app.post("/wallet/payers")
    async def add_payer(request: Request) -> Response:
        body = await read_json(request)
        fields = new_payer(body, sb.wallet.payers, lambda: f"payer_{secrets.token_hex(4)}")
        if isinstance(fields, Response):
            return fields
        pid, balance = fields
        rules = parse_rules(body)
        if isinstance(rules, str):
            return refuse(400, "PARAM_INVALID", rules)
        payer = sb.add_payer(pid, balance, password_required=bool(body.get("password_required")),
                             risk_refused=rules[0], limit_fen=rules[1])
        return answer(payer.view())

    @app.get("/wallet/payers/{pid}")
    async def get_payer(pid: str) -> Response:
        payer = sb.wallet.get(pid)
        return answer(payer.view()) if payer else refuse(404, "PAYER_NOT_FOUND", pid)

    @app.post("/wallet/payers/{pid}/code")
    async def code(pid: str) -> Response:
        return payer_code(pid, sb.wallet.get(pid), sb.issue_code, iso)

    @app.post("/wallet/payers/{pid}/confirm")
    async def confirm(pid: str, request: Request) -> Response:
        body = await read_json(request)
        for o in sb.orders.values():
            sb.refresh(o)
        waiting = [o for o in sb.orders.values() if o.payer and o.payer.payer_id == pid
                   and o.awaiting_confirm and o.state == "PAYING"]
        if body.get("out_trade_no"):
            waiting = [o for o in waiting if o.out_trade_no == body["out_trade_no"]]
        if not waiting:
            return refuse(404, "NOTHING_TO_CONFIRM", "no payment awaits this payer")
        o = waiting[-1]
        payer = sb.wallet.payers[pid]
        if body.get("approve", True) is False:
            sb.fail(o, "PAYER_DECLINED", "the payer declined in the app")
        elif (refused := sb.settle(o, payer)) is not None:
            sb.fail(o, *REFUSALS[refused])
        return answer(sb.order_view(o))

    @app.post("/wallet/scan")
    async def scan(request: Request) -> Response:
        body = await read_json(request)
        ref = str(body.get("code_url") or body.get("h5_url") or "").split("?")[0].rsplit("/", 1)
        trade_no = ref[-1] if ref[-1] else None
        o = next((x for x in sb.orders.values() if x.trade_no == trade_no
                  or x.out_trade_no == body.get("out_trade_no")), None)
        payer = sb.wallet.get(str(body.get("payer_id", "payer_rich")))
        if o is None or o.way_code == "BARCODE":
            return refuse(404, "ORDER_NOT_FOUND", "no such QR / H5 order")
        if payer is None:
            return refuse(404, "PAYER_NOT_FOUND", "no such payer")
        sb.refresh(o)
        if o.state != "PAYING":
            return refuse(409, f"ORDER_{o.state}", f"the order is {o.state}")
        # A refusal fails this attempt only: the order stays PAYING, as in the app
        refused = sb.settle(o, payer)
        if refused is not None:
            return refuse(409, *REFUSALS[refused])
        return answer({"code": "SUCCESS", **sb.order_view(o)})

    @app.get("/wallet/lookup")
    async def lookup(ref: str = "") -> Response:
        """What the payer's app shows on its confirm sheet (sandbox/appshell): the order a
        payment reference names, in one shape for every sandbox."""
        trade_no = ref.split("?")[0].rsplit("/", 1)[-1]
        o = next((x for x in sb.orders.values() if trade_no and x.trade_no == trade_no), None)
        if o is None:
            return refuse(404, "ORDER_NOT_FOUND", "no such QR / H5 order")
        sb.refresh(o)
        return answer({"amount_fen": o.amount_fen, "subject": o.subject,
                       "payable": o.state == "PAYING"})

    @app.post("/wallet/faults")
    async def faults(request: Request) -> Response:
        return set_faults(sb.faults, await read_json(request), "PARAM_INVALID")

    @app.get("/wallet/orders/{no}")
    async def order(no: str) -> Response:
        o = sb.orders.get(no)
        if o is None:
            return refuse(404, "ORDER_NOT_FOUND", no)
        refunds = [sb.refund_view(r) for r in sb.refunds.values() if r.order is o]
        return answer({**sb.order_view(o), "refunds": refunds})

    @app.get("/pay/{trade_no}")
    async def pay_page(trade_no: str) -> HTMLResponse:
        o = next((x for x in sb.orders.values() if x.trade_no == trade_no), None)
        if o is None:
            return HTMLResponse("<h1>No such order</h1>", 404)
        amount = f"{o.amount_fen // 100}.{o.amount_fen % 100:02d}"
        return HTMLResponse(_PAGE.format(subject=html.escape(o.subject), amount=amount,
                                         trade_no=html.escape(trade_no)))


_PAGE = """<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Bank app (sandbox)</title><h2>{subject}</h2><p>¥{amount}</p>
<select id="p"><option>payer_rich</option><option>payer_poor</option></select>
<button onclick="fetch('../wallet/scan',{{method:'POST',headers:{{'Content-Type':'application/json'}},
body:JSON.stringify({{code_url:'{trade_no}',payer_id:document.getElementById('p').value}})}})
.then(r=>r.json()).then(j=>document.getElementById('r').textContent=j.code||j.trade_state)">
Pay from my account</button><p id="r"></p>"""
