"""The ledger's public API: balances, the trial balance, an order's entries, and the open items
settlement clears. Other contexts call only these functions.

Settlement's functions take the caller's session: a batch, its ledger entry and the clearing
of the postings it took commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.ledger import domain
from fulema.ledger.domain import AccountKind, Line, LineKind, account
from fulema.ledger.models import LedgerEntry, LedgerPosting
from fulema.ledger.postings import already_posted, write_entry

__all__ = [
    "AccountBalance",
    "AccountKind",
    "DayBalance",
    "EntryView",
    "Line",
    "LineKind",
    "OpenItems",
    "PostingView",
    "StatementLine",
    "TrialBalance",
    "account",
    "account_balance",
    "business_date",
    "clear_open_items",
    "daily_balances",
    "entries_for",
    "merchant_payable",
    "merchants_with_open_items",
    "payout_lines",
    "payout_returned_lines",
    "post_entry",
    "release_items",
    "settlement_lines",
    "statement_lines",
    "trial_balance",
]


@dataclass(frozen=True)
class AccountBalance:
    account: str
    balance: int  # fen, debit positive: a merchant's payable is negative (we owe it)


@dataclass(frozen=True)
class DayBalance:
    day: date
    movement: int
    balance: int  # closing balance of the day


@dataclass(frozen=True)
class TrialBalance:
    accounts: tuple[AccountBalance, ...]
    total: int  # always 0


@dataclass(frozen=True)
class PostingView:
    account: str
    kind: str
    amount: int
    cleared_by: str | None


@dataclass(frozen=True)
class EntryView:
    entry_id: str
    kind: str
    business_ref: str
    source_key: str
    merchant_id: str | None
    trade_date: date
    postings: tuple[PostingView, ...]


@dataclass(frozen=True)
class OpenItems:
    """What a settlement batch took from a merchant's payable, by line kind (fen, debit +)."""

    by_kind: dict[str, int]

    @property
    def net_owed(self) -> int:
        """What we owe the merchant for these items (the payable's credit, as a positive)."""
        return -sum(self.by_kind.values())

    def owed(self, *kinds: LineKind) -> int:
        return -sum(self.by_kind.get(k.value, 0) for k in kinds)


def merchant_payable(merchant_id: str) -> str:
    return account(AccountKind.MERCHANT_PAYABLE, merchant_id)


async def post_entry(session: AsyncSession, *, source_key: str, kind: str, business_ref: str,
                     merchant_id: str | None, trade_date: date, lines: list[Line],
                     cleared_by: str | None = None) -> bool:
    """Post a balanced entry once per `source_key`; False when it was posted before."""
    if await already_posted(session, source_key):
        return False
    await write_entry(session, source_key=source_key, kind=kind, business_ref=business_ref,
                      merchant_id=merchant_id, trade_date=trade_date, lines=lines,
                      cleared_by=cleared_by)
    return True


def _due(acct: str, through: date | None, same_day_through: date | None) -> object:
    """Open postings of a payable due by the run: ordinary ones traded on or before `through`,
    same-day ones on or before `same_day_through`."""
    conds = []
    if through is not None:
        conds.append(and_(LedgerPosting.same_day.is_(False), LedgerPosting.trade_date <= through))
    if same_day_through is not None:
        conds.append(and_(LedgerPosting.same_day.is_(True),
                          LedgerPosting.trade_date <= same_day_through))
    if not conds:
        return false()
    return and_(LedgerPosting.account == acct, LedgerPosting.cleared_by.is_(None), or_(*conds))


async def clear_open_items(session: AsyncSession, *, merchant_id: str, batch_id: str,
                           through: date | None, same_day_through: date | None) -> OpenItems:
    """Mark the merchant's due open items as taken by `batch_id` and sum them by kind.

    The caller may give them back (`release_items`) in the same transaction when the batch
    does not settle (a hold, a net that is not positive): they stay open for the next run."""
    await session.execute(update(LedgerPosting).where(
        _due(merchant_payable(merchant_id), through, same_day_through)  # type: ignore[arg-type]
    ).values(cleared_by=batch_id).execution_options(synchronize_session=False))
    rows = (await session.execute(
        select(LedgerPosting.kind, func.sum(LedgerPosting.amount))
        .where(LedgerPosting.cleared_by == batch_id,
               LedgerPosting.account == merchant_payable(merchant_id))
        .group_by(LedgerPosting.kind))).all()
    return OpenItems(by_kind={str(k): int(v) for k, v in rows})


async def release_items(session: AsyncSession, *, merchant_id: str, batch_id: str) -> None:
    await session.execute(update(LedgerPosting).where(
        LedgerPosting.cleared_by == batch_id,
        LedgerPosting.account == merchant_payable(merchant_id),
    ).values(cleared_by=None).execution_options(synchronize_session=False))


async def merchants_with_open_items(db: Database) -> list[str]:
    prefix = AccountKind.MERCHANT_PAYABLE.value + ":"
    async with db.transaction() as s:
        accounts = (await s.scalars(select(LedgerPosting.account).where(
            LedgerPosting.cleared_by.is_(None), LedgerPosting.account.startswith(prefix))
            .distinct())).all()
    return sorted(a[len(prefix):] for a in accounts)


async def account_balance(db: Database, *, acct: str, through: date | None = None) -> int:
    async with db.transaction() as s:
        q = select(func.coalesce(func.sum(LedgerPosting.amount), 0)).where(
            LedgerPosting.account == acct)
        if through is not None:
            q = q.where(LedgerPosting.trade_date <= through)
        return int(await s.scalar(q) or 0)


async def daily_balances(db: Database, *, acct: str, start: date, end: date
                         ) -> list[DayBalance]:
    """Each trade date in [start, end] with a movement: the movement and the closing balance."""
    if end < start:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "to: on or after from")
    async with db.transaction() as s:
        opening = int(await s.scalar(select(func.coalesce(func.sum(LedgerPosting.amount), 0))
                                     .where(LedgerPosting.account == acct,
                                            LedgerPosting.trade_date < start)) or 0)
        rows = (await s.execute(
            select(LedgerPosting.trade_date, func.sum(LedgerPosting.amount))
            .where(LedgerPosting.account == acct, LedgerPosting.trade_date >= start,
                   LedgerPosting.trade_date <= end)
            .group_by(LedgerPosting.trade_date).order_by(LedgerPosting.trade_date))).all()
    out, running = [], opening
    for day, moved in rows:
        running += int(moved)
        out.append(DayBalance(day=day, movement=int(moved), balance=running))
    return out


async def trial_balance(db: Database, *, through: date | None = None) -> TrialBalance:
    """Every account's balance; their total is zero when the books are whole."""
    async with db.transaction() as s:
        q = select(LedgerPosting.account, func.sum(LedgerPosting.amount)).group_by(
            LedgerPosting.account).order_by(LedgerPosting.account)
        if through is not None:
            q = q.where(LedgerPosting.trade_date <= through)
        rows = (await s.execute(q)).all()
    accounts = tuple(AccountBalance(account=a, balance=int(b)) for a, b in rows)
    return TrialBalance(accounts=accounts, total=sum(a.balance for a in accounts))


async def entries_for(db: Database, *, business_ref: str) -> list[EntryView]:
    """The entries of a business reference (an order, a refund, a batch, a payout), in order."""
    async with db.transaction() as s:
        entries = (await s.scalars(select(LedgerEntry).where(
            LedgerEntry.business_ref == business_ref).order_by(LedgerEntry.id))).all()
        ids = [e.id for e in entries]
        postings = (await s.scalars(select(LedgerPosting).where(
            LedgerPosting.entry_id.in_(ids)).order_by(LedgerPosting.id))).all() if ids else []
    by_entry: dict[str, list[PostingView]] = {}
    for p in postings:
        by_entry.setdefault(p.entry_id, []).append(
            PostingView(account=p.account, kind=p.kind, amount=p.amount, cleared_by=p.cleared_by))
    return [EntryView(entry_id=e.id, kind=e.kind, business_ref=e.business_ref,
                      source_key=e.source_key, merchant_id=e.merchant_id, trade_date=e.trade_date,
                      postings=tuple(by_entry.get(e.id, []))) for e in entries]


@dataclass(frozen=True)
class StatementLine:
    """One entry of a merchant's payable, as its statement shows it (debit-positive sums of
    the entry's lines on the merchant's payable, by kind)."""

    entry_id: str
    kind: str
    business_ref: str
    external_ref: str | None
    channel: str | None
    trade_date: date
    posted_at: datetime
    by_kind: dict[str, int]


async def statement_lines(db: Database, *, merchant_id: str, trade_date: date | None = None,
                          batch_id: str | None = None) -> list[StatementLine]:
    """The entries touching a merchant's payable on a trade date, or those a settlement batch
    took, oldest first."""
    acct = merchant_payable(merchant_id)
    q = (select(LedgerEntry.id, LedgerEntry.kind, LedgerEntry.business_ref,
                LedgerEntry.external_ref, LedgerEntry.channel, LedgerEntry.trade_date,
                LedgerEntry.posted_at, LedgerPosting.kind, func.sum(LedgerPosting.amount))
         .join(LedgerPosting, LedgerPosting.entry_id == LedgerEntry.id)
         .where(LedgerPosting.account == acct)
         .group_by(LedgerEntry.id, LedgerEntry.kind, LedgerEntry.business_ref,
                   LedgerEntry.external_ref, LedgerEntry.channel, LedgerEntry.trade_date,
                   LedgerEntry.posted_at, LedgerPosting.kind)
         .order_by(LedgerEntry.posted_at, LedgerEntry.id))
    if trade_date is not None:
        q = q.where(LedgerEntry.merchant_id == merchant_id, LedgerEntry.trade_date == trade_date)
    if batch_id is not None:
        q = q.where(LedgerPosting.cleared_by == batch_id)
    async with db.transaction() as s:
        rows = (await s.execute(q)).all()
    lines: dict[str, StatementLine] = {}
    for eid, kind, ref, ext, channel, day, at, line_kind, fen in rows:
        line = lines.get(eid)
        if line is None:
            line = lines[eid] = StatementLine(entry_id=eid, kind=kind, business_ref=ref,
                                              external_ref=ext, channel=channel, trade_date=day,
                                              posted_at=at, by_kind={})
        line.by_kind[str(line_kind)] = int(fen)
    return list(lines.values())


# Re-exported for callers that build entries (settlement): the posting rules themselves.
business_date = domain.business_date
settlement_lines = domain.settlement_lines
payout_lines = domain.payout_lines
payout_returned_lines = domain.payout_returned_lines
