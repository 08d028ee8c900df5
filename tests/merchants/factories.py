"""Test data for the merchants context: valid licence numbers and applications, and merchants
brought to a given state through the real service (never by writing rows directly)."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from fulema.core.db import Database
from fulema.merchants import service
from fulema.merchants.domain import MerchantStatus, uscc_check_char

OPERATOR = "ops:alice"
_counter = itertools.count(1)


def licence_no(serial: int | None = None) -> str:
    """A well-formed 统一社会信用代码: company (91), Hangzhou (330100), a serial, the check char."""
    n = next(_counter) if serial is None else serial
    body = f"91330100{n:09d}"
    return body + uscc_check_char(body)


def application(**overrides: Any) -> dict[str, Any]:
    """The fields of a valid 进件 (apply) request; each call a fresh licence number."""
    data: dict[str, Any] = {
        "name": "杭州小笼包餐饮店", "short_name": "小笼包", "licence_no": licence_no(),
        "legal_person": "王小明", "settlement_account": "6230910012345678901",
        "settlement_account_name": "王小明", "contact_name": "王小明",
        "contact_phone": "13912345678", "mcc": "5812",
    }
    data.update(overrides)
    return data


async def applied(db: Database, **overrides: Any) -> service.MerchantView:
    return await service.apply_merchant(db, operator=OPERATOR, **application(**overrides))


async def merchant_in(db: Database, status: MerchantStatus) -> service.MerchantView:
    """A merchant brought to `status` by the shortest path of operator actions."""
    m = await applied(db)
    mid, op = m.id, OPERATOR
    if status is MerchantStatus.APPLIED:
        return m
    if status is MerchantStatus.REJECTED:
        return await service.reject(db, merchant_id=mid, reason="licence photo blurred", operator=op)
    if status is MerchantStatus.CLOSED:
        return await service.close(db, merchant_id=mid, operator=op)
    m = await service.approve(db, merchant_id=mid, operator=op)
    if status is MerchantStatus.APPROVED:
        return m
    m = await service.activate(db, merchant_id=mid, operator=op)
    if status is MerchantStatus.FROZEN:
        return await service.freeze(db, merchant_id=mid, reason="chargebacks", operator=op)
    return m


async def active_with_store(db: Database) -> tuple[str, str]:
    """An ACTIVE merchant and one active store: (merchant_id, store_id)."""
    m = await merchant_in(db, MerchantStatus.ACTIVE)
    store = await service.add_store(db, merchant_id=m.id, name="西湖店", address="杭州市西湖区 1 号",
                                    operator=OPERATOR)
    return m.id, store.id


def serial() -> str:
    return f"SN{secrets.token_hex(6).upper()}"
