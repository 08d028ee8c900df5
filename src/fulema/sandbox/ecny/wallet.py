"""e-CNY payer wallets in the sandbox: wallet levels and their limits, pure rules.

The levels (钱包等级) follow what the PBOC's Digital Currency Institute has said in public;
docs/channels/ecny.md cites each figure and marks the ones that are assumptions. The sandbox
refuses a payment over the per-payment or daily limit with the codes below, exactly like a
balance shortfall, so Fulema's handling of those refusals can be tested.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from fulema.sandbox.payer_controls import PayerControls, Refused


@dataclass(frozen=True)
class Limits:
    """Fen; None means no limit at this level."""

    balance: int | None
    per_payment: int | None
    daily: int | None


YUAN = 100
WALLET_LEVELS: dict[int, Limits] = {
    # 一类: opened in person with strong identity checks. Assumption: no limits.
    1: Limits(balance=None, per_payment=None, daily=None),
    # 二类: remote real-name, linked to the holder's bank account (Mu Changchun, 2021).
    2: Limits(balance=500_000 * YUAN, per_payment=50_000 * YUAN, daily=100_000 * YUAN),
    # 三类: assumption from widely reported app screens (not found in an official source).
    3: Limits(balance=20_000 * YUAN, per_payment=5_000 * YUAN, daily=10_000 * YUAN),
    # 四类: anonymous, mobile number only (Mu Changchun, 2021 Lujiazui Forum; Caixin).
    4: Limits(balance=10_000 * YUAN, per_payment=2_000 * YUAN, daily=5_000 * YUAN),
}

SINGLE_LIMIT = "WALLET_SINGLE_LIMIT_EXCEEDED"
DAILY_LIMIT = "WALLET_DAILY_LIMIT_EXCEEDED"
BALANCE_SHORT = "WALLET_BALANCE_NOT_ENOUGH"
WALLET_CLOSED = "WALLET_CLOSED"
RISK_REJECTED = "WALLET_RISK_REJECTED"  # the operator's risk control refused (our design)


@dataclass
class Wallet:
    payer_id: str
    wallet_id: str  # 16 digits; the first 4 name the operating institution (assumption)
    level: int
    balance_fen: int
    password_required: bool
    name: str | None  # the holder's (masked) name; None for an anonymous level-4 wallet
    closed: bool = False
    swept_fen: int = 0  # credits above the balance limit, swept to the linked bank account
    # A test's risk refusal, or a per-payment limit the holder set below the level's own.
    controls: PayerControls = field(default_factory=PayerControls)

    @property
    def limits(self) -> Limits:
        return WALLET_LEVELS[self.level]

    def refusal(self, amount_fen: int, paid_today_fen: int) -> tuple[str, str] | None:
        """Why this wallet cannot pay `amount_fen` now, or None. Checked in this order."""
        lim = self.limits
        if self.closed:
            return WALLET_CLOSED, "the wallet is closed"
        refused = self.controls.refusal(amount_fen)
        if refused == Refused.RISK:
            return RISK_REJECTED, "the wallet operator's risk control refused this payment"
        if refused == Refused.LIMIT:
            return SINGLE_LIMIT, "over the per-payment limit the holder set"
        if lim.per_payment is not None and amount_fen > lim.per_payment:
            return SINGLE_LIMIT, f"over the level-{self.level} wallet's per-payment limit"
        if lim.daily is not None and paid_today_fen + amount_fen > lim.daily:
            return DAILY_LIMIT, f"over the level-{self.level} wallet's daily payment limit"
        if self.balance_fen < amount_fen:
            return BALANCE_SHORT, "the wallet balance is not enough"
        return None

    def credit(self, amount_fen: int) -> None:
        """A refund or reversal. Above the balance limit the excess is swept to the linked
        bank account rather than refused: money owed to the payer is never turned away."""
        self.balance_fen += amount_fen
        cap = self.limits.balance
        if cap is not None and self.balance_fen > cap:
            self.swept_fen += self.balance_fen - cap
            self.balance_fen = cap

    def view(self) -> dict[str, object]:
        lim = self.limits
        return {"payer_id": self.payer_id, "wallet_id": self.wallet_id,
                "wallet_level": self.level, "balance_fen": self.balance_fen,
                "password_required": self.password_required, "payer_name": self.name,
                "closed": self.closed, "swept_fen": self.swept_fen, **self.controls.view(),
                "limits": {"balance_fen": lim.balance, "per_payment_fen": lim.per_payment,
                           "daily_fen": lim.daily}}


def new_wallet_id(operator: str = "0099") -> str:
    return operator + "".join(secrets.choice("0123456789") for _ in range(12))


def new_payer_code() -> str:
    """付款码: 19 digits starting 01 (see docs/channels/ecny.md for the source)."""
    return "01" + "".join(secrets.choice("0123456789") for _ in range(17))
