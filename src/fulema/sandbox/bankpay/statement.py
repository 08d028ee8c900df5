"""The bankpay sandbox's daily statement (对账单): the day's bookings as the bank's CSV.

Kept apart from the bank's state because it is reconciliation's input, with its own column
layout and the injected differences (`statement_diff` fault) that reconciliation tests need:
``{"drop": [key], "amount": {key: fen}, "extra": [{"out_trade_no", "amount_fen"}],
"status": [out_trade_no], "cross_day": [key]}`` (key: out_refund_no, else out_trade_no);
`status` lists orders the bank holds unpaid as paid at noon, `cross_day` moves those rows past
midnight into the next day's statement.
"""

from __future__ import annotations

import csv
import io
import secrets
from datetime import date, datetime, timedelta
from typing import Any

from fulema.core.clock import clock
from fulema.sandbox.bankpay.protocol import CST as BANK_TZ
from fulema.sandbox.bankpay.state import BankpaySandbox, Order

STATEMENT_COLUMNS = ["trade_date", "trade_time", "merchant_no", "record_type", "out_trade_no",
                     "trade_no", "out_refund_no", "refund_no", "way_code", "amount_fen",
                     "fee_fen", "settle_fen", "settle_date", "same_day_settlement",
                     "payer_account", "state", "sub_merchant_id"]


def statement_rows(sb: BankpaySandbox, day: date) -> list[dict[str, Any]]:
    """The day's bookings (China Standard Time): payments and reversals, then the diff."""
    diff = sb.faults.statement_diff
    moved = {str(k) for k in diff.get("cross_day", [])}
    rows = [r for r in _day_rows(sb, day) if _key(r) not in moved]
    if moved:
        late = {"trade_date": day.isoformat(), "trade_time": "00:00:01",
                "settle_date": day.isoformat()}
        rows += [{**r, **late} for r in _day_rows(sb, day - timedelta(days=1))
                 if _key(r) in moved]
    noon = datetime.combine(day, datetime.min.time(), BANK_TZ) + timedelta(hours=12)
    for no in diff.get("status", []):
        o = sb.orders.get(str(no))
        if o is not None and not o.success_at:
            rows.append(_row(sb, o, noon, "PAY", "", "", o.amount_fen))
    return _apply_diff(sb, day, rows)


def _key(row: dict[str, Any]) -> str:
    return str(row["out_refund_no"] or row["out_trade_no"])


def _day_rows(sb: BankpaySandbox, day: date) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for o in sb.orders.values():
        if o.success_at and o.success_at.astimezone(BANK_TZ).date() == day and o.payer:
            rows.append(_row(sb, o, o.success_at, "PAY", "", "", o.amount_fen))
    for r in sb.refunds.values():
        if r.success_at.astimezone(BANK_TZ).date() == day:
            rows.append(_row(sb, r.order, r.success_at, r.record_type, r.out_refund_no,
                             r.refund_no, r.refund_fen))
    return rows


def _apply_diff(sb: BankpaySandbox, day: date, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    diff = sb.faults.statement_diff
    drop = set(diff.get("drop", []))
    amounts = diff.get("amount", {})
    kept = []
    for row in rows:
        key = row["out_refund_no"] or row["out_trade_no"]
        if key in drop:
            continue
        if key in amounts:
            row["amount_fen"] = int(amounts[key])
            row["settle_fen"] = row["amount_fen"] * (1 if row["record_type"] == "PAY" else -1)
        kept.append(row)
    for extra in diff.get("extra", []):
        fake = Order(str(extra["out_trade_no"]), f"BP{secrets.token_hex(6)}",
                     int(extra["amount_fen"]), "", "QR_DYNAMIC", None, clock.now(), clock.now())
        payer = next(iter(sb.wallet.payers.values()))
        fake.payer = payer
        at = datetime.combine(day, datetime.min.time(), BANK_TZ) + timedelta(hours=12)
        kept.append(_row(sb, fake, at, "PAY", "", "", fake.amount_fen))
    kept.sort(key=lambda r: (r["trade_date"], r["trade_time"], r["out_trade_no"]))
    return kept


def _row(sb: BankpaySandbox, o: Order, at: datetime, kind: str, rno: str, refund_no: str,
         amount: int) -> dict[str, Any]:
    local = at.astimezone(BANK_TZ)
    return {"trade_date": local.date().isoformat(), "trade_time": local.strftime("%H:%M:%S"),
            "merchant_no": sb.bank.merchant_no, "record_type": kind,
            "out_trade_no": o.out_trade_no, "trade_no": o.trade_no, "out_refund_no": rno,
            "refund_no": refund_no, "way_code": o.way_code, "amount_fen": amount, "fee_fen": 0,
            "settle_fen": amount if kind == "PAY" else -amount,
            "settle_date": local.date().isoformat(), "same_day_settlement": "true",
            "payer_account": o.payer.masked()["account_masked"] if o.payer else "",
            "state": "SUCCESS", "sub_merchant_id": o.sub_merchant_id}


def statement_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STATEMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
