"""Whether a merchant may take payments: the checks payments and the cashier run per order.

They return a frozen `MerchantSnapshot`, never an ORM row; `check_can_pay_in` runs inside the
caller's transaction because it sits on the order-create hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.merchants import domain
from fulema.merchants.domain import MerchantStatus
from fulema.merchants.lifecycle import merchant_row
from fulema.merchants.models import Merchant


@dataclass(frozen=True)
class MerchantSnapshot:
    id: str
    name: str
    short_name: str
    status: str
    mcc: str


async def check_merchant(db: Database, *, merchant_id: str) -> MerchantSnapshot:
    """The merchant as it is, whatever its status (MERCHANT_NOT_FOUND only)."""
    async with db.transaction() as s:
        m = await merchant_row(s, merchant_id)
    return MerchantSnapshot(id=m.id, name=m.name, short_name=m.short_name, status=m.status,
                            mcc=m.mcc)


_PAY_IN_CHECK = (select(Merchant.id, Merchant.name, Merchant.short_name, Merchant.status,
                        Merchant.mcc).where(Merchant.id == bindparam("b_mid")))


async def check_can_pay_in(session: AsyncSession, *, merchant_id: str) -> MerchantSnapshot:
    """`check_can_pay` inside the caller's transaction: payments checks the merchant in the
    same unit of work that records the order, so a freeze is never raced and no extra
    transaction is spent."""
    # Five columns through Core, not an ORM entity: this runs on every order create, and an
    # identity-mapped Merchant costs more CPU than the round trip it rides on.
    row = (await session.execute(_PAY_IN_CHECK, {"b_mid": merchant_id})).first()
    return pay_in_row(row, merchant_id=merchant_id)


def pay_in_check_with(extra: ColumnElement[Any]) -> Select[Any]:
    """`check_can_pay_in`'s SELECT with one more column, a scalar subquery another context
    builds over its own table (onboarding's sub-merchant id): two questions asked of the
    order-create hot path in one round trip. Build it once, at import; run it with
    `check_can_pay_in_with`."""
    return _PAY_IN_CHECK.add_columns(extra.label("extra"))


async def check_can_pay_in_with(session: AsyncSession, statement: Select[Any], *,
                                merchant_id: str, params: dict[str, Any]
                                ) -> tuple[MerchantSnapshot, Any]:
    """`check_can_pay_in` by a statement from `pay_in_check_with`: the same refusals, in the
    same order, and the extra column's value (`params` binds the extra column's parameters)."""
    row = (await session.execute(statement, {"b_mid": merchant_id, **params})).first()
    return pay_in_row(row, merchant_id=merchant_id), row.extra if row is not None else None


def pay_in_row(row: Any, *, merchant_id: str) -> MerchantSnapshot:
    """`check_can_pay_in`'s answer from a row a `pay_in_check_with` statement returned (None:
    no such merchant), for a caller that ran that SELECT inside a statement of its own."""
    if row is None:
        raise FulemaError(ErrorCode.MERCHANT_NOT_FOUND, f"no merchant {merchant_id}")
    snapshot = MerchantSnapshot(id=row.id, name=row.name, short_name=row.short_name,
                                status=row.status, mcc=row.mcc)
    return _refuse_unless_active(snapshot)


def pays_in(status: ColumnElement[Any]) -> ColumnElement[bool]:
    """`domain.payment_refusal` as SQL over a status column: true for the statuses that take
    payments. A statement that writes only for a merchant that may take payments filters on
    it (payments' one-statement order create), with the refusal then told by `pay_in_row`."""
    # `=` per status, not IN: an IN list is expanded at every execution (and there is one).
    return or_(*(status == s.value for s in MerchantStatus
                 if domain.payment_refusal(s) is None))


def _refuse_unless_active(snapshot: MerchantSnapshot) -> MerchantSnapshot:
    refusal = domain.payment_refusal(MerchantStatus(snapshot.status))
    if refusal is not None:
        raise FulemaError(refusal, f"{refusal.description} (status {snapshot.status})",
                          status=snapshot.status)
    return snapshot


async def check_can_pay(db: Database, *, merchant_id: str) -> MerchantSnapshot:
    """Only an ACTIVE merchant takes payments: MERCHANT_NOT_FOUND / MERCHANT_NOT_ACTIVE /
    MERCHANT_FROZEN / MERCHANT_CLOSED otherwise."""
    snapshot = await check_merchant(db, merchant_id=merchant_id)
    return _refuse_unless_active(snapshot)
