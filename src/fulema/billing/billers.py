"""Biller adapters: inquire a bill by account number, write it off (销账), ask about a write-off.

Every biller (water, electricity, gas, telecom, tuition, property) speaks through one
`BillerAdapter`; a biller's row names its adapter, and the registry hands it out. The sandbox
biller is an in-memory biller for the demo and the tests: deterministic bills per account, and
faults on demand (a write-off that fails, or hangs past the timeout).

A write-off carries our payment id as its reference and must be idempotent by it at the biller:
a write-off that timed out may have gone through, so before refunding we ask (`query`).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

ACCOUNT_PATTERN = r"^[0-9A-Za-z\-]{4,32}$"


@dataclass(frozen=True)
class Bill:
    bill_id: str
    account_no: str
    holder: str  # masked: 张*
    period: str  # 2026-10
    amount_fen: int
    due_date: date


class BillerError(RuntimeError):
    """The biller refused or failed; the write-off is retried until its deadline."""


class UnknownAccount(LookupError):
    pass


@dataclass(frozen=True)
class WriteOff:
    reference: str  # our payment id
    receipt_no: str  # the biller's write-off number


class BillerAdapter(Protocol):
    async def inquire(self, account_no: str) -> list[Bill]: ...

    async def write_off(self, *, bill_id: str, amount_fen: int, reference: str) -> WriteOff: ...

    async def query(self, reference: str) -> WriteOff | None: ...


@dataclass
class SandboxBiller:
    """Accounts of 4-32 letters or digits have one unpaid bill each (amount from a hash of
    the account, 10.00 to 509.99 yuan) unless the account ends in 0000 (unknown account).

    Faults for tests: `fail_writeoffs[bill_id] = n` fails the next n write-offs of that bill,
    `-1` fails every one; `hang_seconds` delays each write-off (a timeout)."""

    code: str
    fail_writeoffs: dict[str, int] = field(default_factory=dict)
    hang_seconds: float = 0.0
    written_off: dict[str, WriteOff] = field(default_factory=dict)  # reference -> write-off
    paid_bills: set[str] = field(default_factory=set)
    calls: int = 0

    def bill_for(self, account_no: str) -> Bill:
        if not re.match(ACCOUNT_PATTERN, account_no) or account_no.endswith("0000"):
            raise UnknownAccount(account_no)
        digest = hashlib.sha256(f"{self.code}:{account_no}".encode()).digest()
        amount = 1000 + int.from_bytes(digest[:4], "big") % 50_000
        return Bill(bill_id=f"{self.code}-{account_no}-202610", account_no=account_no,
                    holder="张*", period="2026-10", amount_fen=amount,
                    due_date=date(2026, 12, 15))

    async def inquire(self, account_no: str) -> list[Bill]:
        bill = self.bill_for(account_no)
        return [] if bill.bill_id in self.paid_bills else [bill]

    async def write_off(self, *, bill_id: str, amount_fen: int, reference: str) -> WriteOff:
        self.calls += 1
        if self.hang_seconds:
            await asyncio.sleep(self.hang_seconds)
        if reference in self.written_off:  # idempotent by our reference
            return self.written_off[reference]
        left = self.fail_writeoffs.get(bill_id, 0)
        if left:
            if left > 0:
                self.fail_writeoffs[bill_id] = left - 1
            raise BillerError("sandbox biller: write-off refused (system busy)")
        account = bill_id.removeprefix(f"{self.code}-").rpartition("-")[0]
        try:
            bill = self.bill_for(account)
        except UnknownAccount as exc:
            raise BillerError(f"sandbox biller: no bill {bill_id}") from exc
        if bill.bill_id != bill_id or bill.amount_fen != amount_fen:
            raise BillerError("sandbox biller: bill or amount does not match")
        if bill_id in self.paid_bills:
            raise BillerError("sandbox biller: bill already written off")
        self.paid_bills.add(bill_id)
        done = WriteOff(reference=reference, receipt_no=f"XZ{len(self.written_off) + 1:08d}")
        self.written_off[reference] = done
        return done

    async def query(self, reference: str) -> WriteOff | None:
        return self.written_off.get(reference)


class BillerRegistry:
    """The adapters by biller code; a biller whose adapter is `sandbox` gets its own sandbox
    biller on first use (in memory: the demo and the tests)."""

    def __init__(self) -> None:
        self._adapters: dict[str, BillerAdapter] = {}

    def get(self, code: str, adapter: str) -> BillerAdapter:
        found = self._adapters.get(code)
        if found is None:
            if adapter != "sandbox":
                raise LookupError(f"no biller adapter {adapter!r}")
            found = self._adapters[code] = SandboxBiller(code=code)
        return found

    def sandbox(self, code: str) -> SandboxBiller:
        found = self.get(code, "sandbox")
        assert isinstance(found, SandboxBiller)
        return found
