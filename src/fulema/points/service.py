"""The points context's public service (`from fulema.points import service as points`).

Every change runs under the account's row lock and writes, in one transaction, the lots, the
account's balance and one statement line with the balance after it, so that
balance == sum(lots.remaining) == sum(movements.points) always holds. Functions taking a
`session` run inside the caller's transaction (an order's creation, an event handler); the
ones taking a `db` are use cases of their own (operator actions, the expiry job).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.points import domain
from fulema.points.models import PointAccount, PointEarning, PointHold, PointLot, PointMovement


def payer_key(channel: str, payer_id: str) -> str:
    """How a payer is known to points and coupons: the channel's payer id, namespaced by the
    channel (an openid means nothing outside WeChat); the bank's customers are `cust:<id>`."""
    return f"{channel}:{payer_id}"


class LotOut(BaseModel):
    lot_id: str
    points: int
    remaining: int
    source: str
    expires_at: datetime


class MovementOut(BaseModel):
    movement_id: str
    kind: str
    points: int
    balance_after: int
    ref: str
    at: datetime


class StatementOut(BaseModel):
    payer_key: str
    balance: int
    lots: list[LotOut]
    movements: list[MovementOut]


@dataclass(frozen=True)
class Held:
    account_id: str
    points: int


# ------------------------------------------------------------------------------- helpers


async def _account(s: AsyncSession, key: str, *, create: bool) -> PointAccount | None:
    """The payer's account, locked for this transaction; created when `create` (a concurrent
    creator's row is read instead)."""
    stmt = select(PointAccount).where(PointAccount.payer_key == key).with_for_update()
    acct = (await s.scalars(stmt)).first()
    if acct is not None or not create:
        return acct
    now = clock.now()
    try:
        async with s.begin_nested():
            s.add(PointAccount(id=new_id("pac"), payer_key=key, balance=0, created_at=now,
                               updated_at=now))
    except IntegrityError:
        pass
    return (await s.scalars(stmt)).first()


def _move(s: AsyncSession, acct: PointAccount, kind: str, points: int, ref: str,
          detail: dict[str, Any] | None = None) -> None:
    acct.balance += points
    acct.updated_at = clock.now()
    s.add(PointMovement(id=new_id("pmv"), account_id=acct.id, kind=kind, points=points,
                        balance_after=acct.balance, ref=ref[:64], detail=detail or {},
                        at=clock.now()))


def _add_lot(s: AsyncSession, acct: PointAccount, settings: Settings, points: int,
             source: str, ref: str) -> None:
    now = clock.now()
    s.add(PointLot(id=new_id("plt"), account_id=acct.id, points=points, remaining=points,
                   source=source, ref=ref[:64],
                   expires_at=now + timedelta(days=settings.points_validity_days),
                   created_at=now))


async def _take(s: AsyncSession, acct: PointAccount, points: int) -> list[tuple[str, int]]:
    """Take `points` from the account's live lots, first to expire first."""
    now = clock.now()
    lots = list((await s.scalars(select(PointLot).where(
        PointLot.account_id == acct.id, PointLot.remaining > 0,
        PointLot.expires_at > now))).all())
    taken = domain.take([domain.LotLeft(x.id, x.remaining, x.expires_at) for x in lots], points)
    by_id = {x.id: x for x in lots}
    for lot_id, n in taken:
        by_id[lot_id].remaining -= n
    return taken


# ------------------------------------------------------------------------ reads


async def balance(db: Database, *, key: str) -> int:
    async with db.transaction() as s:
        row = (await s.execute(select(PointAccount.balance).where(
            PointAccount.payer_key == key))).first()
        return int(row[0]) if row else 0


async def balance_in(s: AsyncSession, *, key: str) -> int:
    row = (await s.execute(select(PointAccount.balance).where(
        PointAccount.payer_key == key))).first()
    return int(row[0]) if row else 0


async def statement(db: Database, *, key: str, limit: int = 200) -> StatementOut:
    async with db.transaction() as s:
        acct = (await s.scalars(select(PointAccount).where(PointAccount.payer_key == key))).first()
        if acct is None:
            raise FulemaError(ErrorCode.POINTS_ACCOUNT_NOT_FOUND)
        lots = (await s.scalars(select(PointLot).where(
            PointLot.account_id == acct.id, PointLot.remaining > 0).order_by(
            PointLot.expires_at, PointLot.id))).all()
        moves = (await s.scalars(select(PointMovement).where(
            PointMovement.account_id == acct.id).order_by(
            PointMovement.at, PointMovement.id).limit(limit))).all()
        return StatementOut(
            payer_key=key, balance=acct.balance,
            lots=[LotOut(lot_id=x.id, points=x.points, remaining=x.remaining, source=x.source,
                         expires_at=x.expires_at) for x in lots],
            movements=[MovementOut(movement_id=m.id, kind=m.kind, points=m.points,
                                   balance_after=m.balance_after, ref=m.ref, at=m.at)
                       for m in moves])


# ------------------------------------------------------------- redemption in a payment


async def hold(s: AsyncSession, *, order_id: str, key: str, points: int) -> Held:
    """Take `points` for an order being created (inside its transaction)."""
    if points <= 0:
        raise FulemaError(ErrorCode.INVALID_POINTS, "points must be positive")
    acct = await _account(s, key, create=False)
    if acct is None or acct.balance < points:
        raise FulemaError(ErrorCode.POINTS_INSUFFICIENT,
                          f"{points} points asked, {acct.balance if acct else 0} available")
    taken = await _take(s, acct, points)
    _move(s, acct, "REDEEM", -points, order_id)
    now = clock.now()
    s.add(PointHold(order_id=order_id, account_id=acct.id, points=points, returned=0,
                    lots=[[lot_id, n] for lot_id, n in taken], state="HELD", created_at=now,
                    updated_at=now))
    return Held(account_id=acct.id, points=points)


async def _hold_moving(s: AsyncSession, order_id: str, frm: str, to: str) -> PointHold | None:
    moved = await s.execute(update(PointHold).where(
        PointHold.order_id == order_id, PointHold.state == frm).values(
        state=to, updated_at=clock.now()))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await s.get(PointHold, order_id, populate_existing=True)


async def consume_hold(s: AsyncSession, *, order_id: str) -> None:
    await _hold_moving(s, order_id, "HELD", "CONSUMED")


async def release_hold(s: AsyncSession, *, order_id: str) -> None:
    """Give an unpaid order's points back to the lots they came from (a lot that expired in
    between is expired again by the next expiry round)."""
    h = await _hold_moving(s, order_id, "HELD", "RELEASED")
    if h is None:
        return
    acct = await s.get(PointAccount, h.account_id, with_for_update=True)
    assert acct is not None
    for lot_id, n in h.lots:
        lot = await s.get(PointLot, lot_id, with_for_update=True)
        if lot is not None:
            lot.remaining += int(n)
    _move(s, acct, "RELEASE", h.points, order_id)


async def retake_hold(s: AsyncSession, *, order_id: str) -> int:
    """An order paid after it was closed: take its points again, as many as the payer still
    has (the shortfall is recorded on the statement line)."""
    h = await _hold_moving(s, order_id, "RELEASED", "CONSUMED")
    if h is None:
        return 0
    acct = await s.get(PointAccount, h.account_id, with_for_update=True)
    assert acct is not None
    n = min(h.points, acct.balance)
    if n:
        await _take(s, acct, n)
    _move(s, acct, "REDEEM", -n, order_id, {"asked": h.points, "short": h.points - n})
    return n


async def lock_accounts_of_holds(s: AsyncSession, *, order_ids: list[str]) -> None:
    """Lock, in id order, the accounts whose points these orders hold, before a round of
    settlements takes them one order at a time: `points.earn` locks a round's accounts in id
    order too, so the two consumers' rounds cannot deadlock on two payers taken in opposite
    orders. Nothing is locked for fewer than two accounts (one cannot deadlock)."""
    if len(order_ids) < 2:
        return
    ids = sorted(set((await s.scalars(select(PointHold.account_id).where(
        PointHold.order_id.in_(sorted(set(order_ids)))))).all()))
    if len(ids) > 1:
        await s.execute(select(PointAccount.id).where(PointAccount.id.in_(ids))
                        .order_by(PointAccount.id).with_for_update())


async def return_points(s: AsyncSession, settings: Settings, *, order_id: str, points: int,
                        ref: str) -> None:
    """A refund's share of redeemed points, back as a new lot (fresh validity)."""
    if points <= 0:
        return
    h = await s.get(PointHold, order_id, with_for_update=True)
    if h is None:
        return
    acct = await s.get(PointAccount, h.account_id, with_for_update=True)
    assert acct is not None
    n = min(points, h.points - h.returned)
    if n <= 0:
        return
    h.returned += n
    _add_lot(s, acct, settings, n, "RETURN", ref)
    _move(s, acct, "RETURN", n, ref, {"order_id": order_id})


# ------------------------------------------------------------------ earn and claw back


@dataclass
class Known:
    """What a batch of earnings read up front, in its transaction: the orders among them that
    have already earned, and the payers' accounts (locked). `earn` keeps both up to date."""

    earned: set[str]
    accounts: dict[str, PointAccount]


async def known_for(s: AsyncSession, *, order_ids: list[str], keys: list[str]) -> Known:
    """One SELECT for the earnings and one (locking, in id order) for the accounts of a batch,
    instead of one of each per payment."""
    earned: set[str] = set()
    accounts: dict[str, PointAccount] = {}
    if order_ids:
        earned = set((await s.scalars(select(PointEarning.order_id).where(
            PointEarning.order_id.in_(sorted(set(order_ids)))))).all())
    if keys:
        accounts = {a.payer_key: a for a in (await s.scalars(
            select(PointAccount).where(PointAccount.payer_key.in_(sorted(set(keys))))
            .order_by(PointAccount.id).with_for_update())).all()}
    return Known(earned=earned, accounts=accounts)


async def earn(s: AsyncSession, settings: Settings, *, order_id: str, key: str, paid_fen: int,
               amount_fen: int, multiplier: int = 1, known: Known | None = None) -> int:
    """Points for a payment, once per order (a second call for the same order earns nothing).
    With `known` (a batch's reads, see `known_for`) the same, without reading again."""
    points = domain.earned(paid_fen=paid_fen, per_yuan=settings.points_earn_per_yuan,
                           multiplier=multiplier)
    if points <= 0:
        return 0
    if known is None:
        if await s.get(PointEarning, order_id) is not None:
            return 0
        acct = await _account(s, key, create=True)
    else:
        if order_id in known.earned:
            return 0
        acct = known.accounts.get(key) or await _account(s, key, create=True)
    assert acct is not None
    if known is not None:
        known.earned.add(order_id)
        known.accounts[key] = acct
    s.add(PointEarning(order_id=order_id, account_id=acct.id, amount=amount_fen, points=points,
                       clawed=0, created_at=clock.now()))
    _add_lot(s, acct, settings, points, "EARN", order_id)
    _move(s, acct, "EARN", points, order_id, {"multiplier": multiplier})
    return points


async def claw_back(s: AsyncSession, *, order_id: str, refunded_fen: int, ref: str) -> int:
    """Take back earned points in proportion to what the order has had refunded so far; never
    more than the payer has left (the shortfall is on the statement line)."""
    e = await s.get(PointEarning, order_id, with_for_update=True)
    if e is None:
        return 0
    due = domain.claw_back_due(points=e.points, amount_fen=e.amount, refunded_fen=refunded_fen,
                               clawed=e.clawed)
    if due <= 0:
        return 0
    acct = await s.get(PointAccount, e.account_id, with_for_update=True)
    assert acct is not None
    n = min(due, acct.balance)
    if n:
        await _take(s, acct, n)
    e.clawed += due
    _move(s, acct, "CLAWBACK", -n, ref, {"order_id": order_id, "due": due, "short": due - n})
    return n


# ---------------------------------------------------------------------- use cases


async def expire_lots(db: Database, *, limit: int = 500) -> int:
    """Expire lots whose date has passed (the scheduled job); returns how many lots."""
    now = clock.now()
    async with db.transaction() as s:
        due = list((await s.execute(select(PointLot.account_id).where(
            PointLot.expires_at <= now, PointLot.remaining > 0).limit(limit))).scalars())
    done = 0
    for account_id in dict.fromkeys(due):
        async with db.transaction() as s:
            acct = await s.get(PointAccount, account_id, with_for_update=True)
            if acct is None:
                continue
            lots = (await s.scalars(select(PointLot).where(
                PointLot.account_id == account_id, PointLot.expires_at <= now,
                PointLot.remaining > 0))).all()
            for lot in lots:
                _move(s, acct, "EXPIRE", -lot.remaining, lot.id)
                lot.remaining = 0
                done += 1
    return done


async def adjust(db: Database, settings: Settings, *, actor: str, key: str, points: int,
                 reason: str) -> StatementOut:
    """An operator's correction: positive adds a lot, negative takes first to expire."""
    if points == 0:
        raise FulemaError(ErrorCode.INVALID_POINTS, "an adjustment of 0 points changes nothing")
    async with db.transaction() as s:
        acct = await _account(s, key, create=points > 0)
        if acct is None:
            raise FulemaError(ErrorCode.POINTS_ACCOUNT_NOT_FOUND)
        if points > 0:
            _add_lot(s, acct, settings, points, "ADJUST", f"op:{actor}")
        else:
            await _take(s, acct, -points)
        _move(s, acct, "ADJUST", points, f"op:{actor}", {"reason": reason})
        await audit.record(s, actor=actor, action="points.adjust", target_type="points_account",
                           target_id=acct.id, detail={"points": points, "reason": reason})
    return await statement(db, key=key)


async def redeem(db: Database, *, actor: str, key: str, points: int, reason: str
                 ) -> StatementOut:
    """Points spent outside a payment (a gift at the branch), by an operator."""
    if points <= 0:
        raise FulemaError(ErrorCode.INVALID_POINTS, "points to redeem must be positive")
    async with db.transaction() as s:
        acct = await _account(s, key, create=False)
        if acct is None:
            raise FulemaError(ErrorCode.POINTS_ACCOUNT_NOT_FOUND)
        await _take(s, acct, points)
        _move(s, acct, "REDEEM", -points, f"op:{actor}", {"reason": reason})
        await audit.record(s, actor=actor, action="points.redeem", target_type="points_account",
                           target_id=acct.id, detail={"points": points, "reason": reason})
    return await statement(db, key=key)
