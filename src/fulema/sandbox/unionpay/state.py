"""The UnionPay sandbox's in-memory books: payers, payer codes and transactions.

Pure state and rules (no HTTP): `sandbox/unionpay/server.py` verifies and signs messages and calls
these methods. Every transaction carries the origRespCode UnionPay would report for it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from fulema.core.clock import clock
from fulema.sandbox.unionpay.protocol import BEIJING, MESSAGES
from fulema.sandbox.unionpay.zm import CONSUME, REFUND, TRADE_CODES, VOID, render, signed_fen
from fulema.sandbox.wallet import CodeRefusal, IssuedCode, Payer, PayerBook, digits, three_codes

PASSWORD_TIMEOUT = timedelta(seconds=60)  # a payer who must enter a password has this long
QR_PREFIX = "https://qr.95516.com/00010000/"
PAYER_USER_AGENT = "UnionPay/1.0 CloudPay"  # what the payer's UnionPay app sends to a cashier

# respCodes (ACP 5.1.0 appendix) for a payer UnionPay's risk control refuses, whose payment
# is over its limit, or whose card is short: 38 银联风险受限, 33 交易金额超限, 64 卡上的余额不足.
REFUSALS = three_codes(risk="38", limit="33", balance="64")
CODE_PREFIX, CODE_LENGTH = "62", 19  # C2B码 (付款码): 19 digits starting 62, single use
# The sandbox's stand-ins for the institutions and merchant category UnionPay would report.
ACQ_INS_CODE, SEND_INS_CODE, MER_CAT_CODE = "48020000", "00010000", "5999"


class Refusal(Exception):
    """A business answer other than success, carrying UnionPay's respCode."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"{code} {MESSAGES.get(code, '')}")


@dataclass
class UnionpayPayer(Payer):
    """A UnionPay app user paying from one card."""

    card_no: str = field(default_factory=lambda: "6216" + digits(15))

    @property
    def acc_no(self) -> str:  # UnionPay shows a masked account number
        return f"{self.card_no[:6]}*********{self.card_no[-4:]}"

    def as_json(self) -> dict[str, object]:
        return {**self.view(), "acc_no": self.acc_no}


@dataclass
class Txn:
    order_id: str
    txn_type: str  # 01 consume, 04 refund, 31 void
    txn_sub_type: str  # 07 主扫 order QR (申请二维码), 06 C2B码 (payer code), 00 otherwise
    txn_time: str
    amount: int
    back_url: str
    sign_method: str
    mer_id: str
    acq_ins_code: str = ""  # set: sent in the acquirer form (accessType=1) for sub-merchant mer_id
    query_id: str = field(default_factory=lambda: clock.now().astimezone(BEIJING).strftime(
        "%Y%m%d%H%M%S") + "".join(secrets.choice("0123456789") for _ in range(7)))
    code: str = "05"  # origRespCode
    applied_only: bool = False  # a 主扫 order QR nobody has paid yet: not a transaction to query
    qr_code: str | None = None
    pay_timeout: datetime | None = None
    payer_id: str | None = None
    orig_query_id: str | None = None
    req_reserved: str = ""
    created_at: datetime = field(default_factory=clock.now)
    done_at: datetime | None = None
    trace_no: str = field(default_factory=lambda: f"{secrets.randbelow(1_000_000):06d}")
    refunded: int = 0

    @property
    def trace_time(self) -> str:
        return (self.done_at or self.created_at).astimezone(BEIJING).strftime("%m%d%H%M%S")

    @property
    def settle_date(self) -> str:
        return (self.done_at or self.created_at).astimezone(BEIJING).strftime("%m%d")

    def as_json(self) -> dict[str, object]:
        return {"orderId": self.order_id, "txnType": self.txn_type,
                "txnSubType": self.txn_sub_type, "txnTime": self.txn_time,
                "txnAmt": self.amount, "queryId": self.query_id, "origRespCode": self.code,
                "origRespMsg": MESSAGES.get(self.code, ""), "paid": self.code == "00",
                "applied_only": self.applied_only, "qrCode": self.qr_code,
                "payer_id": self.payer_id, "origQryId": self.orig_query_id,
                "refunded_fen": self.refunded}


class Books:
    def __init__(self) -> None:
        self.wallet = PayerBook[UnionpayPayer](
            UnionpayPayer("up_rich", 100_000_000), UnionpayPayer("up_poor", 100),
            UnionpayPayer("up_pin", 10_000_000, password_required=True))
        self.txns: dict[str, Txn] = {}  # by UnionPay orderId
        self.by_query_id: dict[str, Txn] = {}
        self.by_qr: dict[str, Txn] = {}

    # --- payers (the shared sandbox wallet) --------------------------------------------------

    @property
    def payers(self) -> dict[str, UnionpayPayer]:
        return self.wallet.payers

    @property
    def codes(self) -> dict[str, IssuedCode]:
        return self.wallet.codes

    def add_payer(self, payer_id: str | None, balance_fen: int, password_required: bool,
                  risk_refused: bool = False, limit_fen: int | None = None) -> UnionpayPayer:
        return self.wallet.add(UnionpayPayer(
            payer_id or f"up_{secrets.token_hex(6)}", balance_fen,
            password_required=password_required, risk_refused=risk_refused, limit_fen=limit_fen))

    def issue_code(self, payer: UnionpayPayer) -> str:
        return self.wallet.issue_code(payer, CODE_PREFIX, CODE_LENGTH, None)[0]

    # --- transactions ------------------------------------------------------------------------

    def _add(self, txn: Txn) -> Txn:
        if txn.order_id in self.txns:
            raise Refusal("12")
        self.txns[txn.order_id] = txn
        self.by_query_id[txn.query_id] = txn
        return txn

    def apply_qr(self, txn: Txn, pay_timeout: datetime | None) -> Txn:
        txn.applied_only = True
        txn.pay_timeout = pay_timeout
        txn.qr_code = QR_PREFIX + "".join(secrets.choice("0123456789") for _ in range(32))
        self.by_qr[txn.qr_code] = self._add(txn)
        return txn

    def _charge(self, txn: Txn, payer: UnionpayPayer) -> None:
        refused = payer.pay(txn.amount)
        if refused is not None:
            raise Refusal(REFUSALS[refused])
        txn.payer_id, txn.code, txn.done_at, txn.applied_only = (
            payer.payer_id, "00", clock.now(), False)

    def scan(self, qr_or_order: str, payer_id: str) -> Txn:
        txn = self.by_qr.get(qr_or_order) or self.txns.get(qr_or_order)
        if txn is None or txn.txn_sub_type != "07":
            raise Refusal("34")
        if not txn.applied_only:
            raise Refusal("12")
        if txn.pay_timeout is not None and clock.now() > txn.pay_timeout:
            raise Refusal("39")
        payer = self.wallet.get(payer_id)
        if payer is None:
            raise Refusal("61")
        self._charge(txn, payer)
        return txn

    def consume_code(self, txn: Txn, code: str) -> Txn:
        if txn.order_id in self.txns:
            raise Refusal("12")
        payer = self.wallet.redeem(code)
        if isinstance(payer, CodeRefusal):
            raise Refusal("61")
        self._add(txn)
        refused = payer.refusal(txn.amount, balance=False)  # before the password is asked for
        if refused is not None:
            txn.code, txn.done_at = REFUSALS[refused], clock.now()
            return txn
        if payer.password_required:
            txn.payer_id = payer.payer_id
            return txn  # origRespCode 05 until the payer confirms or the wait times out
        try:
            self._charge(txn, payer)
        except Refusal as refusal:
            txn.code, txn.done_at = refusal.code, clock.now()
        return txn

    def expire(self, txn: Txn) -> None:
        if txn.code == "05" and clock.now() - txn.created_at > PASSWORD_TIMEOUT:
            txn.code, txn.done_at = "69", clock.now()

    def confirm(self, payer_id: str) -> list[Txn]:
        done: list[Txn] = []
        for txn in list(self.txns.values()):
            if txn.payer_id != payer_id or txn.txn_sub_type != "06" or txn.code != "05":
                continue
            self.expire(txn)
            if txn.code == "05":
                try:
                    self._charge(txn, self.wallet.payers[payer_id])
                except Refusal as refusal:
                    txn.code, txn.done_at = refusal.code, clock.now()
                done.append(txn)
        return done

    def void(self, txn: Txn) -> Txn:
        original = self.by_query_id.get(txn.orig_query_id or "")
        if original is None or original.txn_type != "01" or original.refunded:
            raise Refusal("35")
        self.expire(original)
        if original.code not in ("00", "05"):
            raise Refusal("45" if original.code == "45" else "35")
        if txn.amount != original.amount:
            raise Refusal("36")
        self._add(txn)
        if original.code == "00" and original.payer_id:
            self.wallet.payers[original.payer_id].reverse(original.amount,
                                original.done_at or clock.now())
        original.code = "45"
        txn.code, txn.done_at, txn.req_reserved = "00", clock.now(), original.order_id
        return txn

    def refund(self, txn: Txn) -> Txn:
        original = self.by_query_id.get(txn.orig_query_id or "")
        if original is None or original.txn_type != "01":
            raise Refusal("35")
        if original.code != "00":
            raise Refusal("45" if original.code == "45" else "35")
        if txn.amount <= 0 or original.refunded + txn.amount > original.amount:
            raise Refusal("36")
        self._add(txn)
        original.refunded += txn.amount
        if original.payer_id:
            self.wallet.payers[original.payer_id].credit(txn.amount)
        txn.code, txn.done_at = "00", clock.now()
        return txn

    def find(self, order_id: str, txn_time: str) -> Txn:
        txn = self.txns.get(order_id)
        if txn is None or txn.txn_time != txn_time or txn.applied_only:
            raise Refusal("34")
        self.expire(txn)
        return txn

    # --- statement ---------------------------------------------------------------------------

    def statement(self, settle_date: str, diff: dict[str, object]) -> bytes:
        """The day's ZM 流水 file (see `sandbox.unionpay.zm`): one GBK fixed-width line per
        consume (S22), void (S30) and refund (S31) settled on `settle_date` (MMDD, Beijing).

        Besides `_apply_diff_and_render`'s injections: cross_day_order_ids moves those lines
        past midnight into the next day's file; status_order_ids lists consumes the sandbox
        holds unpaid as paid at noon."""
        moved = _listed(diff, "cross_day_order_ids")
        rows = [r for r in self._rows_for(settle_date) if r["orderId"] not in moved]
        if moved:
            rows += [{**r, "txnTime": f"{settle_date}000001"}
                     for r in self._rows_for(_day_before(settle_date)) if r["orderId"] in moved]
        for order_id in sorted(_listed(diff, "status_order_ids")):
            txn = self.txns.get(order_id)
            if txn is not None and txn.txn_type == "01" and txn.code != "00":
                rows.append({**self._row_of(txn), "txnTime": f"{settle_date}120000"})
        return _apply_diff_and_render(rows, diff, settle_date)

    def _rows_for(self, settle_date: str) -> list[dict[str, str]]:
        return [self._row_of(txn) for txn in self.txns.values()
                if txn.done_at is not None and txn.settle_date == settle_date
                and txn.code in ("00", "45") and not (txn.txn_type == "01" and txn.applied_only)]

    def _row_of(self, txn: Txn) -> dict[str, str]:
        original = self.by_query_id.get(txn.orig_query_id or "")
        return {
            "tradeNo": TRADE_CODES[txn.txn_type], "acqInsCode": ACQ_INS_CODE,
            "sendInsCode": SEND_INS_CODE, "traceNo": txn.trace_no,
            "txnTime": txn.trace_time,
            "payCardNo": self.wallet.payers[txn.payer_id].acc_no if txn.payer_id else "",
            "txnAmt": str(txn.amount), "merCatCode": MER_CAT_CODE,
            "queryId": txn.query_id, "orderId": txn.order_id,
            "payCardType": "01" if txn.payer_id else "",
            "origTradeSysTraceNo": original.trace_no if original else "",
            "origTradeTime": original.trace_time if original else "",
            "txnType": txn.txn_type, "txnSubType": txn.txn_sub_type, "bizType": "000000",
            "origQryId": txn.orig_query_id or "", "merId": txn.mer_id}


def _listed(diff: dict[str, object], key: str) -> set[str]:
    raw = diff.get(key)
    return {str(x) for x in raw} if isinstance(raw, list) else set()


def _day_before(mmdd: str) -> str:
    """MMDD of the day before (a leap year, so 0301 -> 0229 exists; a missing day is empty)."""
    return (date(2000, int(mmdd[:2]), int(mmdd[2:])) - timedelta(days=1)).strftime("%m%d")


def _amounts(row: dict[str, str], fen: int) -> None:
    """txnAmt, and the signed settleAmt/settleNetAmt (no fee in the sandbox: merCharge 0)."""
    signed = -fen if row["tradeNo"] in (VOID, REFUND) else fen
    row.update(txnAmt=str(fen), merCharge=signed_fen(0), settleAmt=signed_fen(signed),
               settleNetAmt=signed_fen(signed))


def _apply_diff_and_render(rows: list[dict[str, str]], diff: dict[str, object],
                           settle_date: str) -> bytes:
    """Reconciliation tests inject differences: dropped rows, changed amounts, phantom rows."""
    raw_drop = diff.get("drop_order_ids")
    drop = {str(x) for x in raw_drop} if isinstance(raw_drop, list) else set()
    raw_overrides = diff.get("amount_overrides")
    overrides = ({str(k): v for k, v in raw_overrides.items()}
                 if isinstance(raw_overrides, dict) else {})
    rows = [r for r in rows if r["orderId"] not in drop]
    for row in rows:
        _amounts(row, int(overrides.get(row["orderId"], row["txnAmt"])))
    extra = diff.get("extra_rows", 0)
    for i in range(int(extra) if isinstance(extra, int) else 0):
        phantom = {"tradeNo": CONSUME, "acqInsCode": ACQ_INS_CODE, "sendInsCode": SEND_INS_CODE,
                   "traceNo": f"{i:06d}", "txnTime": f"{settle_date}000000",
                   "merCatCode": MER_CAT_CODE, "queryId": f"{i:021d}",
                   "orderId": f"PHANTOM{settle_date}{i:04d}", "txnType": "01",
                   "txnSubType": "06", "bizType": "000000", "merId": ""}
        _amounts(phantom, 100)
        rows.append(phantom)
    return render(sorted(rows, key=lambda r: (r["txnTime"], r["orderId"])))
