"""The sandboxes' one payer wallet: payers, their money, the rules that refuse a payment, and
the payer codes they present.

Why one: every channel sandbox plays payers (debit a payment, credit a refund, refuse a risky
payer or one over a limit, issue a single-use payer code), and five hand-written copies drifted
apart. What stays in each sandbox is what is really the channel's: the wire code for each
`Refusal`, the code format (prefix, length, lifetime), the extra identity a channel shows
(card number, e-CNY wallet id and level, bank account) and the `/wallet/...` routes.

Rules, the same in every sandbox:
* money is integer fen; a debit happens only when no rule refuses it, in the same synchronous
  call as the check, so payments racing through async handlers cannot overdraw a balance or
  a limit (nothing awaits between the check and the debit);
* refusals are checked in `Refusal` order: frozen, risk, the payer's own per-payment limit,
  the account class's per-payment limit, its daily limit, then the balance;
* the daily total counts today's (Beijing) standing payments: a reversal gives the headroom
  back, a refund does not (the payment happened);
* a credit above the account's balance cap is not turned away: the excess is swept to the
  payer's linked bank account (`swept_fen`), as an e-CNY wallet does;
* a payer code is single use; one with a lifetime expires.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Generic, TypeVar

from fulema.core.clock import clock

BEIJING = timezone(timedelta(hours=8))  # the day a daily limit counts in, for every channel


class Refusal(StrEnum):
    """Why a payer's payment is refused; each sandbox maps these to its channel's codes."""

    FROZEN = "frozen"  # the account is closed or frozen
    RISK = "risk"  # the channel's risk control refuses this payer (a test's `risk_refused`)
    PAYER_LIMIT = "payer_limit"  # above the per-payment limit the payer set (`limit_fen`)
    PER_PAYMENT_LIMIT = "per_payment_limit"  # above the account class's per-payment limit
    DAILY_LIMIT = "daily_limit"  # today's standing payments plus this one above the daily limit
    BALANCE = "balance"  # the balance is short


class CodeRefusal(StrEnum):
    """Why a presented payer code names no payer."""

    UNKNOWN = "unknown"  # never issued, or already used
    EXPIRED = "expired"


@dataclass(frozen=True)
class Limits:
    """An account class's limits in fen; None means none. `balance` caps what it may hold."""

    balance: int | None = None
    per_payment: int | None = None
    daily: int | None = None


NO_LIMITS = Limits()


@dataclass
class Payer:
    payer_id: str
    balance_fen: int
    password_required: bool = False  # must confirm (password) before a payer-code payment
    name: str | None = None  # the holder's masked name, where the channel shows one
    risk_refused: bool = False
    limit_fen: int | None = None  # the payer's own per-payment limit
    limits: Limits = NO_LIMITS  # the account class's limits (e-CNY wallet levels)
    frozen: bool = False
    swept_fen: int = 0  # credits above `limits.balance`, swept to the linked bank account
    spent: dict[date, int] = field(default_factory=dict)  # standing payments per Beijing day

    def paid_on(self, day: date) -> int:
        return self.spent.get(day, 0)

    def paid_today(self) -> int:
        return self.paid_on(today())

    def refusal(self, amount_fen: int, *, balance: bool = True) -> Refusal | None:
        """Why a payment of `amount_fen` would be refused now, or None. `balance=False` asks
        only the rules a channel applies before it asks for the password."""
        lim = self.limits
        if self.frozen:
            return Refusal.FROZEN
        if self.risk_refused:
            return Refusal.RISK
        if self.limit_fen is not None and amount_fen > self.limit_fen:
            return Refusal.PAYER_LIMIT
        if lim.per_payment is not None and amount_fen > lim.per_payment:
            return Refusal.PER_PAYMENT_LIMIT
        if lim.daily is not None and self.paid_today() + amount_fen > lim.daily:
            return Refusal.DAILY_LIMIT
        if balance and self.balance_fen < amount_fen:
            return Refusal.BALANCE
        return None

    # money ---------------------------------------------------------------------------------

    def pay(self, amount_fen: int) -> Refusal | None:
        """Debit `amount_fen` unless a rule refuses it; the refusal (nothing changed) or None."""
        if amount_fen <= 0:
            raise ValueError("a payment is a positive number of fen")
        refused = self.refusal(amount_fen)
        if refused is not None:
            return refused
        self.balance_fen -= amount_fen
        day = today()
        self.spent[day] = self.paid_on(day) + amount_fen
        return None

    def credit(self, amount_fen: int) -> None:
        """A refund: money owed to the payer is never refused; above the balance cap the
        excess is swept to the linked bank account."""
        if amount_fen <= 0:
            raise ValueError("a credit is a positive number of fen")
        self.balance_fen += amount_fen
        cap = self.limits.balance
        if cap is not None and self.balance_fen > cap:
            self.swept_fen += self.balance_fen - cap
            self.balance_fen = cap

    def reverse(self, amount_fen: int, paid_at: datetime) -> None:
        """A reversed (voided) payment made at `paid_at`: the money goes back and the day's
        limit headroom with it."""
        self.credit(amount_fen)
        day = paid_at.astimezone(BEIJING).date()
        self.spent[day] = max(0, self.paid_on(day) - amount_fen)

    def view(self) -> dict[str, Any]:
        """The fields every sandbox's `GET /wallet/payers/{id}` shows; each adds its own."""
        return {"payer_id": self.payer_id, "balance_fen": self.balance_fen,
                "password_required": self.password_required,
                "risk_refused": self.risk_refused, "limit_fen": self.limit_fen}


P = TypeVar("P", bound=Payer)
C = TypeVar("C")


def three_codes(*, risk: C, limit: C, balance: C) -> dict[Refusal, C]:
    """The refusal table of a channel with one code for a refused account, one for any limit
    and one for the balance. Such a sandbox has no route that freezes a payer or gives it
    account-class limits, so FROZEN and the class limits only complete the table."""
    return {Refusal.FROZEN: risk, Refusal.RISK: risk, Refusal.PAYER_LIMIT: limit,
            Refusal.PER_PAYMENT_LIMIT: limit, Refusal.DAILY_LIMIT: limit,
            Refusal.BALANCE: balance}


@dataclass(frozen=True)
class IssuedCode:
    payer_id: str
    expires_at: datetime | None  # None: valid until used


def today() -> date:
    return clock.now().astimezone(BEIJING).date()


def digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


class PayerBook(Generic[P]):
    """One sandbox's payers and the payer codes they have been issued."""

    def __init__(self, *payers: P) -> None:
        self.payers: dict[str, P] = {}
        self.codes: dict[str, IssuedCode] = {}  # payer code -> whose, until when
        for payer in payers:
            self.add(payer)

    def add(self, payer: P) -> P:
        self.payers[payer.payer_id] = payer
        return payer

    def get(self, payer_id: str) -> P | None:
        return self.payers.get(payer_id)

    # payer codes ---------------------------------------------------------------------------

    def issue_code(self, payer: P, prefix: str, length: int,
                   ttl: timedelta | None) -> tuple[str, datetime | None]:
        """A fresh single-use payer code of `length` digits starting `prefix`."""
        code = prefix + digits(length - len(prefix))
        expires = clock.now() + ttl if ttl is not None else None
        self.codes[code] = IssuedCode(payer.payer_id, expires)
        return code, expires

    def redeem(self, code: str) -> P | CodeRefusal:
        """The payer a presented code names; the code is used up either way."""
        issued = self.codes.pop(code, None)
        payer = self.payers.get(issued.payer_id) if issued is not None else None
        if issued is None or payer is None:
            return CodeRefusal.UNKNOWN
        if issued.expires_at is not None and issued.expires_at < clock.now():
            return CodeRefusal.EXPIRED
        return payer


def parse_rules(body: dict[str, Any]) -> tuple[bool, int | None] | str:
    """(risk_refused, limit_fen) from a `POST /wallet/payers` JSON body, or what is wrong."""
    risk = body.get("risk_refused", False)
    limit = body.get("limit_fen")
    if not isinstance(risk, bool):
        return "risk_refused is true or false"
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or limit < 0):
        return "limit_fen is a non-negative integer"
    return risk, limit
