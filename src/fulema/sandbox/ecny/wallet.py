"""What is e-CNY's own about a sandbox payer: wallet levels and their limits, the wallet id,
the payer-code format and the refusal codes. The money and the refusal rules are the shared
sandbox wallet's (`fulema.sandbox.wallet`).

The levels (钱包等级) follow what the PBOC's Digital Currency Institute has said in public;
docs/channels/ecny.md cites each figure and marks the ones that are assumptions. The sandbox
refuses a payment over the per-payment or daily limit with the codes below, exactly like a
balance shortfall, so Fulema's handling of those refusals can be tested.
"""

from __future__ import annotations

from fulema.sandbox.wallet import Limits, Payer, Refusal, digits

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
CODE_PREFIX, CODE_LENGTH = "01", 19  # 付款码 (see docs/channels/ecny.md for the source)


class Wallet(Payer):
    """An e-CNY wallet: a payer whose level sets its limits. A closed wallet is a frozen payer;
    credits above the level's balance limit are swept to the linked bank account."""

    def __init__(self, payer_id: str, wallet_id: str, level: int, balance_fen: int,
                 password_required: bool = False, name: str | None = None, *,
                 risk_refused: bool = False, limit_fen: int | None = None) -> None:
        super().__init__(payer_id, balance_fen, password_required=password_required, name=name,
                         risk_refused=risk_refused, limit_fen=limit_fen,
                         limits=WALLET_LEVELS[level])
        self.wallet_id = wallet_id  # 16 digits; the first 4 name the operator (assumption)
        self.level = level

    def view(self) -> dict[str, object]:
        lim = self.limits
        return {**super().view(), "wallet_id": self.wallet_id, "wallet_level": self.level,
                "payer_name": self.name, "closed": self.frozen, "swept_fen": self.swept_fen,
                "limits": {"balance_fen": lim.balance, "per_payment_fen": lim.per_payment,
                           "daily_fen": lim.daily}}


def refusal_answer(w: Wallet, reason: Refusal) -> tuple[str, str]:
    """The operator's (code, message) for a refused payment; checked in `Refusal` order."""
    return {
        Refusal.FROZEN: (WALLET_CLOSED, "the wallet is closed"),
        Refusal.RISK: (RISK_REJECTED, "the wallet operator's risk control refused this payment"),
        Refusal.PAYER_LIMIT: (SINGLE_LIMIT, "over the per-payment limit the holder set"),
        Refusal.PER_PAYMENT_LIMIT:
            (SINGLE_LIMIT, f"over the level-{w.level} wallet's per-payment limit"),
        Refusal.DAILY_LIMIT: (DAILY_LIMIT, f"over the level-{w.level} wallet's daily payment limit"),
        Refusal.BALANCE: (BALANCE_SHORT, "the wallet balance is not enough"),
    }[reason]


def new_wallet_id(operator: str = "0099") -> str:
    return operator + digits(12)
