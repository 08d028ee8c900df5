"""The merchant's identity as the channels must be told it when the bank registers the
merchant with them (进件/报备, fulema.onboarding): unmasked, because the channel needs the real
licence, contact and account. For that use only; never shown, logged or answered."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.merchants.lifecycle import merchant_row
from fulema.merchants.models import Store


@dataclass(frozen=True)
class RegistrationFacts:
    merchant_id: str
    status: str
    name: str
    short_name: str
    licence_no: str
    legal_person: str
    contact_name: str
    contact_phone: str
    mcc: str
    settlement_account: str
    settlement_account_name: str
    store_name: str | None  # the first active store: where the channels' store fields point
    store_address: str | None


async def registration_facts(s: AsyncSession, *, merchant_id: str) -> RegistrationFacts:
    """MERCHANT_NOT_FOUND for an unknown merchant."""
    m = await merchant_row(s, merchant_id)
    store = await s.scalar(select(Store).where(Store.merchant_id == m.id, Store.active.is_(True))
                           .order_by(Store.created_at, Store.id).limit(1))
    return RegistrationFacts(
        merchant_id=m.id, status=m.status, name=m.name, short_name=m.short_name,
        licence_no=m.licence_no, legal_person=m.legal_person, contact_name=m.contact_name,
        contact_phone=m.contact_phone, mcc=m.mcc, settlement_account=m.settlement_account,
        settlement_account_name=m.settlement_account_name,
        store_name=store.name if store else None, store_address=store.address if store else None)
