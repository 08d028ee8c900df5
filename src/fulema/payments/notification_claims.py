"""Taking due merchant notifications and recording each attempt, in as few round trips as the
database allows (issue 15: statements per payment cycle).

A delivery used to cost five statements: a claim UPDATE, a read of the row, and after the POST
a locked read, an UPDATE and the attempt's INSERT. Now:
- `claim_due` takes every due notification of a round in one `UPDATE ... WHERE id IN (due)
  RETURNING` where the database returns from an UPDATE (PostgreSQL, SQLite). The UPDATE
  repeats the due conditions, so when two workers pick the same rows, PostgreSQL re-checks
  each row after the other's claim commits and only one of them gets it (no SKIP LOCKED: see
  ARCHITECTURE.md). MariaDB returns nothing from an UPDATE: one claim and one read per row, as
  before.
- `record_attempt` writes the attempt and the notification's new state as one statement on
  PostgreSQL (`WITH u AS (UPDATE ... RETURNING id) INSERT ... SELECT ... FROM u`, in
  autocommit: both or neither), and as two in one transaction elsewhere. The new state is
  computed from the attempt count read at the claim: the claim makes this worker the only one
  delivering the row until it runs out.

A round's claims last long enough for its last delivery to start and finish: the POSTs of a
round run `concurrency` at a time, each bounded by `POST_SECONDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, insert, or_, select, update

from fulema.core.clock import clock
from fulema.core.db import Database, table_of
from fulema.core.ids import new_id
from fulema.payments.models import Notification, NotificationAttempt

PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"
CLAIM_SECONDS = 60  # beyond the round's own deliveries, before another worker may retry a row
POST_SECONDS = 10.0  # outbound.post_bounded's bound on one POST

_n = table_of(Notification)
_a = table_of(NotificationAttempt)
_TAKEN = (_n.c.id, _n.c.url, _n.c.body, _n.c.app_id, _n.c.attempts, _n.c.order_id)


@dataclass(frozen=True)
class Claimed:
    """A notification this worker delivers, as the claim read it."""

    id: str
    url: str
    body: str
    app_id: str
    attempts: int
    order_id: str


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    http_status: int | None
    ok: bool
    error: str | None
    give_up: bool
    duration_ms: int


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [_n.c.status == PENDING, _n.c.next_attempt_at <= now,
            or_(_n.c.claimed_until.is_(None), _n.c.claimed_until < now)]


def claim_until(now: datetime, *, limit: int, concurrency: int) -> datetime:
    waves = -(-limit // max(concurrency, 1))
    return now + timedelta(seconds=CLAIM_SECONDS + POST_SECONDS * waves)


async def claim_due(db: Database, *, limit: int, concurrency: int) -> list[Claimed]:
    """The due notifications this worker now holds (at most `limit`)."""
    now = clock.now()
    until = claim_until(now, limit=limit, concurrency=concurrency)
    if db.engine.dialect.update_returning:
        due = select(_n.c.id).where(*_due(now)).limit(limit).scalar_subquery()
        take = (update(_n).where(_n.c.id.in_(due), *_due(now)).values(claimed_until=until)
                .returning(*_TAKEN))
        if db.dialect == "postgresql":
            async with db.one_statement() as conn:
                return [Claimed(*row) for row in (await conn.execute(take)).all()]
        async with db.transaction() as s:
            return [Claimed(*row) for row in (await s.execute(take)).all()]
    async with db.transaction() as s:
        ids = list((await s.scalars(select(_n.c.id).where(*_due(now)).limit(limit))).all())
    claimed: list[Claimed] = []
    for notification_id in ids:
        async with db.transaction() as s:
            moved = await s.execute(update(_n).where(_n.c.id == notification_id, *_due(now))
                                    .values(claimed_until=until))
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another worker took it first
            row = (await s.execute(select(*_TAKEN).where(_n.c.id == notification_id))).one()
            claimed.append(Claimed(*row))
    return claimed


def next_state(attempts: int, outcome: Outcome, schedule: list[int] | tuple[int, ...],
               now: datetime) -> dict[str, Any]:
    """The notification's columns after its attempt number `attempts` (1-based)."""
    if outcome.ok:
        return {"status": DELIVERED, "delivered_at": now, "next_attempt_at": None}
    # delivered_at None: kept as it is (a resent notification that was delivered before)
    if outcome.give_up or attempts > len(schedule):
        return {"status": FAILED, "delivered_at": None, "next_attempt_at": None}
    return {"status": PENDING, "delivered_at": None,
            "next_attempt_at": now + timedelta(seconds=schedule[attempts - 1])}


_KEYS = ("status", "delivered_at", "next_attempt_at")
_SET = update(_n).where(_n.c.id == bindparam("b_id")).values(
    attempts=bindparam("b_attempts"), claimed_until=None,
    status=bindparam("b_status", type_=_n.c.status.type),
    next_attempt_at=bindparam("b_next_attempt_at", type_=_n.c.next_attempt_at.type),
    delivered_at=func.coalesce(bindparam("b_delivered_at", type_=_n.c.delivered_at.type),
                               _n.c.delivered_at))
_ATTEMPT_KEYS = ("id", "at", "http_status", "response_excerpt", "error", "duration_ms")
_ATTEMPT = {k: bindparam(f"a_{k}", type_=_a.c[k].type) for k in _ATTEMPT_KEYS}
# PostgreSQL: the attempt is written only if the UPDATE found the row (always, while claimed)
_u = _SET.returning(_n.c.id).cte("u")
_SET_AND_LOG = insert(_a).from_select(
    ["notification_id", *_ATTEMPT_KEYS],
    select(_u.c.id, *(_ATTEMPT[k].label(k) for k in _ATTEMPT_KEYS)).select_from(_u),
).add_cte(_u)


async def record_attempt(db: Database, claimed: Claimed, outcome: Outcome,
                         schedule: list[int] | tuple[int, ...]) -> None:
    """The attempt's row and the notification's new state, committed together."""
    now = clock.now()
    attempts = claimed.attempts + 1
    state = next_state(attempts, outcome, schedule, now)
    params = {"b_id": claimed.id, "b_attempts": attempts,
              **{f"b_{k}": state[k] for k in _KEYS}}
    attempt = {"id": new_id("nat"), "at": now, "http_status": outcome.http_status,
               "response_excerpt": None, "error": outcome.error,
               "duration_ms": outcome.duration_ms}
    if db.dialect == "postgresql":
        async with db.one_statement() as conn:
            await conn.execute(_SET_AND_LOG, {**params,
                                              **{f"a_{k}": v for k, v in attempt.items()}})
        return
    async with db.transaction() as s:
        await s.execute(_SET, params)
        await s.execute(insert(_a), {"notification_id": claimed.id, **attempt})
