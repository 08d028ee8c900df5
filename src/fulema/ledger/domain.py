"""Posting rules: what each business event writes to the books, as pure functions.

Every rule returns a list of `Line`s (account, line kind, signed fen) whose amounts sum to zero:
debits are positive, credits negative, one currency (CNY). Nothing here does I/O; the handler in
`ledger.postings` reads the event, asks these rules and writes the result in one transaction.

Accounts (`Account.code`): `channel_receivable:<channel>` (what a channel owes us),
`merchant_payable:<merchant>` (what we owe a merchant; a credit balance),
`fee_income` (our fees), `marketing_expense:<funder>` (discounts the platform funds),
`settlement_in_transit` (settled to a merchant, payout not yet confirmed by the bank),
`bank_clearing` (the platform's clearing account at the bank: payouts leave it),
`reconciliation_differences` (differences with a channel no merchant is owed).

Rounding: a fee is `cash * bps / 10000` rounded half-up per transaction (`Money.times_bps`).
A refund gives back fee in proportion to its cash share, computed on the running total so that
the refunds of a fully refunded payment give back exactly its fee:
`fee_back(k) = round_half_up(fee * cash_refunded_through_k / cash) - fee_back_so_far`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money

CURRENCY = "CNY"
# China Standard Time has no daylight saving: a fixed offset is Asia/Shanghai exactly.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


def business_date(at: datetime, cutoff: time) -> date:
    """The trade (business) date of an instant: its date in Asia/Shanghai, or the next day at
    and after the day's cut-off (a 22:00 cut-off books 22:00-24:00 on the next day; 00:00
    means the natural day)."""
    local = at.astimezone(SHANGHAI)
    if cutoff != time(0) and local.time().replace(tzinfo=None) >= cutoff:
        return local.date() + timedelta(days=1)
    return local.date()


class AccountKind(enum.StrEnum):
    CHANNEL_RECEIVABLE = "channel_receivable"
    MERCHANT_PAYABLE = "merchant_payable"
    FEE_INCOME = "fee_income"
    MARKETING_EXPENSE = "marketing_expense"
    SETTLEMENT_IN_TRANSIT = "settlement_in_transit"
    REFUNDS_IN_TRANSIT = "refunds_in_transit"
    BANK_CLEARING = "bank_clearing"
    RECONCILIATION_DIFFERENCES = "reconciliation_differences"


def account(kind: AccountKind, key: str | None = None) -> str:
    """An account's code: the kind, and for per-party kinds the party (`merchant_payable:M1`)."""
    return f"{kind.value}:{key}" if key else kind.value


def kind_of(code: str) -> AccountKind:
    return AccountKind(code.split(":", 1)[0])


class LineKind(enum.StrEnum):
    """What a line is, so a merchant's statement reads from the books without guessing."""

    GROSS = "gross"  # the order's amount, credited to the merchant
    CASH = "cash"  # what the channel collected (receivable)
    DISCOUNT = "discount"  # a discount, on its funder's account
    FEE = "fee"
    REFUND = "refund"  # a refund's amount in the order's terms
    DISCOUNT_BACK = "discount_back"  # the discount share a refund gives back to its funder
    FEE_BACK = "fee_back"
    REFUND_CASH = "refund_cash"  # what the channel paid back to the payer
    # a refund's cash accepted, not yet confirmed by the channel: held from the merchant's
    # payable in refunds in transit, released when the channel confirms or refuses
    REFUND_IN_TRANSIT = "refund_in_transit"
    SETTLEMENT = "settlement"
    PAYOUT = "payout"
    PAYOUT_RETURNED = "payout_returned"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True)
class Line:
    account: str
    kind: LineKind
    fen: int


@dataclass(frozen=True)
class Discount:
    funder: str  # "platform" | "merchant"
    fen: int


def _discounts(raw: object) -> list[Discount]:
    """The payload's `discounts` list (marketing's shape), checked: a bad one stops the
    consumer rather than being booked wrongly."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "discounts: a list")
    out: list[Discount] = []
    for d in raw:
        if not isinstance(d, dict) or d.get("funder") not in {"platform", "merchant"}:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, "discounts: funder platform|merchant")
        fen = Money.of(d.get("amount")).fen
        if fen < 0:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, "discounts: amount >= 0")
        out.append(Discount(funder=str(d["funder"]), fen=fen))
    return out


@dataclass(frozen=True)
class PaymentFacts:
    """A succeeded payment as the ledger needs it (from `payment.succeeded`)."""

    merchant_id: str
    channel: str
    amount: int  # the order's total in fen
    cash: int  # what the channel collected (payable_amount)
    platform_discount: int
    merchant_discount: int

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> PaymentFacts:
        amount = Money.of(payload["amount"]).fen
        cash = Money.of(payload.get("payable_amount", amount)).fen
        ds = _discounts(payload.get("discounts", []))
        platform = sum(d.fen for d in ds if d.funder == "platform")
        merchant = sum(d.fen for d in ds if d.funder == "merchant")
        if amount <= 0 or cash < 0 or cash + platform + merchant != amount:
            raise FulemaError(ErrorCode.VALIDATION_ERROR,
                              f"payment: cash {cash} + discounts {platform + merchant} "
                              f"!= amount {amount}")
        return cls(merchant_id=str(payload["merchant_id"]), channel=str(payload["channel"]),
                   amount=amount, cash=cash, platform_discount=platform,
                   merchant_discount=merchant)


@dataclass(frozen=True)
class RefundFacts:
    """A refund as the ledger needs it (from `refund.succeeded`)."""

    merchant_id: str
    channel: str
    amount: int  # in the order's terms
    cash: int  # what the payer gets back through the channel
    platform_discount: int  # the discount share returned to its funder
    merchant_discount: int

    @classmethod
    def from_payload(cls, payload: dict[str, object], channel: str) -> RefundFacts:
        amount = Money.of(payload["amount"]).fen
        cash = Money.of(payload.get("cash_amount", amount)).fen
        ds = _discounts(payload.get("discounts", []))
        platform = sum(d.fen for d in ds if d.funder == "platform")
        merchant = sum(d.fen for d in ds if d.funder == "merchant")
        if amount <= 0 or cash < 0 or cash + platform + merchant != amount:
            raise FulemaError(ErrorCode.VALIDATION_ERROR,
                              f"refund: cash {cash} + discounts {platform + merchant} "
                              f"!= amount {amount}")
        return cls(merchant_id=str(payload["merchant_id"]),
                   channel=str(payload.get("channel") or channel), amount=amount, cash=cash,
                   platform_discount=platform, merchant_discount=merchant)


def fee_for(cash: int, bps: int, *, waived: bool) -> int:
    """The merchant's fee on the cash the channel collected: half-up per transaction; zero
    where the channel waives it (the bank's own channel) or the rate is zero."""
    if waived:
        return 0
    return Money(cash).times_bps(bps).fen


def fee_back(*, fee: int, cash: int, cash_refunded_before: int, refund_cash: int,
             fee_back_before: int) -> int:
    """The fee a refund gives back: the fee's share of the cash refunded so far (this refund
    included), rounded half-up, minus what earlier refunds gave back. A payment refunded in
    full therefore gives back exactly its fee, whatever the number of refunds."""
    if cash <= 0 or fee == 0:
        return 0
    through = cash_refunded_before + refund_cash
    if through > cash:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          f"refunds ({through}) exceed the cash collected ({cash})")
    share = (Decimal(fee) * Decimal(through) / Decimal(cash)).quantize(
        Decimal(1), rounding=ROUND_HALF_UP)
    return int(share) - fee_back_before


def check_balanced(lines: list[Line]) -> list[Line]:
    total = sum(x.fen for x in lines)
    if total != 0:
        raise AssertionError(f"unbalanced entry: {total} fen")
    return [x for x in lines if x.fen != 0]


def payment_lines(p: PaymentFacts, fee: int) -> list[Line]:
    """Dr channel receivable (cash), Dr platform marketing (its discounts), Cr merchant payable
    (gross), Dr merchant payable (merchant-funded discounts, fee), Cr fee income."""
    payable = account(AccountKind.MERCHANT_PAYABLE, p.merchant_id)
    return check_balanced([
        Line(account(AccountKind.CHANNEL_RECEIVABLE, p.channel), LineKind.CASH, p.cash),
        Line(account(AccountKind.MARKETING_EXPENSE, "platform"), LineKind.DISCOUNT,
             p.platform_discount),
        Line(payable, LineKind.GROSS, -p.amount),
        Line(payable, LineKind.DISCOUNT, p.merchant_discount),
        Line(payable, LineKind.FEE, fee),
        Line(account(AccountKind.FEE_INCOME), LineKind.FEE, -fee),
    ])


def refund_lines(r: RefundFacts, fee_returned: int) -> list[Line]:
    """The mirror of a payment for the refunded share: Dr merchant payable (refund), Cr merchant
    payable (its discount share back, fee back), Dr fee income (fee back), Cr platform marketing
    (its discount share back), Cr channel receivable (the cash the channel paid back)."""
    payable = account(AccountKind.MERCHANT_PAYABLE, r.merchant_id)
    return check_balanced([
        Line(payable, LineKind.REFUND, r.amount),
        Line(payable, LineKind.DISCOUNT_BACK, -r.merchant_discount),
        Line(payable, LineKind.FEE_BACK, -fee_returned),
        Line(account(AccountKind.FEE_INCOME), LineKind.FEE_BACK, fee_returned),
        Line(account(AccountKind.MARKETING_EXPENSE, "platform"), LineKind.DISCOUNT_BACK,
             -r.platform_discount),
        Line(account(AccountKind.CHANNEL_RECEIVABLE, r.channel), LineKind.REFUND_CASH, -r.cash),
    ])


def refund_accepted_lines(merchant_id: str, cash: int) -> list[Line]:
    """A refund accepted (PROCESSING), the channel not yet heard: its cash is held from the
    merchant's payable (so a settlement meanwhile does not pay it out) and owed to the payer
    in refunds in transit. Dr merchant payable, Cr refunds in transit."""
    return check_balanced([
        Line(account(AccountKind.MERCHANT_PAYABLE, merchant_id), LineKind.REFUND_IN_TRANSIT,
             cash),
        Line(account(AccountKind.REFUNDS_IN_TRANSIT), LineKind.REFUND_IN_TRANSIT, -cash),
    ])


def refund_released_lines(merchant_id: str, cash: int) -> list[Line]:
    """The hold of `refund_accepted_lines` undone: on the channel's confirmation (posted with
    the refund's own lines, which then credit the channel receivable) or its refusal."""
    return reversal(refund_accepted_lines(merchant_id, cash))


def settlement_lines(merchant_id: str, net: int) -> list[Line]:
    """A batch settled: the net leaves the merchant's payable for settlement in transit."""
    if net <= 0:
        raise ValueError("only a positive net is settled")
    return check_balanced([
        Line(account(AccountKind.MERCHANT_PAYABLE, merchant_id), LineKind.SETTLEMENT, net),
        Line(account(AccountKind.SETTLEMENT_IN_TRANSIT), LineKind.SETTLEMENT, -net),
    ])


def payout_lines(net: int) -> list[Line]:
    """The bank confirmed the transfer: the money left the platform's clearing account."""
    return check_balanced([
        Line(account(AccountKind.SETTLEMENT_IN_TRANSIT), LineKind.PAYOUT, net),
        Line(account(AccountKind.BANK_CLEARING), LineKind.PAYOUT, -net),
    ])


def payout_returned_lines(merchant_id: str, net: int) -> list[Line]:
    """A payout that finally failed: the amount goes back to the merchant's balance, to be
    settled again by a later batch."""
    return check_balanced([
        Line(account(AccountKind.SETTLEMENT_IN_TRANSIT), LineKind.PAYOUT_RETURNED, net),
        Line(account(AccountKind.MERCHANT_PAYABLE, merchant_id), LineKind.PAYOUT_RETURNED,
             -net),
    ])


def adjustment_lines(channel: str, merchant_id: str | None, fen: int) -> list[Line]:
    """A reconciliation adjustment: `fen` > 0 means the channel holds more than we recorded
    (Dr its receivable); the other side is the merchant it belongs to, or the platform's
    reconciliation differences when no merchant is named."""
    if fen == 0:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "adjustment: amount must not be zero")
    other = (account(AccountKind.MERCHANT_PAYABLE, merchant_id) if merchant_id
             else account(AccountKind.RECONCILIATION_DIFFERENCES))
    return check_balanced([
        Line(account(AccountKind.CHANNEL_RECEIVABLE, channel), LineKind.ADJUSTMENT, fen),
        Line(other, LineKind.ADJUSTMENT, -fen),
    ])


def reversal(lines: list[Line]) -> list[Line]:
    """The reversing entry of `lines` (entries are never changed; a correction reverses)."""
    return check_balanced([Line(x.account, x.kind, -x.fen) for x in lines])
