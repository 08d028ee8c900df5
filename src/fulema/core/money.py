"""Money as integer fen.

A payment platform that ever holds an amount as a float will one day lose or invent a fen, so
every amount inside Fulema is a `Money`: an integer count of fen (分) in CNY. Yuan strings exist
only at the edges (a channel adapter speaking yuan, a rendered page) through `from_yuan` and
`to_yuan`, which refuse anything that is not an exact number of fen.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from fulema.core.errors import ErrorCode, FulemaError


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount of CNY in fen. Immutable; arithmetic returns new values."""

    fen: int

    def __post_init__(self) -> None:
        # bool is an int subclass; True fen is a bug, not an amount.
        if not isinstance(self.fen, int) or isinstance(self.fen, bool):
            raise TypeError(f"Money needs integer fen, got {type(self.fen).__name__}")

    @classmethod
    def zero(cls) -> Money:
        return cls(0)

    @classmethod
    def of(cls, value: Any) -> Money:
        """Money from untrusted input (JSON): only a true integer is accepted."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise FulemaError(ErrorCode.INVALID_AMOUNT, "amount must be an integer number of fen")
        return cls(value)

    @classmethod
    def from_yuan(cls, text: str | Decimal) -> Money:
        """Parse a yuan amount such as "12.50"; more than two decimals is refused, not rounded."""
        try:
            d = Decimal(str(text).strip())
        except InvalidOperation as exc:
            raise FulemaError(ErrorCode.INVALID_AMOUNT, f"not a yuan amount: {text!r}") from exc
        if not d.is_finite():
            raise FulemaError(ErrorCode.INVALID_AMOUNT, f"not a yuan amount: {text!r}")
        fen = d * 100
        if fen != fen.to_integral_value():
            raise FulemaError(ErrorCode.INVALID_AMOUNT, f"more precise than a fen: {text!r}")
        return cls(int(fen))

    def to_yuan(self) -> str:
        """Yuan with exactly two decimals, e.g. 1250 -> "12.50"."""
        sign = "-" if self.fen < 0 else ""
        whole, part = divmod(abs(self.fen), 100)
        return f"{sign}{whole}.{part:02d}"

    def __str__(self) -> str:
        return f"¥{self.to_yuan()}"

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        return Money(self.fen + other.fen)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        return Money(self.fen - other.fen)

    def __neg__(self) -> Money:
        return Money(-self.fen)

    def __bool__(self) -> bool:
        return self.fen != 0

    @property
    def is_positive(self) -> bool:
        return self.fen > 0

    def times_bps(self, bps: int) -> Money:
        """This amount times `bps`/10000, rounded half-up to the fen (fees round per transaction)."""
        exact = Decimal(self.fen) * Decimal(bps) / Decimal(10000)
        return Money(int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP)))

    def allocate(self, weights: list[int]) -> list[Money]:
        """Split into parts proportional to `weights` that sum exactly to this amount.

        The remainder fen go one each to the largest fractional shares (largest remainder
        method), so no fen is lost or created.
        """
        if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
            raise ValueError("weights must be non-negative and not all zero")
        total = sum(weights)
        base = [self.fen * w // total for w in weights]
        remainders = [(self.fen * w % total, -i) for i, w in enumerate(weights)]
        left = self.fen - sum(base)
        for _, neg_i in sorted(remainders, reverse=True)[:left]:
            base[-neg_i] += 1
        return [Money(b) for b in base]
