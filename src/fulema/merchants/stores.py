"""Stores (门店) and the terminals bound to them (cash registers, POS, cloud speakers).

A device may be bound to one active terminal at a time; disabling a store unbinds its devices
and disables its plates. Payments reads stores through `get_store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.merchants import domain
from fulema.merchants.domain import PlateStatus, TerminalKind
from fulema.merchants.lifecycle import lock, lock_open, record
from fulema.merchants.models import Plate, Store, Terminal


@dataclass(frozen=True)
class StoreInfo:
    id: str
    merchant_id: str
    name: str
    address: str
    active: bool


@dataclass(frozen=True)
class TerminalInfo:
    id: str
    merchant_id: str
    store_id: str
    kind: str
    serial_no: str
    speaker_id: str | None
    active: bool


async def add_store(db: Database, *, merchant_id: str, name: str, address: str,
                    operator: str) -> StoreInfo:
    async with db.transaction() as s:
        m = await lock_open(s, merchant_id, "add a store")
        now = clock.now()
        store = Store(id=new_id("sto"), merchant_id=m.id, name=name, address=address, active=True,
                      created_at=now, updated_at=now)
        s.add(store)
        await record(s, m, "add_store", m.status, f"{store.id} {name}", operator)
        return store_info(store)


async def disable_store(db: Database, *, merchant_id: str, store_id: str,
                        operator: str) -> StoreInfo:
    """Stops the store: its terminals are unbound (devices can move) and its plates disabled."""
    async with db.transaction() as s:
        m = await lock(s, merchant_id)
        store = await store_row(s, m.id, store_id)
        if store.active:
            now = clock.now()
            store.active, store.updated_at = False, now
            for t in await s.scalars(select(Terminal).where(Terminal.store_id == store.id,
                                                            Terminal.active.is_(True))):
                _deactivate_terminal(t, now)
            for p in await s.scalars(select(Plate).where(Plate.store_id == store.id,
                                                         Plate.status == PlateStatus.ACTIVE.value)):
                p.status, p.updated_at = PlateStatus.DISABLED.value, now
            await record(s, m, "disable_store", m.status, store.id, operator)
        return store_info(store)


async def add_terminal(db: Database, *, merchant_id: str, store_id: str, kind: TerminalKind,
                       serial_no: str, operator: str, speaker_id: str | None = None) -> TerminalInfo:
    """Binds a device to an active store. A serial (per kind) or speaker id is bound once."""
    kind = TerminalKind(kind)
    domain.check_terminal(kind, speaker_id)
    serial_key = f"{kind.value}:{serial_no}"
    clash = [Terminal.active_serial_key == serial_key]
    if speaker_id:
        clash.append(Terminal.active_speaker_id == speaker_id)
    try:
        async with db.transaction() as s:
            m = await lock_open(s, merchant_id, "add a terminal")
            store = await store_row(s, m.id, store_id, active=True)
            taken = await s.scalar(select(Terminal.id).where(or_(*clash)).limit(1))
            if taken:
                raise _duplicate_terminal()
            now = clock.now()
            t = Terminal(id=new_id("trm"), merchant_id=m.id, store_id=store.id, kind=kind.value,
                         serial_no=serial_no, speaker_id=speaker_id, active=True,
                         active_serial_key=serial_key, active_speaker_id=speaker_id,
                         created_at=now, updated_at=now)
            s.add(t)
            await record(s, m, "add_terminal", m.status, f"{t.id} {kind.value} {serial_no}", operator)
    except IntegrityError as exc:  # the same device bound concurrently?
        async with db.transaction() as s:
            if await s.scalar(select(Terminal.id).where(or_(*clash)).limit(1)):
                raise _duplicate_terminal() from exc
        raise
    return terminal_info(t)


async def disable_terminal(db: Database, *, merchant_id: str, store_id: str, terminal_id: str,
                           operator: str) -> TerminalInfo:
    async with db.transaction() as s:
        m = await lock(s, merchant_id)
        t = await s.get(Terminal, terminal_id)
        if t is None or t.merchant_id != m.id or t.store_id != store_id:
            raise FulemaError(ErrorCode.TERMINAL_NOT_FOUND, f"no terminal {terminal_id} in this store")
        if t.active:
            _deactivate_terminal(t, clock.now())
            await record(s, m, "disable_terminal", m.status, t.id, operator)
        return terminal_info(t)


async def get_store(db: Database, *, merchant_id: str, store_id: str) -> StoreInfo:
    """STORE_NOT_FOUND if missing, another merchant's, or disabled."""
    async with db.transaction() as s:
        store = await s.get(Store, store_id)
    if store is None or store.merchant_id != merchant_id or not store.active:
        raise FulemaError(ErrorCode.STORE_NOT_FOUND, f"no active store {store_id} for this merchant")
    return store_info(store)


async def speakers_for_order(db: Database, *, merchant_id: str,
                             store_id: str | None) -> list[TerminalInfo]:
    """The active cloud speakers that announce an order: its store's, or, for an order
    without a store, those of the merchant's default store (its oldest active one). Messaging
    reads these; it never reads the terminals table."""
    async with db.transaction() as s:
        if not store_id:
            store_id = await s.scalar(select(Store.id).where(
                Store.merchant_id == merchant_id, Store.active.is_(True))
                .order_by(Store.created_at, Store.id).limit(1))
            if store_id is None:
                return []
        rows = (await s.scalars(select(Terminal).where(
            Terminal.merchant_id == merchant_id, Terminal.store_id == store_id,
            Terminal.kind == TerminalKind.SPEAKER.value, Terminal.active.is_(True))
            .order_by(Terminal.id))).all()
    return [terminal_info(t) for t in rows]


async def speakers_for_stores(db: Database, stores: set[tuple[str, str]]
                              ) -> dict[tuple[str, str], list[TerminalInfo]]:
    """`speakers_for_order` for many (merchant id, store id) pairs in one query: a round of
    payments at many stores costs one read, not one each (the speakers' latency)."""
    if not stores:
        return {}
    async with db.transaction() as s:
        return await speakers_for_stores_in(s, stores)


async def speakers_for_stores_in(s: AsyncSession, stores: set[tuple[str, str]]
                                 ) -> dict[tuple[str, str], list[TerminalInfo]]:
    """`speakers_for_stores` read in the caller's transaction: the speakers' consumer reads
    them in the transaction that records the announcements, one BEGIN/COMMIT fewer on the
    way from a payment to its speaker."""
    found: dict[tuple[str, str], list[TerminalInfo]] = {pair: [] for pair in stores}
    if not stores:
        return found
    rows = (await s.scalars(select(Terminal).where(
        Terminal.store_id.in_(sorted({store for _, store in stores})),
        Terminal.kind == TerminalKind.SPEAKER.value, Terminal.active.is_(True))
        .order_by(Terminal.id))).all()
    for t in rows:
        key = (t.merchant_id, t.store_id)
        if key in found:
            found[key].append(terminal_info(t))
    return found


async def speaker_by_id(db: Database, *, speaker_id: str) -> TerminalInfo | None:
    """The active speaker terminal a device id is bound to, or None."""
    async with db.transaction() as s:
        t = await s.scalar(select(Terminal).where(Terminal.active_speaker_id == speaker_id))
    return terminal_info(t) if t is not None else None


async def store_row(s: AsyncSession, merchant_id: str, store_id: str, *,
                     active: bool = False) -> Store:
    store = await s.get(Store, store_id)
    if store is None or store.merchant_id != merchant_id or (active and not store.active):
        raise FulemaError(ErrorCode.STORE_NOT_FOUND,
                          f"no {'active ' if active else ''}store {store_id} for this merchant")
    return store


def _duplicate_terminal() -> FulemaError:
    return FulemaError(ErrorCode.DUPLICATE_TERMINAL,
                       "this serial_no (for this kind) or speaker_id is bound to an active terminal")


def _deactivate_terminal(t: Terminal, now: datetime) -> None:
    t.active, t.active_serial_key, t.active_speaker_id, t.updated_at = False, None, None, now


def store_info(x: Store) -> StoreInfo:
    return StoreInfo(id=x.id, merchant_id=x.merchant_id, name=x.name, address=x.address,
                     active=x.active)


def terminal_info(t: Terminal) -> TerminalInfo:
    return TerminalInfo(id=t.id, merchant_id=t.merchant_id, store_id=t.store_id, kind=t.kind,
                        serial_no=t.serial_no, speaker_id=t.speaker_id, active=t.active)
