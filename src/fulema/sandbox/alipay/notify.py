"""Alipay's asynchronous notifications (trade_status_sync), as the sandbox sends them.

A form POST to the order's notify_url, signed over the sorted fields without sign and
sign_type, delivered from a background task after the API call has answered, and retried
until the receiver answers exactly `success` (Alipay retries over about 25 hours; the sandbox
over a few seconds so tests stay fast).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.core.clock import clock
from fulema.core.money import Money
from fulema.sandbox.alipay.books import Books, Trade
from fulema.sandbox.alipay.protocol import SIGN_TYPE, VERSION, beijing_time, notify_sign

NOTIFY_DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0)  # seconds before each delivery attempt


class Notifier:
    def __init__(self, http: httpx.AsyncClient, key: rsa.RSAPrivateKey, app_id: str,
                 seller_id: str, books: Books) -> None:
        self.http, self.key, self.app_id, self.seller_id, self.books = (
            http, key, app_id, seller_id, books)
        self.tasks: set[asyncio.Task[None]] = set()

    def notify_fields(self, trade: Trade, refund_no: str | None = None) -> dict[str, str]:
        yuan = Money(trade.total_fen).to_yuan()
        payer = self.books.wallet.get(trade.buyer_id)
        fields = {"notify_time": beijing_time(clock.now()), "notify_type": "trade_status_sync",
                  "notify_id": secrets.token_hex(16), "charset": "utf-8", "version": VERSION,
                  "sign_type": SIGN_TYPE, "app_id": self.app_id, "auth_app_id": self.app_id,
                  "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                  "seller_id": self.seller_id, "trade_status": trade.status,
                  "total_amount": yuan, "subject": trade.subject,
                  "gmt_create": beijing_time(trade.created_at)}
        if trade.buyer_id:
            fields.update(buyer_id=trade.buyer_id,
                          buyer_logon_id=payer.logon_id if payer else "")
        if trade.paid_at is not None:
            fields.update(receipt_amount=yuan, buyer_pay_amount=yuan, invoice_amount=yuan,
                          point_amount="0.00", gmt_payment=beijing_time(trade.paid_at),
                          fund_bill_list=json.dumps([{"amount": yuan,
                                                      "fundChannel": "ALIPAYACCOUNT"}]))
        if trade.closed_at is not None:
            fields["gmt_close"] = beijing_time(trade.closed_at)
        if refund_no is not None:
            refund = trade.refunds[refund_no]
            fields.update(out_biz_no=refund_no,
                          refund_fee=Money(trade.refunded_fen).to_yuan(),
                          gmt_refund=beijing_time(refund.at) + ".000")
        fields["sign"] = notify_sign(fields, self.key)
        return fields

    def notify(self, trade: Trade, refund_no: str | None = None) -> None:
        if not trade.notify_url:
            return
        body = urlencode(self.notify_fields(trade, refund_no))
        task = asyncio.create_task(self._deliver(trade.notify_url, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, body: str) -> None:
        for delay in NOTIFY_DELAYS:
            await asyncio.sleep(delay)
            try:
                resp = await self.http.post(url, content=body, timeout=5.0, headers={
                    "Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
            except httpx.HTTPError:
                continue
            if resp.text.strip() == "success":
                return
