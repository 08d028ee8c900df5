"""The payout port: how settlement asks the bank to pay a merchant, and the bank's answers as
typed results, mapped in one exhaustive table.

The composition root hands settlement an implementation (today the sandbox bank transfer,
`fulema.sandbox.banktransfer`, wrapped by `BankTransferPayouts`; a real core-banking client
implements the same two calls). Rule, as for the channels: a timeout or an answer we cannot read
is UNKNOWN (ask again with the same request id), never FAILED; only the bank saying so is FAILED.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol


class TransferState(enum.StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    PROCESSING = "PROCESSING"
    NOT_FOUND = "NOT_FOUND"  # the bank has no such request: it never arrived
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class TransferResult:
    state: TransferState
    bank_ref: str | None = None
    reason: str | None = None


class PayoutAdapter(Protocol):
    async def transfer(self, *, request_id: str, account: str, account_name: str,
                       fen: int) -> TransferResult: ...

    async def query(self, *, request_id: str) -> TransferResult: ...


STATES: dict[str, TransferState] = {
    "SUCCESS": TransferState.SUCCESS,
    "FAILED": TransferState.FAILED,
    "PROCESSING": TransferState.PROCESSING,
}


class BankClient(Protocol):
    async def transfer(self, *, request_id: str, account: str, account_name: str,
                       fen: int) -> dict[str, Any]: ...

    async def query(self, *, request_id: str) -> dict[str, Any] | None: ...


def _result(answer: dict[str, Any] | None) -> TransferResult:
    if answer is None:
        return TransferResult(TransferState.NOT_FOUND)
    state = STATES.get(str(answer.get("status")), TransferState.UNKNOWN)
    return TransferResult(state, bank_ref=answer.get("bank_ref") or None,
                          reason=answer.get("reason"))


class BankTransferPayouts:
    """A `PayoutAdapter` over a bank client speaking the transfer service's JSON answers."""

    def __init__(self, client: BankClient) -> None:
        self.client = client

    async def transfer(self, *, request_id: str, account: str, account_name: str,
                       fen: int) -> TransferResult:
        try:
            return _result(await self.client.transfer(request_id=request_id, account=account,
                                                      account_name=account_name, fen=fen))
        except Exception:  # a timeout or a broken answer: the outcome is unknown
            return TransferResult(TransferState.UNKNOWN)

    async def query(self, *, request_id: str) -> TransferResult:
        try:
            return _result(await self.client.query(request_id=request_id))
        except Exception:
            return TransferResult(TransferState.UNKNOWN)
