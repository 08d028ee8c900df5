"""The Alipay sandbox's in-memory books: payers, payment codes, trades and refunds.

Pure state and rules (no HTTP, no signing): `sandbox/alipay/server.py` verifies requests and calls
these methods. Behaviour copied from Alipay where it surprises integrators:
* a precreate QR is no trade until a payer scans it (query/close answer ACQ.TRADE_NOT_EXIST);
* a trade refunded in full becomes TRADE_CLOSED (it keeps its payment time);
* a refund is synchronous and idempotent per out_request_no (a repeat has fund_change=N);
* alipay.trade.cancel on an unknown out_trade_no voids it, so a late payment cannot land.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fulema.core.clock import clock
from fulema.sandbox.alipay.protocol import BEIJING
from fulema.sandbox.wallet import CodeRefusal, Payer, PayerBook, digits, three_codes

PASSWORD_TIMEOUT = timedelta(minutes=2)  # a 10003 payment closes if not confirmed by then
DEFAULT_EXPIRY = timedelta(minutes=90)  # Alipay's default timeout_express is 90m (当面付: 2h)
WAIT, SUCCESS, CLOSED, FINISHED = "WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_CLOSED", \
    "TRADE_FINISHED"
SUB_MESSAGES = {
    "ACQ.TRADE_HAS_SUCCESS": "交易已被支付",
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": "买家余额不足",
    "ACQ.TRADE_NOT_EXIST": "交易不存在",
    "ACQ.INVALID_PARAMETER": "参数无效",
    "ACQ.TRADE_HAS_CLOSE": "交易已经关闭",
    "ACQ.TRADE_STATUS_ERROR": "交易状态不合法",
    "ACQ.PAYMENT_AUTH_CODE_INVALID": "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款",
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": "退款金额超限",
    "ACQ.TRADE_HAS_FINISHED": "交易已结束",
    "ACQ.CONTEXT_INCONSISTENT": "交易信息被篡改",
    "ACQ.REASON_TRADE_REFUND_FEE_ERR": "退款金额无效",
    "ACQ.BUYER_NOT_EXIST": "买家不存在",
    "ACQ.TRADE_BUYER_NOT_MATCH": "交易买家不匹配",
    "isp.bill_not_exist": "账单不存在",
    "ACQ.PAYMENT_REQUEST_HAS_RISK": "支付有风险",
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR": "买家付款日限额超限",
}
# alipay.trade.pay sub_codes for a payer Alipay's risk control refuses, over the payer's
# (daily) payment limit (the sandbox compares the one payment with `limit_fen`), or short of
# balance.
REFUSALS = three_codes(risk="ACQ.PAYMENT_REQUEST_HAS_RISK",
                       limit="ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
                       balance="ACQ.BUYER_BALANCE_NOT_ENOUGH")
CODE_PREFIX, CODE_LENGTH = "28", 18  # 付款码: Alipay uses 25-30, 16-24 digits; single use


class Refusal(Exception):
    """A business failure (code 40004) with Alipay's sub_code and sub_msg."""

    def __init__(self, sub_code: str, sub_msg: str | None = None) -> None:
        self.sub_code = sub_code
        self.sub_msg = sub_msg or SUB_MESSAGES.get(sub_code, sub_code)
        super().__init__(f"{sub_code}: {self.sub_msg}")


class GatewayError(Exception):
    """A protocol-level refusal (40001/40002) answered before any business handler runs."""

    def __init__(self, code: str, sub_code: str, sub_msg: str, node: str | None = None,
                 *, signed: bool = True) -> None:
        # signed=False: Alipay cannot sign for an app it does not know (missing or unknown
        # app_id), so that answer carries no sign.
        self.code, self.sub_code, self.sub_msg, self.node = code, sub_code, sub_msg, node
        self.signed = signed
        super().__init__(sub_code)


@dataclass
class AlipayPayer(Payer):
    """An Alipay user: the payer id is the user_id (2088 + 12 digits), what Alipay calls
    buyer_id / buyer_user_id."""

    @property
    def user_id(self) -> str:
        return self.payer_id

    @property
    def logon_id(self) -> str:
        return f"{self.user_id[4:7]}******{self.user_id[-2:]}"

    def as_json(self) -> dict[str, object]:
        return {**self.view(), "buyer_logon_id": self.logon_id}


@dataclass
class Refund:
    out_request_no: str
    fen: int
    reason: str
    at: datetime


@dataclass
class Trade:
    out_trade_no: str
    total_fen: int
    subject: str
    product: str  # precreate | create | wap | pay
    notify_url: str
    expire_at: datetime
    trade_no: str = ""
    status: str = WAIT
    exists: bool = True  # False: a precreate QR nobody has scanned yet
    qr_code: str = ""
    buyer_id: str = ""
    created_at: datetime = field(default_factory=clock.now)
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    cancelled: bool = False
    refunds: dict[str, Refund] = field(default_factory=dict)
    smid: str = ""  # the indirect merchant (`sub_merchant.merchant_id`) the trade is for

    @property
    def refunded_fen(self) -> int:
        return sum(r.fen for r in self.refunds.values())

    def as_json(self) -> dict[str, object]:
        return {"out_trade_no": self.out_trade_no, "trade_no": self.trade_no,
                "trade_status": self.status if self.exists else None, "exists": self.exists,
                "total_fen": self.total_fen, "subject": self.subject, "product": self.product,
                "buyer_id": self.buyer_id or None, "qr_code": self.qr_code or None,
                "refunded_fen": self.refunded_fen, "cancelled": self.cancelled,
                "smid": self.smid or None,
                "paid_at": self.paid_at.isoformat() if self.paid_at else None,
                "refunds": [{"out_request_no": r.out_request_no, "fen": r.fen}
                            for r in self.refunds.values()]}


class Books:
    def __init__(self) -> None:
        self.wallet = PayerBook[AlipayPayer](
            AlipayPayer("2088102146225135", 100_000_000),  # 1,000,000.00 yuan
            AlipayPayer("2088102146225136", 100),  # 1.00 yuan
            AlipayPayer("2088102146225137", 10_000_000, password_required=True))
        self.trades: dict[str, Trade] = {}  # by out_trade_no
        self.by_trade_no: dict[str, Trade] = {}
        self.by_qr: dict[str, Trade] = {}

    # --- payers ------------------------------------------------------------------------------

    def add_payer(self, user_id: str | None, balance_fen: int, password_required: bool,
                  risk_refused: bool = False, limit_fen: int | None = None) -> AlipayPayer:
        return self.wallet.add(AlipayPayer(
            user_id or "2088" + digits(12), balance_fen, password_required=password_required,
            risk_refused=risk_refused, limit_fen=limit_fen))

    def issue_code(self, payer: AlipayPayer) -> str:
        return self.wallet.issue_code(payer, CODE_PREFIX, CODE_LENGTH, None)[0]

    # --- creating trades ---------------------------------------------------------------------

    def _new_trade_no(self) -> str:
        return clock.now().astimezone(BEIJING).strftime("%Y%m%d") + "22" + digits(18)

    def _existing(self, out_trade_no: str, total_fen: int) -> Trade | None:
        trade = self.trades.get(out_trade_no)
        if trade is None:
            return None
        self.expire(trade)
        if trade.status in (SUCCESS, FINISHED):
            raise Refusal("ACQ.TRADE_HAS_SUCCESS")
        if trade.status == CLOSED:
            raise Refusal("ACQ.TRADE_HAS_CLOSE")
        if trade.total_fen != total_fen:
            raise Refusal("ACQ.CONTEXT_INCONSISTENT")
        return trade

    def _add(self, trade: Trade) -> Trade:
        if not trade.trade_no:
            trade.trade_no = self._new_trade_no()
        self.trades[trade.out_trade_no] = trade
        self.by_trade_no[trade.trade_no] = trade
        return trade

    def precreate(self, trade: Trade) -> Trade:
        found = self._existing(trade.out_trade_no, trade.total_fen)
        if found is not None:
            return found  # the same order asked again: the same code
        trade.exists = False
        trade.qr_code = "https://qr.alipay.com/bax0" + secrets.token_hex(10)
        self.by_qr[trade.qr_code] = self._add(trade)
        return trade

    def create(self, trade: Trade) -> Trade:
        if trade.buyer_id not in self.wallet.payers:
            raise Refusal("ACQ.BUYER_NOT_EXIST")
        found = self._existing(trade.out_trade_no, trade.total_fen)
        return found if found is not None else self._add(trade)

    def open_wap(self, trade: Trade) -> Trade:
        """The payer's browser opened the 手机网站支付 page: the trade now exists."""
        found = self._existing(trade.out_trade_no, trade.total_fen)
        return found if found is not None else self._add(trade)

    def pay_with_code(self, trade: Trade, auth_code: str) -> Trade:
        """alipay.trade.pay: charged now, or WAIT_BUYER_PAY (10003) for a password payer.
        A refused payment leaves no trade (the cashier may retry the same out_trade_no)."""
        self._existing(trade.out_trade_no, trade.total_fen)
        payer = self.wallet.redeem(auth_code)
        if isinstance(payer, CodeRefusal):
            raise Refusal("ACQ.PAYMENT_AUTH_CODE_INVALID")
        # Refused before the password is asked for; the balance only once it is entered.
        refused = payer.refusal(trade.total_fen, balance=not payer.password_required)
        if refused is not None:
            raise Refusal(REFUSALS[refused])
        trade.buyer_id = payer.user_id
        trade.expire_at = min(trade.expire_at, clock.now() + PASSWORD_TIMEOUT)
        self._add(trade)
        if not payer.password_required:
            self._charge(trade, payer)
        return trade

    # --- paying ------------------------------------------------------------------------------

    def _charge(self, trade: Trade, payer: AlipayPayer) -> None:
        refused = payer.pay(trade.total_fen)
        if refused is not None:
            raise Refusal(REFUSALS[refused])
        trade.buyer_id, trade.status, trade.paid_at, trade.exists = (
            payer.user_id, SUCCESS, clock.now(), True)

    def find_ref(self, ref: str) -> Trade | None:
        return self.by_qr.get(ref) or self.by_trade_no.get(ref) or self.trades.get(ref)

    def scan(self, trade: Trade, user_id: str) -> Trade:
        """The payer scanned the QR / confirmed my.tradePay / paid on the wap page."""
        payer = self.wallet.get(user_id)
        if payer is None:
            raise Refusal("ACQ.BUYER_NOT_EXIST")
        self.expire(trade)
        if trade.status in (SUCCESS, FINISHED):
            raise Refusal("ACQ.TRADE_HAS_SUCCESS")
        if trade.status == CLOSED:
            raise Refusal("ACQ.TRADE_HAS_CLOSE")
        if trade.product == "create" and trade.buyer_id != user_id:
            raise Refusal("ACQ.TRADE_BUYER_NOT_MATCH")
        if trade.product == "pay":
            raise Refusal("ACQ.TRADE_STATUS_ERROR")  # confirmed through /confirm instead
        trade.exists = True  # scanning a precreate code creates the trade
        self._charge(trade, payer)
        return trade

    def confirm(self, user_id: str) -> list[Trade]:
        """The password payer confirmed in the app: every payment waiting on them settles."""
        done: list[Trade] = []
        for trade in list(self.trades.values()):
            if trade.product != "pay" or trade.buyer_id != user_id or trade.status != WAIT:
                continue
            self.expire(trade)
            if trade.status != WAIT:
                continue
            try:
                self._charge(trade, self.wallet.payers[user_id])
            except Refusal:
                trade.status, trade.closed_at = CLOSED, clock.now()
            done.append(trade)
        return done

    def expire(self, trade: Trade) -> None:
        if trade.status == WAIT and clock.now() > trade.expire_at:
            trade.status, trade.closed_at = CLOSED, clock.now()

    # --- after the payment -------------------------------------------------------------------

    def visible(self, out_trade_no: str) -> Trade:
        trade = self.trades.get(out_trade_no)
        if trade is None or not trade.exists:
            raise Refusal("ACQ.TRADE_NOT_EXIST")
        self.expire(trade)
        return trade

    def close(self, out_trade_no: str) -> Trade:
        trade = self.visible(out_trade_no)
        if trade.status in (SUCCESS, FINISHED):
            raise Refusal("ACQ.TRADE_STATUS_ERROR")
        if trade.status == WAIT:
            trade.status, trade.closed_at = CLOSED, clock.now()
        return trade

    def cancel(self, out_trade_no: str) -> tuple[Trade, str]:
        """撤销: closes an unpaid trade, reverses a paid one; the action taken ("" if none)."""
        trade = self.trades.get(out_trade_no)
        if trade is None:  # never arrived: void the number so a late payment cannot land
            trade = self._add(Trade(out_trade_no, 0, "", "void", "", clock.now()))
        self.expire(trade)
        if trade.refunds:
            raise Refusal("ACQ.REASON_TRADE_REFUND_FEE_ERR")
        if trade.status == FINISHED:
            raise Refusal("ACQ.TRADE_HAS_FINISHED")
        if trade.status == CLOSED:
            return trade, ""
        action = "close"
        if trade.status == SUCCESS:
            self.wallet.payers[trade.buyer_id].reverse(trade.total_fen,
                                trade.paid_at or clock.now())
            trade.paid_at, action = None, "refund"  # reversed: as if never paid
        trade.status, trade.closed_at, trade.cancelled = CLOSED, clock.now(), True
        trade.exists = True
        return trade, action

    def refund(self, out_trade_no: str, out_request_no: str, fen: int,
               reason: str) -> tuple[Trade, Refund, bool]:
        """(trade, refund, fund_change). A known out_request_no answers its first result."""
        trade = self.visible(out_trade_no)
        known = trade.refunds.get(out_request_no)
        if known is not None:
            if known.fen != fen:
                raise Refusal("ACQ.INVALID_PARAMETER", "退款请求号对应的退款金额不一致")
            return trade, known, False
        if trade.status == WAIT:
            raise Refusal("ACQ.TRADE_STATUS_ERROR")
        if trade.status == CLOSED:
            raise Refusal("ACQ.TRADE_HAS_CLOSE")
        if trade.status == FINISHED:
            raise Refusal("ACQ.TRADE_HAS_FINISHED")
        if fen <= 0:
            raise Refusal("ACQ.REASON_TRADE_REFUND_FEE_ERR")
        if trade.refunded_fen + fen > trade.total_fen:
            raise Refusal("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
        refund = Refund(out_request_no, fen, reason, clock.now())
        trade.refunds[out_request_no] = refund
        self.wallet.payers[trade.buyer_id].credit(fen)
        if trade.refunded_fen == trade.total_fen:
            trade.status, trade.closed_at = CLOSED, clock.now()
        return trade, refund, True
