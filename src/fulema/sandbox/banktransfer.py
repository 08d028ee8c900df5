"""A sandbox of the bank's transfer service (代付): pays a merchant's settlement account.

Like a real bank's, it is idempotent by the caller's request id: a request id is executed at
most once, and asking again (a retry after a timeout, two workers at once, a duplicated
message) answers the first outcome without moving money again. What it does with the next
requests is scripted (`script`), so tests and the demo can make it:

- `SUCCESS`   pay and say so;
- `FAILED`    refuse (account closed, name mismatch) and move nothing;
- `TIMEOUT`   pay, but the answer is lost (the caller sees a timeout: a late success);
- `LOST`      the request never arrives (timeout; a query finds nothing);
- `PENDING`   accept and answer PROCESSING; the transfer completes at the next query.

It keeps what it paid per account (`paid`) and how many times each request id moved money
(`executions`), which is what a test checks for "never paid twice".
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any


class BankTimeout(Exception):
    """No answer reached the caller (the transfer may or may not have happened)."""


@dataclass
class _Transfer:
    request_id: str
    account: str
    fen: int
    status: str  # SUCCESS | FAILED | PROCESSING
    bank_ref: str
    reason: str | None = None


@dataclass
class SandboxBank:
    delay_seconds: float = 0.0  # how long an answer takes (lets concurrent callers overlap)
    paid: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    executions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    moved: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # by request id
    _plan: deque[str] = field(default_factory=deque)
    _transfers: dict[str, _Transfer] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def script(self, *outcomes: str) -> None:
        """The outcomes of the next new requests, in order (then SUCCESS)."""
        for o in outcomes:
            if o not in {"SUCCESS", "FAILED", "TIMEOUT", "LOST", "PENDING"}:
                raise ValueError(f"unknown outcome {o}")
        self._plan.extend(outcomes)

    def _move(self, t: _Transfer) -> None:
        self.paid[t.account] += t.fen
        self.executions[t.request_id] += 1
        self.moved[t.request_id] += t.fen

    @staticmethod
    def _answer(t: _Transfer) -> dict[str, Any]:
        return {"request_id": t.request_id, "status": t.status, "bank_ref": t.bank_ref,
                "amount_fen": t.fen, "reason": t.reason}

    async def transfer(self, *, request_id: str, account: str, account_name: str,
                       fen: int) -> dict[str, Any]:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        async with self._lock:
            known = self._transfers.get(request_id)
            if known is not None:
                if known.account != account or known.fen != fen:
                    return {"request_id": request_id, "status": "FAILED", "bank_ref": "",
                            "amount_fen": fen, "reason": "REQUEST_ID_REUSED"}
                return self._answer(known)
            outcome = self._plan.popleft() if self._plan else "SUCCESS"
            if outcome == "LOST":
                raise BankTimeout(request_id)
            ref = f"BK{len(self._transfers) + 1:010d}"
            if outcome == "FAILED":
                t = _Transfer(request_id, account, fen, "FAILED", ref, "ACCOUNT_FROZEN")
            elif outcome == "PENDING":
                t = _Transfer(request_id, account, fen, "PROCESSING", ref)
            else:
                t = _Transfer(request_id, account, fen, "SUCCESS", ref)
                self._move(t)
            self._transfers[request_id] = t
            if outcome == "TIMEOUT":
                raise BankTimeout(request_id)
            return self._answer(t)

    async def query(self, *, request_id: str) -> dict[str, Any] | None:
        """The transfer's state, None if the bank never received it. A PROCESSING transfer
        completes (pays) when asked."""
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        async with self._lock:
            t = self._transfers.get(request_id)
            if t is None:
                return None
            if t.status == "PROCESSING":
                t.status = "SUCCESS"
                self._move(t)
            return self._answer(t)
