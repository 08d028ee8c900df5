"""Writing the books: one journal entry per business event, exactly once.

`write_entry` is the only writer of entries and postings: it checks the lines balance and
records the entry under its unique `source_key` (for an event, the event id), so a redelivered
event finds its entry and posts nothing. `post_event` is the `ledger.postings` consumer's
handler: it reads the event, asks the posting rules in `domain` and writes in one transaction;
its batch handler does the same for a dispatcher round, a run of payments in three statements.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.clock import as_utc, clock
from fulema.core.db import Database, table_of
from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.ledger import domain
from fulema.ledger.domain import Line
from fulema.ledger.models import LedgerEntry, LedgerPayment, LedgerPosting
from fulema.merchants import service as merchants

TOPICS = ("payment.succeeded", "refund.requested", "refund.succeeded", "refund.failed",
          "reconciliation.adjustment")
_INSERT_ENTRIES = insert(table_of(LedgerEntry))
_INSERT_POSTINGS = insert(table_of(LedgerPosting))
_INSERT_PAYMENTS = insert(table_of(LedgerPayment))


async def already_posted(session: AsyncSession, source_key: str) -> bool:
    return (await session.scalar(select(LedgerEntry.id).where(
        LedgerEntry.source_key == source_key))) is not None


def entry_rows(*, source_key: str, kind: str, business_ref: str, merchant_id: str | None,
               trade_date: date, lines: list[Line], same_day: bool = False,
               cleared_by: str | None = None, reverses: str | None = None,
               external_ref: str | None = None, channel: str | None = None
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rows of one balanced entry (`ledger_entries`, `ledger_postings`); ValueError when
    the lines do not balance. `cleared_by` marks its merchant-payable lines as already taken
    by that settlement batch (the batch's own settlement line)."""
    lines = domain.check_balanced(lines)
    entry_id = new_id("je")
    entry = dict(id=entry_id, source_key=source_key, kind=kind, business_ref=business_ref,
                 merchant_id=merchant_id, external_ref=external_ref, channel=channel,
                 trade_date=trade_date, reverses=reverses, posted_at=clock.now())
    payable = domain.AccountKind.MERCHANT_PAYABLE.value + ":"
    postings = [
        dict(id=new_id("jp"), entry_id=entry_id, account=x.account, kind=x.kind.value,
             amount=x.fen, currency=domain.CURRENCY, trade_date=trade_date, same_day=same_day,
             cleared_by=cleared_by if x.account.startswith(payable) else None)
        for x in lines]
    return entry, postings


class EntryArgs(TypedDict, total=False):
    """`entry_rows`' keyword arguments, for `write_entry`'s callers to be checked against."""

    source_key: Required[str]
    kind: Required[str]
    business_ref: Required[str]
    merchant_id: Required[str | None]
    trade_date: Required[date]
    lines: Required[list[Line]]
    same_day: bool
    cleared_by: str | None
    reverses: str | None
    external_ref: str | None
    channel: str | None


async def write_entry(session: AsyncSession, **entry: Unpack[EntryArgs]) -> str:
    """Record a balanced entry (`entry_rows`' arguments); its id. The unique source_key
    refuses a second entry for the same source (IntegrityError)."""
    row, postings = entry_rows(**entry)
    await session.execute(_INSERT_ENTRIES, [row])
    await session.execute(_INSERT_POSTINGS, postings)
    return str(row["id"])


def _instant(payload: dict[str, Any], key: str, fallback: datetime | None) -> datetime:
    raw = payload.get(key)
    if isinstance(raw, str) and raw:
        return as_utc(datetime.fromisoformat(raw))
    return fallback or clock.now()


class FeeRates:
    """Merchants' fee rates as the merchants context answers them, remembered for a short
    while: posting a payment then costs one transaction, not two. A rate an operator changes
    applies to payments posted from at most `ttl` later (rates apply when a payment is posted,
    not when it was made, in any case: docs/ledger.md)."""

    def __init__(self, ttl: timedelta = timedelta(seconds=30)) -> None:
        self.ttl = ttl
        self._known: dict[tuple[str, str], tuple[int, datetime]] = {}

    async def bps(self, db: Database, merchant_id: str, channel: str) -> int:
        now = clock.now()
        hit = self._known.get((merchant_id, channel))
        if hit is not None and hit[1] > now:
            return hit[0]
        bps = await merchants.fee_rate_bps(db, merchant_id=merchant_id, channel=channel)
        if len(self._known) > 100_000:
            self._known.clear()
        self._known[(merchant_id, channel)] = (bps, now + self.ttl)
        return bps


def make_handler(cutoff: time, rates: FeeRates | None = None) -> Any:
    """The `ledger.postings` handler for a day that ends at `cutoff` (Asia/Shanghai)."""
    fee_rates = rates or FeeRates()

    async def post_event(db: Database, event: Event) -> None:
        if event.topic == "payment.succeeded":
            await _post_payment(db, event, cutoff, fee_rates)
        elif event.topic == "refund.requested":
            await _post_refund_accepted(db, event, cutoff)
        elif event.topic == "refund.succeeded":
            await _post_refund(db, event, cutoff)
        elif event.topic == "refund.failed":
            await _post_refund_refused(db, event, cutoff)
        elif event.topic == "reconciliation.adjustment":
            await _post_adjustment(db, event, cutoff)

    return post_event


def make_batch_handler(cutoff: time, rates: FeeRates | None = None) -> Any:
    """The consumer's batch handler: a dispatcher round's events in order, each run of
    consecutive payments posted together (`_post_payments`: three statements for the run),
    anything else as `make_handler` posts it. When it raises, the dispatcher redoes the round
    event by event through `make_handler`'s handler; what this one had committed is found
    posted then (its source keys) and not posted twice."""
    fee_rates = rates or FeeRates()
    one = make_handler(cutoff, fee_rates)

    async def post_events(db: Database, events: list[Event]) -> None:
        run: list[Event] = []
        for event in events:
            if event.topic == "payment.succeeded":
                run.append(event)
                continue
            if run:
                await _post_payments(db, run, cutoff, fee_rates)
                run = []
            await one(db, event)
        if run:
            await _post_payments(db, run, cutoff, fee_rates)

    return post_events


async def _payment_rows(db: Database, event: Event, cutoff: time, rates: FeeRates
                       ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A `payment.succeeded` event's entry, postings and `ledger_payments` row."""
    p = event.payload
    facts = domain.PaymentFacts.from_payload(p)
    waived = p.get("fee_waived") is True
    # The rate in force when the event is posted (a backfill posts at today's rate).
    bps = 0 if waived else await rates.bps(db, facts.merchant_id, facts.channel)
    fee = domain.fee_for(facts.cash, bps, waived=waived)
    same_day = p.get("same_day_settlement") is True
    day = domain.business_date(_instant(p, "paid_at", event.created_at), cutoff)
    entry, postings = entry_rows(
        source_key=event.id, kind="payment", business_ref=str(p["order_id"]),
        merchant_id=facts.merchant_id, trade_date=day, same_day=same_day,
        external_ref=str(p.get("out_trade_no") or "") or None, channel=facts.channel,
        lines=domain.payment_lines(facts, fee))
    paid = dict(order_id=str(p["order_id"]), merchant_id=facts.merchant_id,
                channel=facts.channel, cash=facts.cash, fee=fee, cash_refunded=0,
                fee_refunded=0, same_day=same_day, created_at=clock.now())
    return entry, postings, paid


async def _post_payments(db: Database, events: list[Event], cutoff: time,
                         rates: FeeRates) -> None:
    """Payments' entries in one transaction of three statements whatever their number:
    every entry in one INSERT, every posting in one, every `ledger_payments` row in one.
    No look-up first (the hot path): the entries' unique source_key refuses a redelivery,
    and then each event goes the careful way (`_post_payment`), which tells a redelivery
    (nothing to do) from a second success for one order (stop the consumer)."""
    rows = [await _payment_rows(db, e, cutoff, rates) for e in events]
    try:
        async with db.transaction() as s:
            await s.execute(_INSERT_ENTRIES, [entry for entry, _, _ in rows])
            await s.execute(_INSERT_POSTINGS, [x for _, postings, _ in rows for x in postings])
            await s.execute(_INSERT_PAYMENTS, [paid for _, _, paid in rows])
    except IntegrityError:
        if len(events) == 1:
            async with db.transaction() as s:
                if await already_posted(s, events[0].id):
                    return  # posted before: a redelivery or a replay
            raise  # anything else (a second success event for one order) stops the consumer
        for event in events:
            await _post_payments(db, [event], cutoff, rates)


async def _post_payment(db: Database, event: Event, cutoff: time, rates: FeeRates) -> None:
    await _post_payments(db, [event], cutoff, rates)


async def _post_refund(db: Database, event: Event, cutoff: time) -> None:
    p = event.payload
    async with db.transaction() as s:
        if await already_posted(s, event.id):
            return
        paid = await s.get(LedgerPayment, str(p["order_id"]), with_for_update=True)
        if paid is None:  # events are handled in order: the payment is always posted first
            raise LookupError(f"refund {p.get('refund_id')}: payment {p['order_id']} not posted")
        facts = domain.RefundFacts.from_payload(p, paid.channel)
        back = domain.fee_back(fee=paid.fee, cash=paid.cash, cash_refunded_before=paid.cash_refunded,
                               refund_cash=facts.cash, fee_back_before=paid.fee_refunded)
        paid.cash_refunded += facts.cash
        paid.fee_refunded += back
        day = domain.business_date(_instant(p, "succeeded_at", event.created_at), cutoff)
        lines = domain.refund_lines(facts, back)
        held = await _held(s, str(p["refund_id"]))
        if held:  # accepted earlier: the channel's confirmation releases the hold
            lines = domain.check_balanced(
                [*lines, *domain.refund_released_lines(facts.merchant_id, held)])
        await write_entry(s, source_key=event.id, kind="refund", business_ref=str(p["refund_id"]),
                          merchant_id=facts.merchant_id, trade_date=day, same_day=paid.same_day,
                          external_ref=str(p.get("out_refund_no") or "") or None,
                          channel=facts.channel, lines=lines)


def _accepted_key(refund_id: str) -> str:
    return f"refund-accepted:{refund_id}"


async def _held(s: AsyncSession, refund_id: str) -> int:
    """The cash a refund's acceptance holds in refunds in transit (0: none was posted: a
    refund accepted before this rule, or without cash)."""
    entry = await s.scalar(select(LedgerEntry.id).where(
        LedgerEntry.source_key == _accepted_key(refund_id)))
    if entry is None:
        return 0
    held = await s.scalar(select(LedgerPosting.amount).where(
        LedgerPosting.entry_id == entry,
        LedgerPosting.account == domain.account(domain.AccountKind.REFUNDS_IN_TRANSIT)))
    return -int(held or 0)


async def _post_refund_accepted(db: Database, event: Event, cutoff: time) -> None:
    """`refund.requested`: the refund's cash waits in refunds in transit until the channel
    answers (docs/ledger.md). Keyed by the refund, so it is posted once."""
    p = event.payload
    async with db.transaction() as s:
        key = _accepted_key(str(p["refund_id"]))
        if await already_posted(s, key):
            return
        paid = await s.get(LedgerPayment, str(p["order_id"]))
        if paid is None:  # events are handled in order: the payment is always posted first
            raise LookupError(f"refund {p.get('refund_id')}: payment {p['order_id']} not posted")
        facts = domain.RefundFacts.from_payload(p, paid.channel)
        if facts.cash == 0:
            return  # a refund of discount only: no cash goes through the channel
        day = domain.business_date(_instant(p, "created_at", event.created_at), cutoff)
        await write_entry(s, source_key=key, kind="refund_accepted",
                          business_ref=str(p["refund_id"]), merchant_id=facts.merchant_id,
                          trade_date=day, same_day=paid.same_day,
                          external_ref=str(p.get("out_refund_no") or "") or None,
                          channel=facts.channel,
                          lines=domain.refund_accepted_lines(facts.merchant_id, facts.cash))


async def _post_refund_refused(db: Database, event: Event, cutoff: time) -> None:
    """`refund.failed`: the channel refused; the hold goes back to the merchant's payable."""
    p = event.payload
    async with db.transaction() as s:
        if await already_posted(s, event.id):
            return
        held = await _held(s, str(p["refund_id"]))
        if not held:
            return
        merchant_id = str(p["merchant_id"])
        day = domain.business_date(event.created_at or clock.now(), cutoff)
        paid = await s.get(LedgerPayment, str(p["order_id"]))
        await write_entry(s, source_key=event.id, kind="refund_refused",
                          business_ref=str(p["refund_id"]), merchant_id=merchant_id,
                          trade_date=day, same_day=bool(paid and paid.same_day),
                          external_ref=str(p.get("out_refund_no") or "") or None,
                          channel=str(p.get("channel") or "") or None,
                          lines=domain.refund_released_lines(merchant_id, held))


async def _post_adjustment(db: Database, event: Event, cutoff: time) -> None:
    p = event.payload
    merchant_id = p.get("merchant_id") or None
    lines = domain.adjustment_lines(str(p["channel"]), merchant_id, Money.of(p["amount"]).fen)
    day = domain.business_date(event.created_at or clock.now(), cutoff)
    async with db.transaction() as s:
        if await already_posted(s, event.id):
            return
        await write_entry(s, source_key=event.id, kind="adjustment",
                          business_ref=str(p.get("discrepancy_id") or event.id),
                          merchant_id=merchant_id, trade_date=day, lines=lines,
                          channel=str(p["channel"]))
