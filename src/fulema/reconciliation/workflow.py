"""Working a discrepancy: OPEN -> INVESTIGATING -> RESOLVED with an action, each step audited.

Actions reach other contexts only through their services or events: SYNC_ORDER asks the
channel through payments (`sync_with_channel`), REFUND creates a refund through payments
(idempotent: its out_refund_no is derived from the discrepancy), ADJUST publishes
`reconciliation.adjustment` for the ledger in the same transaction as the resolution. The
channel call happens before the discrepancy's row is locked (a channel may take seconds);
both payments calls are idempotent, so a resolution retried after a failure is safe.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import publish
from fulema.core.money import Money
from fulema.payments import service as payments
from fulema.reconciliation.domain import (
    Action,
    DiscrepancyStatus,
    Result,
    adjustment_amount,
    check_action,
    move,
)
from fulema.reconciliation.models import Discrepancy
from fulema.reconciliation.schemas import DiscrepancyOut, DiscrepancyPage

ADJUSTMENT_TOPIC = "reconciliation.adjustment"


def view(d: Discrepancy) -> DiscrepancyOut:
    return DiscrepancyOut(
        discrepancy_id=d.id, run_id=d.run_id, channel=d.channel, day=d.day, kind=Result(d.kind),
        record_kind=d.record_kind, ref=d.ref, order_id=d.order_id, merchant_id=d.merchant_id,
        way_code=d.way_code, txn_id=d.txn_id,
        our_amount=d.our_amount.fen if d.our_amount is not None else None,
        channel_amount=d.channel_amount.fen if d.channel_amount is not None else None,
        our_status=d.our_status, channel_status=d.channel_status, line=d.line,
        status=DiscrepancyStatus(d.status), action=Action(d.action) if d.action else None,
        note=d.note, resolved_by=d.resolved_by, resolved_at=d.resolved_at,
        created_at=d.created_at)


async def _locked(session: AsyncSession, discrepancy_id: str) -> Discrepancy:
    d = await session.get(Discrepancy, discrepancy_id, with_for_update=True)
    if d is None:
        raise FulemaError(ErrorCode.DISCREPANCY_NOT_FOUND)
    return d


async def get(db: Database, *, discrepancy_id: str) -> DiscrepancyOut:
    async with db.transaction() as session:
        d = await session.get(Discrepancy, discrepancy_id)
        if d is None:
            raise FulemaError(ErrorCode.DISCREPANCY_NOT_FOUND)
        return view(d)


async def list_discrepancies(db: Database, *, channel: str | None = None, day: str | None = None,
                             status: DiscrepancyStatus | None = None, kind: Result | None = None,
                             run_id: str | None = None, limit: int = 50,
                             starting_after: str | None = None) -> DiscrepancyPage:
    q = select(Discrepancy).order_by(Discrepancy.id).limit(limit + 1)
    for column, value in ((Discrepancy.channel, channel), (Discrepancy.day, day),
                          (Discrepancy.status, status.value if status else None),
                          (Discrepancy.kind, kind.value if kind else None),
                          (Discrepancy.run_id, run_id)):
        if value is not None:
            q = q.where(column == value)
    if starting_after:
        q = q.where(Discrepancy.id > starting_after)
    async with db.transaction() as session:
        rows = list((await session.scalars(q)).all())
    return DiscrepancyPage(data=[view(d) for d in rows[:limit]], has_more=len(rows) > limit)


async def investigate(db: Database, *, discrepancy_id: str, actor: str,
                      note: str = "") -> DiscrepancyOut:
    async with db.transaction() as session:
        d = await _locked(session, discrepancy_id)
        d.status = move(DiscrepancyStatus(d.status), DiscrepancyStatus.INVESTIGATING).value
        d.note, d.updated_at = note or d.note, clock.now()
        await audit.record(session, actor=actor, action="reconciliation.investigate",
                           target_type="discrepancy", target_id=d.id,
                           detail={"kind": d.kind, "note": note[:200]})
        return view(d)


async def resolve(deps: payments.Deps, *, discrepancy_id: str, actor: str, action: Action,
                  note: str = "", amount: int | None = None) -> DiscrepancyOut:
    """Resolve with `action` (see module doc). DISCREPANCY_ACTION_INVALID when the state or
    kind does not allow it; payments' own errors (ORDER_NOT_PAID, ...) pass through and leave
    the discrepancy as it was."""
    current = await get(deps.db, discrepancy_id=discrepancy_id)
    if action == Action.AUTO_CROSS_DAY:
        raise FulemaError(ErrorCode.DISCREPANCY_ACTION_INVALID,
                          "AUTO_CROSS_DAY is taken by reconciliation itself")
    check_action(current.kind, action)
    move(current.status, DiscrepancyStatus.RESOLVED)
    detail: dict[str, object] = {"kind": current.kind.value, "action": action.value,
                                 "note": note[:200]}
    if action in (Action.SYNC_ORDER, Action.REFUND) and not (
            current.order_id and current.merchant_id):
        raise FulemaError(ErrorCode.DISCREPANCY_ACTION_INVALID,
                          "no order of ours is linked to this discrepancy")
    if action == Action.SYNC_ORDER:
        assert current.order_id is not None
        order = await payments.sync_with_channel(deps, order_id=current.order_id)
        detail["order_status"] = order.status
    elif action == Action.REFUND:
        assert current.order_id is not None
        assert current.merchant_id is not None
        fen = amount if amount is not None else abs(
            (current.channel_amount or 0) - (current.our_amount or 0))
        if fen <= 0:
            raise FulemaError(ErrorCode.DISCREPANCY_ACTION_INVALID,
                              "nothing to refund: give amount in fen")
        refund = await payments.create_refund(
            deps, merchant_id=current.merchant_id, order_id=current.order_id,
            out_refund_no=f"recon-{current.discrepancy_id}"[:64], amount=Money(fen),
            reason="reconciliation")
        detail.update(refund_id=refund.refund_id, amount=fen, refund_status=refund.status)
    async with deps.db.transaction() as session:
        d = await _locked(session, discrepancy_id)
        d.status = move(DiscrepancyStatus(d.status), DiscrepancyStatus.RESOLVED).value
        now = clock.now()
        d.action, d.note, d.resolved_by, d.resolved_at, d.updated_at = (
            action.value, note or d.note, actor, now, now)
        if action == Action.ADJUST:
            signed = amount if amount is not None else adjustment_amount(
                our_fen=current.our_amount, channel_fen=current.channel_amount,
                record_kind=current.record_kind)
            publish(session, ADJUSTMENT_TOPIC, {
                "discrepancy_id": d.id, "channel": d.channel, "merchant_id": d.merchant_id,
                "amount": signed, "reason": f"{d.kind} {d.record_kind} {d.ref}: {note}"[:256],
                "operator": actor})
            detail["amount"] = signed
        await audit.record(session, actor=actor, action="reconciliation.resolve",
                           target_type="discrepancy", target_id=d.id, detail=detail)
        return view(d)
