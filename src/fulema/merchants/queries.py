"""Operator-facing reads across a merchant's whole profile: the detail page and the list.

They stitch together rows every other merchant module owns, so they live apart from all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.vault import blind_index
from fulema.merchants import domain
from fulema.merchants.credentials import AppView, app_view
from fulema.merchants.domain import MerchantStatus
from fulema.merchants.fees import FeeRateView
from fulema.merchants.lifecycle import MerchantView, merchant_row, merchant_view
from fulema.merchants.models import AppCredentialRow, FeeRate, Merchant, Plate, Store, Terminal
from fulema.merchants.plates import PlateView, plate_view
from fulema.merchants.stores import StoreInfo, TerminalInfo, store_info, terminal_info


@dataclass(frozen=True)
class MerchantPage:
    data: tuple[MerchantView, ...]
    has_more: bool


@dataclass(frozen=True)
class MerchantDetail:
    merchant: MerchantView
    stores: tuple[StoreInfo, ...]
    terminals: tuple[TerminalInfo, ...]
    apps: tuple[AppView, ...]
    fee_rates: tuple[FeeRateView, ...]
    plates: tuple[PlateView, ...]


async def get_merchant(db: Database, *, merchant_id: str) -> MerchantDetail:
    async with db.transaction() as s:
        m = await merchant_row(s, merchant_id)
        stores = await s.scalars(select(Store).where(Store.merchant_id == m.id).order_by(Store.id))
        terminals = await s.scalars(select(Terminal).where(Terminal.merchant_id == m.id)
                                    .order_by(Terminal.id))
        apps = await s.scalars(select(AppCredentialRow).where(AppCredentialRow.merchant_id == m.id)
                               .order_by(AppCredentialRow.created_at, AppCredentialRow.app_id))
        rates = {r.channel: r.bps for r in await s.scalars(
            select(FeeRate).where(FeeRate.merchant_id == m.id))}
        plates = await s.scalars(select(Plate).where(Plate.merchant_id == m.id)
                                 .order_by(Plate.created_at, Plate.code))
        return MerchantDetail(
            merchant=merchant_view(m),
            stores=tuple(store_info(x) for x in stores),
            terminals=tuple(terminal_info(x) for x in terminals),
            apps=tuple(app_view(x) for x in apps),
            fee_rates=tuple(FeeRateView(channel=c, bps=rates.get(c, domain.DEFAULT_FEE_BPS[c]),
                                        is_default=c not in rates) for c in domain.FEE_CHANNELS),
            plates=tuple(plate_view(x) for x in plates))


async def list_merchants(db: Database, *, limit: int = 20, starting_after: str | None = None,
                         status: MerchantStatus | None = None,
                         contact_phone: str | None = None,
                         name_contains: str | None = None) -> MerchantPage:
    """Oldest first by id (ids are time-ordered); `starting_after` is the last id seen.

    `contact_phone` finds merchants by their phone through its keyed hash (the phone itself is
    sealed, so no query can compare it)."""
    if not 1 <= limit <= 100:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "limit: 1..100")
    query = select(Merchant).order_by(Merchant.id).limit(limit + 1)
    if starting_after:
        query = query.where(Merchant.id > starting_after)
    if status is not None:
        query = query.where(Merchant.status == MerchantStatus(status).value)
    if name_contains:  # the console's search box: part of the registered or short name
        query = query.where(Merchant.name.contains(name_contains, autoescape=True)
                            | Merchant.short_name.contains(name_contains, autoescape=True))
    if contact_phone is not None:
        query = query.where(Merchant.contact_phone_hash == blind_index("phone", contact_phone))
    async with db.transaction() as s:
        rows = list(await s.scalars(query))
    return MerchantPage(data=tuple(merchant_view(m) for m in rows[:limit]),
                        has_more=len(rows) > limit)
