"""QR plates (收款码牌): creating, disabling and resolving them; the URL a printed code carries
and its PNG.

The code encodes a URL on our own domain (`/pay/q/{code}`), not a channel's: whichever app
scans it opens our cashier, which recognises the app and hands over to that channel. That is
what makes one printed code "aggregated".

The use cases here create and disable plates; the cashier resolves a scanned code through
`get_plate`.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime

import segno
from sqlalchemy import select

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.merchants import domain
from fulema.merchants.domain import PlateStatus
from fulema.merchants.lifecycle import lock, lock_open, record
from fulema.merchants.models import Merchant, Plate, Store
from fulema.merchants.stores import store_row


@dataclass(frozen=True)
class PlateInfo:
    code: str
    merchant_id: str
    merchant_name: str
    store_id: str
    store_name: str


@dataclass(frozen=True)
class PlateView:
    code: str
    merchant_id: str
    store_id: str
    status: str
    created_at: datetime


async def create_plate(db: Database, *, merchant_id: str, store_id: str, operator: str,
                       code: str | None = None) -> PlateView:
    """A static aggregated code for an active store. `code` is for the demo plate only;
    operators get an unguessable one."""
    async with db.transaction() as s:
        m = await lock_open(s, merchant_id, "create a plate")
        store = await store_row(s, m.id, store_id, active=True)
        if code is None:
            code = _new_plate_code()
            while await s.get(Plate, code) is not None:  # ~2^-48 per try; cheap to be sure
                code = _new_plate_code()
        now = clock.now()
        plate = Plate(code=code, merchant_id=m.id, store_id=store.id,
                      status=PlateStatus.ACTIVE.value, created_at=now, updated_at=now)
        s.add(plate)
        await record(s, m, "create_plate", m.status, f"{code} {store.id}", operator)
        return plate_view(plate)


async def disable_plate(db: Database, *, code: str, operator: str) -> PlateView:
    async with db.transaction() as s:
        plate = await s.get(Plate, code)
        if plate is None:
            raise FulemaError(ErrorCode.PLATE_NOT_FOUND, f"no plate {code}")
        m = await lock(s, plate.merchant_id)
        if plate.status == PlateStatus.ACTIVE.value:
            plate.status, plate.updated_at = PlateStatus.DISABLED.value, clock.now()
            await record(s, m, "disable_plate", m.status, code, operator)
        return plate_view(plate)


async def get_plate(db: Database, *, code: str) -> PlateInfo:
    """PLATE_NOT_FOUND if missing, disabled, or its store is disabled."""
    async with db.transaction() as s:
        row = (await s.execute(
            select(Plate, Store, Merchant)
            .join(Store, Store.id == Plate.store_id)
            .join(Merchant, Merchant.id == Plate.merchant_id)
            .where(Plate.code == code))).first()
    if row is None:
        raise FulemaError(ErrorCode.PLATE_NOT_FOUND)
    plate, store, merchant = row
    if plate.status != PlateStatus.ACTIVE.value or not store.active:
        raise FulemaError(ErrorCode.PLATE_NOT_FOUND, f"plate {code} is disabled")
    return PlateInfo(code=plate.code, merchant_id=merchant.id, merchant_name=merchant.name,
                     store_id=store.id, store_name=store.name)


def _new_plate_code() -> str:
    return "".join(secrets.choice(domain.PLATE_ALPHABET) for _ in range(domain.PLATE_CODE_LENGTH))


def plate_view(p: Plate) -> PlateView:
    return PlateView(code=p.code, merchant_id=p.merchant_id, store_id=p.store_id, status=p.status,
                     created_at=p.created_at)


def plate_url(settings: Settings, code: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/pay/q/{code}"


def plate_png(url: str, *, scale: int = 10) -> bytes:
    """A PNG of the QR code for `url`.

    Error correction Q (25%): a plate sits on a counter for years and gets scratched and
    splashed; segno raises the level further for free when the data leaves room (boost_error).
    The quiet zone stays at the standard 4 modules so phone cameras find the code.
    """
    qr = segno.make_qr(url, error="q", boost_error=True)
    out = io.BytesIO()
    qr.save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
