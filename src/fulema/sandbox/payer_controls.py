"""Per-payer refusals the sandboxes can play: the channel's risk engine refusing a payer, and a
payer's payment limit.

Why: real channels refuse payments for reasons that are neither balance nor code errors (风控,
限额), each with its own code, and the adapters must map those codes to FAILED with the code
(never UNKNOWN, never a retry). A test makes such a payer with `POST /wallet/payers
{"risk_refused": true}` or `{"limit_fen": 500}` in any sandbox; each sandbox answers with its
channel's own code (see docs/channels/<channel>.md, "Payer refusals").

Simplification, the same in every sandbox: the limit is checked against the one payment (no
running daily total), and risk refuses every payment of that payer. Risk is checked before the
limit, the limit before the balance, as a channel's risk engine runs before the debit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Refused(StrEnum):
    RISK = "risk"
    LIMIT = "limit"


@dataclass(frozen=True)
class PayerControls:
    risk_refused: bool = False
    limit_fen: int | None = None  # a payment above this many fen is refused as over the limit

    def refusal(self, amount_fen: int) -> Refused | None:
        """Why this payer's payment of `amount_fen` is refused before any debit, or None."""
        if self.risk_refused:
            return Refused.RISK
        if self.limit_fen is not None and amount_fen > self.limit_fen:
            return Refused.LIMIT
        return None

    def view(self) -> dict[str, Any]:
        return {"risk_refused": self.risk_refused, "limit_fen": self.limit_fen}


def parse_controls(body: dict[str, Any]) -> PayerControls | str:
    """The controls named in a `POST /wallet/payers` body, or what is wrong with them."""
    risk = body.get("risk_refused", False)
    limit = body.get("limit_fen")
    if not isinstance(risk, bool):
        return "risk_refused is true or false"
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or limit < 0):
        return "limit_fen is a non-negative integer"
    return PayerControls(risk_refused=risk, limit_fen=limit)
