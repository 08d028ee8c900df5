"""Routes of the e-CNY sandbox: the institution's API (signed) and the payer wallet (plain)."""

from __future__ import annotations

import csv
import html
import io
import secrets
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from fulema.core.clock import clock
from fulema.sandbox.ecny.security import CST as ECNY_TZ
from fulema.sandbox.ecny.security import mask_wallet
from fulema.sandbox.ecny.server import PAID, EcnySandbox, Order, Refund, err, iso, ok
from fulema.sandbox.ecny.wallet import WALLET_LEVELS
from fulema.sandbox.json_common import (
    Result,
    answer,
    new_payer,
    order_fields,
    payer_code,
    positive_int,
    read_json,
    refuse,
    set_faults,
)
from fulema.sandbox.wallet import CodeRefusal, parse_rules

BILL_COLUMNS = ["bill_date", "trade_time", "merchant_id", "record_type", "out_trade_no",
                "trade_no", "out_refund_no", "refund_no", "way_code", "amount_fen", "fee_fen",
                "net_fen", "wallet_masked", "wallet_level", "status", "sub_merchant_id"]


def create(sb: EcnySandbox, body: dict[str, Any]) -> Result:
    way = body.get("way_code")
    if way not in ("QR_DYNAMIC", "QR_STATIC"):
        return err(400, "PARAM_INVALID", "way_code must be QR_DYNAMIC or QR_STATIC")
    bad = order_fields(body) or sb.partner_refusal(body) or sb.check_payee(body)
    if bad:
        return bad
    found = sb.orders.get(body["out_trade_no"])
    if found is not None:
        if found.amount_fen != body["amount_fen"] or found.way_code != way:
            return err(409, "ORDER_EXISTS", "out_trade_no was used with other parameters")
        return ok(sb.order_view(found))
    o = sb.new_order(body, way)
    o.code_url = f"{sb.public}/qr/{o.trade_no}"
    sb.orders[o.out_trade_no] = o
    return ok(sb.order_view(o))


def micropay(sb: EcnySandbox, body: dict[str, Any]) -> Result:
    bad = order_fields(body) or sb.partner_refusal(body) or sb.check_payee(body)
    if bad:
        return bad
    code = body.get("auth_code")
    if not isinstance(code, str) or not code:
        return err(400, "PARAM_INVALID", "auth_code is required")
    if body["out_trade_no"] in sb.revoked:
        return err(409, "ORDER_REVOKED", "this out_trade_no was reversed")
    found = sb.orders.get(body["out_trade_no"])
    if found is not None:
        if found.amount_fen != body["amount_fen"] or found.auth_code != code:
            return err(409, "ORDER_EXISTS", "out_trade_no was used with other parameters")
        return ok(sb.order_view(found))
    o = sb.new_order(body, "BARCODE")
    sb.orders[o.out_trade_no] = o
    wallet = sb.wallet.redeem(code)
    if len(code) != 19 or not code.startswith("01") or not code.isdigit() \
            or wallet is CodeRefusal.UNKNOWN:
        sb.fail(o, "PAYER_CODE_INVALID", "unknown or already used payer code")
    elif isinstance(wallet, CodeRefusal):
        sb.fail(o, "PAYER_CODE_EXPIRED", "the payer code has expired; refresh it in the wallet")
    else:
        o.wallet = wallet
        if wallet.password_required:
            o.status = "USER_PAYING"
        else:
            refusal = sb.try_pay(o, wallet)
            if refusal is not None:
                sb.fail(o, *refusal)
    return ok(sb.order_view(o))


def close(sb: EcnySandbox, no: str, *, reverse: bool, sub: object = None) -> Result:
    o = sb.mine(sb.orders.get(no), sub)
    if o is None:
        if reverse:  # reversed before it arrived: refuse a late payment with this number
            sb.revoked.add(no)
            return ok({"merchant_id": sb.ecny.merchant_id, "out_trade_no": no,
                       "trade_status": "REVOKED"})
        return err(404, "ORDER_NOT_FOUND", "no such order")
    sb.refresh(o)
    if o.status in ("REFUND_PART", "REFUND_FULL"):
        return err(409, "ORDER_REFUNDED", "a refunded order cannot be closed or reversed")
    if o.status == "SUCCESS":
        if not reverse:
            return err(409, "ORDER_PAID", "the order is paid; refund it instead")
        assert o.wallet is not None
        o.wallet.reverse(o.amount_fen, o.success_at or clock.now())
        now = clock.now()
        r = Refund(f"REVERSE-{no}", f"ER{secrets.token_hex(8).upper()}", o, o.amount_fen,
                   "reverse", "REVERSE", now, None, status="SUCCESS", success_at=now)
        sb.refunds[r.out_refund_no] = r
        o.refunded_fen = o.amount_fen
        o.status = "REVOKED"
    elif o.status in ("WAIT_PAY", "USER_PAYING") or (reverse and o.status in ("FAILED", "CLOSED")):
        o.status = "REVOKED" if reverse else "CLOSED"
    return ok(sb.order_view(o))


def refund(sb: EcnySandbox, body: dict[str, Any]) -> Result:
    no, rno = body.get("out_trade_no"), body.get("out_refund_no")
    amount, total = positive_int(body, "refund_fen"), positive_int(body, "total_fen")
    if not isinstance(no, str) or not isinstance(rno, str) or not 6 <= len(rno) <= 64:
        return err(400, "PARAM_INVALID", "out_trade_no and out_refund_no (6-64) are required")
    if amount is None or total is None:
        return err(400, "PARAM_INVALID", "refund_fen and total_fen must be positive integers")
    o = sb.mine(sb.orders.get(no), body.get("sub_merchant_id"))
    if o is None:
        return err(404, "ORDER_NOT_FOUND", "no such order")
    found = sb.refunds.get(rno)
    if found is not None:
        if found.order is not o or found.refund_fen != amount:
            return err(409, "REFUND_EXISTS", "out_refund_no was used with other parameters")
        return ok(sb.refund_view(found))
    sb.refresh(o)
    if o.status not in PAID or o.wallet is None:
        return err(409, "ORDER_NOT_PAID", f"the order is {o.status}")
    if total != o.amount_fen:
        return err(400, "PARAM_INVALID", "total_fen does not match the order amount")
    if amount > o.amount_fen - o.refunded_fen:
        return err(409, "REFUND_AMOUNT_EXCEEDED", "more than is left to refund")
    r = Refund(rno, f"ER{secrets.token_hex(8).upper()}", o, amount,
               str(body.get("reason", ""))[:80], "REFUND", clock.now(),
               body.get("notify_url") or o.notify_url)
    sb.refunds[rno] = r
    o.refunded_fen += amount
    o.status = "REFUND_FULL" if o.refunded_fen == o.amount_fen else "REFUND_PART"
    sb.spawn(sb.settle_refund(r))
    return ok(sb.refund_view(r))


# ------------------------------------------------------------------ bill file

def bill_rows(sb: EcnySandbox, day: date) -> list[dict[str, Any]]:
    """The day's bill, then the injected differences (`statement_diff`): drop, amount, extra,
    status (orders the operator holds unpaid listed as paid at noon) and cross_day (rows moved
    past midnight into the next day's bill); keys are out_refund_no, else out_trade_no."""
    diff = sb.faults.statement_diff
    moved = {str(k) for k in diff.get("cross_day", [])}
    rows = [r for r in _day_rows(sb, day) if (r["out_refund_no"] or r["out_trade_no"]) not in moved]
    if moved:
        rows += [{**r, "bill_date": day.isoformat(), "trade_time": "00:00:01"}
                 for r in _day_rows(sb, day - timedelta(days=1))
                 if (r["out_refund_no"] or r["out_trade_no"]) in moved]
    noon = datetime.combine(day, datetime.min.time(), ECNY_TZ) + timedelta(hours=12)
    for no in diff.get("status", []):
        o = sb.orders.get(str(no))
        if o is not None and not o.success_at:
            rows.append(_row(sb, o, noon, "PAY", None, o.amount_fen))
    return _apply_bill_diff(sb, day, rows)


def _day_rows(sb: EcnySandbox, day: date) -> list[dict[str, Any]]:
    rows = [_row(sb, o, o.success_at, "PAY", None, o.amount_fen)
            for o in sb.orders.values()
            if o.success_at and o.success_at.astimezone(ECNY_TZ).date() == day]
    rows += [_row(sb, r.order, r.success_at, r.record_type, r, r.refund_fen)
             for r in sb.refunds.values()
             if r.status == "SUCCESS" and r.success_at
             and r.success_at.astimezone(ECNY_TZ).date() == day]
    return rows


def _apply_bill_diff(sb: EcnySandbox, day: date, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    diff = sb.faults.statement_diff
    drop, amounts = set(diff.get("drop", [])), diff.get("amount", {})
    kept = []
    for row in rows:
        key = row["out_refund_no"] or row["out_trade_no"]
        if key in drop:
            continue
        if key in amounts:
            row["amount_fen"] = int(amounts[key])
            row["net_fen"] = row["amount_fen"] * (1 if row["record_type"] == "PAY" else -1)
        kept.append(row)
    noon = datetime.combine(day, datetime.min.time(), ECNY_TZ) + timedelta(hours=12)
    for extra in diff.get("extra", []):
        ghost = Order(str(extra["out_trade_no"]), f"EC{secrets.token_hex(6)}",
                      int(extra["amount_fen"]), "", "QR_DYNAMIC", None, noon, noon)
        kept.append(_row(sb, ghost, noon, "PAY", None, ghost.amount_fen))
    kept.sort(key=lambda r: (r["trade_time"], r["out_trade_no"], r["record_type"]))
    return kept


def _row(sb: EcnySandbox, o: Order, at: datetime | None, kind: str, r: Refund | None,
         amount: int) -> dict[str, Any]:
    assert at is not None
    local = at.astimezone(ECNY_TZ)
    return {"bill_date": local.date().isoformat(), "trade_time": local.strftime("%H:%M:%S"),
            "merchant_id": sb.ecny.merchant_id, "record_type": kind,
            "out_trade_no": o.out_trade_no, "trade_no": o.trade_no,
            "out_refund_no": r.out_refund_no if r else "", "refund_no": r.refund_no if r else "",
            "way_code": o.way_code, "amount_fen": amount, "fee_fen": 0,
            "net_fen": amount if kind == "PAY" else -amount,
            "wallet_masked": mask_wallet(o.wallet.wallet_id) if o.wallet else "",
            "wallet_level": o.wallet.level if o.wallet else "", "status": "SUCCESS",
            "sub_merchant_id": o.sub_merchant_id}


def bill_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=BILL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


# ------------------------------------------------------------------ routes

def install_api(app: FastAPI, sb: EcnySandbox) -> None:
    @app.post("/v1/orders")
    async def create_route(request: Request) -> Response:
        return await sb.api(request, lambda b: create(sb, b))

    @app.post("/v1/orders/micropay")
    async def micropay_route(request: Request) -> Response:
        return await sb.api(request, lambda b: micropay(sb, b))

    @app.get("/v1/orders/{no}")
    async def query_route(no: str, request: Request) -> Response:
        def handle(_: dict[str, Any]) -> Result:
            o = sb.mine(sb.orders.get(no), request.query_params.get("sub_merchant_id"))
            return ok(sb.order_view(o)) if o else err(404, "ORDER_NOT_FOUND", "no such order")
        return await sb.api(request, handle)

    @app.post("/v1/orders/{no}/close")
    async def close_route(no: str, request: Request) -> Response:
        return await sb.api(request, lambda b: close(sb, no, reverse=False,
                                                     sub=b.get("sub_merchant_id")))

    @app.post("/v1/orders/{no}/reverse")
    async def reverse_route(no: str, request: Request) -> Response:
        return await sb.api(request, lambda b: close(sb, no, reverse=True,
                                                     sub=b.get("sub_merchant_id")))

    @app.post("/v1/refunds")
    async def refund_route(request: Request) -> Response:
        return await sb.api(request, lambda b: refund(sb, b))

    @app.get("/v1/refunds/{rno}")
    async def refund_query_route(rno: str, request: Request) -> Response:
        def handle(_: dict[str, Any]) -> Result:
            r = sb.refunds.get(rno)
            if r is not None and not sb.mine(r.order, request.query_params.get("sub_merchant_id")):
                r = None  # another merchant's (or the other form's) refund
            return ok(sb.refund_view(r)) if r else err(404, "REFUND_NOT_FOUND", "no such refund")
        return await sb.api(request, handle)

    @app.get("/v1/bills/{day}")
    async def bill_route(day: str, request: Request) -> Response:
        try:
            when: date | None = datetime.strptime(day, "%Y%m%d").replace(tzinfo=ECNY_TZ).date()
        except ValueError:
            when = None
        made: list[bytes] = []

        def handle(_: dict[str, Any]) -> Result:
            if when is None:
                return err(400, "PARAM_INVALID", "the day is yyyymmdd")
            made.append(bill_csv(bill_rows(sb, when)))
            return 200, {}
        resp = await sb.api(request, handle)
        if made and resp.status_code == 200:
            return sb.signed(200, made[0], "text/csv; charset=utf-8")
        return resp


def _no(code: str, message: str, status: int) -> Response:
    return refuse(status, code, message)


def install_wallet(app: FastAPI, sb: EcnySandbox) -> None:
    @app.post("/wallet/payers")
    async def add_payer(request: Request) -> Response:
        body = await read_json(request)
        level = body.get("wallet_level", 2)
        fields = new_payer(body, sb.wallet.payers, lambda: f"payer_{secrets.token_hex(4)}",
                           check=lambda: None if level in WALLET_LEVELS else
                           _no("PARAM_INVALID", "wallet_level is 1, 2, 3 or 4", 400))
        if isinstance(fields, Response):
            return fields
        pid, balance = fields
        cap = WALLET_LEVELS[level].balance
        if cap is not None and balance > cap:
            return _no("WALLET_BALANCE_LIMIT", f"a level-{level} wallet holds at most {cap} fen",
                       400)
        rules = parse_rules(body)
        if isinstance(rules, str):
            return _no("PARAM_INVALID", rules, 400)
        name = body.get("payer_name", None if level == 4 else "测*")
        w = sb.add_wallet(pid, balance, level=level, name=name,
                          password_required=bool(body.get("password_required")),
                          risk_refused=rules[0], limit_fen=rules[1])
        return answer(w.view())

    @app.get("/wallet/payers/{pid}")
    async def get_payer(pid: str) -> Response:
        w = sb.wallet.get(pid)
        if w is None:
            return _no("PAYER_NOT_FOUND", pid, 404)
        return answer({**w.view(), "paid_today_fen": w.paid_today()})

    @app.post("/wallet/payers/{pid}/close")
    async def close_wallet(pid: str) -> Response:
        w = sb.wallet.get(pid)
        if w is None:
            return _no("PAYER_NOT_FOUND", pid, 404)
        w.frozen = True
        return answer(w.view())

    @app.post("/wallet/payers/{pid}/code")
    async def code(pid: str) -> Response:
        return payer_code(pid, sb.wallet.get(pid), sb.issue_code, iso)

    @app.post("/wallet/payers/{pid}/confirm")
    async def confirm(pid: str, request: Request) -> Response:
        body = await read_json(request)
        for o in sb.orders.values():
            sb.refresh(o)
        waiting = [o for o in sb.orders.values() if o.status == "USER_PAYING" and o.wallet
                   and o.wallet.payer_id == pid
                   and body.get("out_trade_no") in (None, o.out_trade_no)]
        if not waiting:
            return _no("NOTHING_TO_CONFIRM", "no payment awaits this payer", 404)
        o = waiting[-1]
        if body.get("approve", True) is False:
            sb.fail(o, "PAYER_DECLINED", "the payer declined in the wallet")
        else:
            refusal = sb.try_pay(o, sb.wallet.payers[pid])
            if refusal is not None:
                sb.fail(o, *refusal)
        return answer(sb.order_view(o))

    @app.post("/wallet/scan")
    async def scan(request: Request) -> Response:
        body = await read_json(request)
        ref = str(body.get("code_url") or "").split("?")[0].rsplit("/", 1)[-1]
        o = next((x for x in sb.orders.values() if (ref and x.trade_no == ref)
                  or x.out_trade_no == body.get("out_trade_no")), None)
        w = sb.wallet.get(str(body.get("payer_id", "payer_rich")))
        if o is None or o.way_code == "BARCODE":
            return _no("ORDER_NOT_FOUND", "no such QR order", 404)
        if w is None:
            return _no("PAYER_NOT_FOUND", "no such payer", 404)
        sb.refresh(o)
        if o.status != "WAIT_PAY":
            return _no(f"ORDER_{o.status}", f"the order is {o.status}", 409)
        refusal = sb.try_pay(o, w)
        if refusal is not None:
            # The wallet refuses this attempt; the QR order stays payable (another wallet,
            # a top-up, tomorrow's limit) and shows the last refusal as its error_code.
            o.error_code, o.error_message = refusal
            return _no(*refusal, 409)
        return answer({"code": "SUCCESS", **sb.order_view(o)})

    @app.get("/wallet/lookup")
    async def lookup(ref: str = "") -> Response:
        """What the payer's app shows on its confirm sheet (sandbox/appshell): the order a
        payment reference names, in one shape for every sandbox."""
        trade_no = ref.split("?")[0].rsplit("/", 1)[-1]
        o = next((x for x in sb.orders.values() if trade_no and x.trade_no == trade_no), None)
        if o is None:
            return _no("ORDER_NOT_FOUND", "no such QR order", 404)
        sb.refresh(o)
        return answer({"amount_fen": o.amount_fen, "subject": o.subject,
                       "payable": o.status == "WAIT_PAY"})

    @app.post("/wallet/faults")
    async def faults(request: Request) -> Response:
        return set_faults(sb.faults, await read_json(request), "PARAM_INVALID")

    @app.get("/wallet/orders/{no}")
    async def order(no: str) -> Response:
        o = sb.orders.get(no)
        if o is None:
            return _no("ORDER_NOT_FOUND", no, 404)
        view = sb.order_view(o)
        if o.wallet is not None:
            view["payer_id"] = o.wallet.payer_id  # the sandbox may say who paid; the API never
        view["refunds"] = [sb.refund_view(r) for r in sb.refunds.values() if r.order is o]
        return answer(view)

    @app.get("/qr/{trade_no}")
    async def qr_page(trade_no: str) -> HTMLResponse:
        """What a code_url opens on a phone in the demo: pay from a sandbox wallet."""
        o = next((x for x in sb.orders.values() if x.trade_no == trade_no), None)
        if o is None:
            return HTMLResponse("<h1>No such order</h1>", 404)
        amount = f"{o.amount_fen // 100}.{o.amount_fen % 100:02d}"
        return HTMLResponse(_PAGE.format(subject=html.escape(o.subject), amount=amount,
                                         trade_no=html.escape(trade_no)))


_PAGE = """<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>e-CNY wallet (sandbox)</title><h2>{subject}</h2><p>e-CNY ¥{amount}</p>
<select id="p"><option>payer_rich</option><option>payer_anon</option></select>
<button onclick="fetch('../wallet/scan',{{method:'POST',headers:{{'Content-Type':'application/json'}},
body:JSON.stringify({{code_url:'{trade_no}',payer_id:document.getElementById('p').value}})}})
.then(r=>r.json()).then(j=>document.getElementById('r').textContent=j.code||j.trade_status)">
Pay with e-CNY</button><p id="r"></p>"""
