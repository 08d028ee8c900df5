"""Operators' view of the books (role finance): the trial balance, an account's balance and its
day-by-day movements, and the entries of a business reference (an order, a refund, a batch, a
payout). Read-only: the ledger is written only by its posting rules."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from fulema.core.db import Database
from fulema.core.errors import ErrorCode
from fulema.core.web import OperatorRoute, error_responses, get_db, require_role
from fulema.gateway.protection import shed_when_degraded
from fulema.ledger import service

router = APIRouter(prefix="/ops/v1/ledger", tags=["ledger"], route_class=OperatorRoute)
Finance = Annotated[str, Depends(require_role("finance"))]
Db = Annotated[Database, Depends(get_db)]
E = ErrorCode
AUTH = (E.UNAUTHORIZED,)


class AccountBalanceOut(BaseModel):
    account: str
    balance: int = Field(description="fen, debit positive: a merchant payable is negative")


class TrialBalanceOut(BaseModel):
    accounts: list[AccountBalanceOut]
    total: int = Field(description="always 0: every entry's postings sum to zero")


class DayBalanceOut(BaseModel):
    day: date
    movement: int
    balance: int = Field(description="closing balance of the trade date")


class AccountDaysOut(BaseModel):
    account: str
    days: list[DayBalanceOut]


class PostingOut(BaseModel):
    account: str
    kind: str
    amount: int
    cleared_by: str | None


class EntryOut(BaseModel):
    entry_id: str
    kind: str
    business_ref: str
    source_key: str
    merchant_id: str | None
    trade_date: date
    postings: list[PostingOut]


class EntriesOut(BaseModel):
    entries: list[EntryOut]


@router.get("/trial-balance", summary="Trial balance: every account, summing to zero",
            response_model=TrialBalanceOut, dependencies=[Depends(shed_when_degraded)],
            responses=error_responses(*AUTH, E.RATE_LIMITED))
async def trial_balance(db: Db, _: Finance, through: date | None = None) -> TrialBalanceOut:
    tb = await service.trial_balance(db, through=through)
    return TrialBalanceOut(accounts=[AccountBalanceOut(account=a.account, balance=a.balance)
                                     for a in tb.accounts], total=tb.total)


@router.get("/accounts/{account}", summary="An account's balance (through a trade date)",
            response_model=AccountBalanceOut, responses=error_responses(*AUTH))
async def account_balance(account: str, db: Db, _: Finance,
                          through: date | None = None) -> AccountBalanceOut:
    return AccountBalanceOut(account=account, balance=await service.account_balance(
        db, acct=account, through=through))


@router.get("/accounts/{account}/days", summary="An account's movement and balance per day",
            response_model=AccountDaysOut, responses=error_responses(*AUTH, E.VALIDATION_ERROR))
async def account_days(account: str, db: Db, _: Finance,
                       start: Annotated[date, Query(alias="from")],
                       end: Annotated[date, Query(alias="to")]) -> AccountDaysOut:
    days = await service.daily_balances(db, acct=account, start=start, end=end)
    return AccountDaysOut(account=account, days=[
        DayBalanceOut(day=d.day, movement=d.movement, balance=d.balance) for d in days])


@router.get("/entries", summary="The entries of a business reference",
            response_model=EntriesOut, responses=error_responses(*AUTH))
async def entries(db: Db, _: Finance,
                  business_ref: Annotated[str, Query(min_length=1, max_length=64)]
                  ) -> EntriesOut:
    found = await service.entries_for(db, business_ref=business_ref)
    return EntriesOut(entries=[EntryOut(
        entry_id=e.entry_id, kind=e.kind, business_ref=e.business_ref, source_key=e.source_key,
        merchant_id=e.merchant_id, trade_date=e.trade_date,
        postings=[PostingOut(account=p.account, kind=p.kind, amount=p.amount,
                             cleared_by=p.cleared_by) for p in e.postings]) for e in found])
