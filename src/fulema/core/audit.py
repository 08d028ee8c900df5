"""The audit trail: every operator action (and every read of personal data), append-only and
tamper-evident.

Each record is chained to the previous record of its chain by a hash over its canonical
content and the previous hash, so an edited record no longer matches its hash, and a deleted
one breaks the next record's link (or leaves the chain's head count ahead of what is stored).
Chains are partitioned per day and per writing process: the head row that serialises writers
is then never shared between API processes, so the trail is no hot row on the payment path.

Every context records through `record(session, ...)` inside the transaction of the change it
audits, so the action and its record commit together or not at all.

The hash is SM3 (GB/T 32905, what a 等保 review expects) or SHA-256, chosen once at start-up
from FULEMA_AUDIT_HASH_ALGORITHM (`use_algorithm`); each record names its own, so a trail
written under one setting still verifies under the other.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, Index, String, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.clock import clock
from fulema.core.db import Base, Database, UTCDateTime
from fulema.core.gm import sm3_hex
from fulema.core.ids import new_id

GENESIS = "0" * 64

_DIGESTS: dict[str, Callable[[bytes], str]] = {
    "sm3": sm3_hex,
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
}
ALGORITHMS = tuple(_DIGESTS)
_algorithm = "sm3"


def use_algorithm(name: str) -> None:
    """The hash for records written from now on (set once at start-up from the settings)."""
    global _algorithm  # one process-wide choice, like WRITER below
    if name not in _DIGESTS:
        raise ValueError(f"audit hash: one of {', '.join(ALGORITHMS)}")
    _algorithm = name


# One writer id per process: the process's own chains, so no two processes share a head row.
WRITER = f"{os.getpid()}-{secrets.token_hex(4)}"


class AuditRecord(Base):
    __tablename__ = "audit_records"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    chain: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    alg: Mapped[str] = mapped_column(String(8), default="sha256", server_default="sha256")

    __table_args__ = (
        Index("uq_audit_records_chain_seq", "chain", "seq", unique=True),
        Index("ix_audit_records_target", "target_type", "target_id"),
        Index("ix_audit_records_actor_at", "actor", "at"),
        Index("ix_audit_records_at", "at"),  # the search's order, newest first
    )


class AuditChain(Base):
    """A chain's head: how many records it holds and the hash of the last one."""

    __tablename__ = "audit_chains"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    head_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


def record_hash(*, chain: str, seq: int, at: datetime, actor: str, action: str,
                target_type: str, target_id: str, detail: dict[str, Any], prev_hash: str,
                alg: str = "sha256") -> str:
    """SM3 or SHA-256 (`alg`) over the record's canonical JSON (sorted keys, UTC
    microseconds)."""
    content = orjson.dumps(
        {"chain": chain, "seq": seq, "at": at.isoformat(timespec="microseconds"),
         "actor": actor, "action": action, "target_type": target_type, "target_id": target_id,
         "detail": detail, "prev": prev_hash},
        option=orjson.OPT_SORT_KEYS)
    return _DIGESTS[alg](content)


async def _lock_head(session: AsyncSession, chain: str) -> AuditChain:
    """Locks the chain's head row in the caller's transaction, creating it on the first record
    of the day of this process (in a savepoint: two tasks of one process may race to it)."""
    stmt = select(AuditChain).where(AuditChain.chain == chain).with_for_update()
    head = (await session.execute(stmt)).scalar_one_or_none()
    if head is None:
        try:
            async with session.begin_nested():
                session.add(AuditChain(chain=chain, last_seq=0, head_hash=GENESIS))
        except IntegrityError:  # the other task's row: lock that one
            pass
        head = (await session.execute(stmt)).scalar_one()
    return head


async def record(session: AsyncSession, *, actor: str, action: str, target_type: str,
                 target_id: str, detail: dict[str, Any] | None = None) -> str:
    """Appends one record in the caller's transaction; returns its id. `detail` must hold no
    secret and no full personal identifier (mask first): the trail is read by auditors."""
    at = clock.now()
    chain = f"{at:%Y-%m-%d}/{WRITER}"
    head = await _lock_head(session, chain)
    seq = head.last_seq + 1
    body = detail or {}
    alg = _algorithm
    digest = record_hash(chain=chain, seq=seq, at=at, actor=actor, action=action,
                         target_type=target_type, target_id=target_id, detail=body,
                         prev_hash=head.head_hash, alg=alg)
    record_id = new_id("aud")
    session.add(AuditRecord(id=record_id, chain=chain, seq=seq, at=at, actor=actor,
                            action=action, target_type=target_type, target_id=target_id,
                            detail=body, prev_hash=head.head_hash, hash=digest, alg=alg))
    head.last_seq = seq
    head.head_hash = digest
    return record_id


async def record_alone(db: Database, *, actor: str, action: str, target_type: str,
                       target_id: str, detail: dict[str, Any] | None = None) -> str:
    """A record in a transaction of its own: for what changes nothing else, such as an
    operator reading personal data (recorded before the data is handed over)."""
    async with db.transaction() as s:
        return await record(s, actor=actor, action=action, target_type=target_type,
                            target_id=target_id, detail=detail)


@dataclass(frozen=True)
class RecordView:
    id: str
    chain: str
    seq: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    hash: str


async def search(db: Database, *, actor: str | None = None, action: str | None = None,
                 target_type: str | None = None, target_id: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 limit: int = 50, starting_after: str | None = None) -> list[RecordView]:
    """Records matching every filter given, newest first (by time to the microsecond, then
    id); `starting_after` is the last id of the previous page: every page follows the last
    without a gap or a repeat. `action` ending in "." matches a prefix
    ("merchant." finds every merchant action)."""
    stmt = (select(AuditRecord).order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
            .limit(limit))
    if actor is not None:
        stmt = stmt.where(AuditRecord.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditRecord.action.startswith(action, autoescape=True)
                          if action.endswith(".") else AuditRecord.action == action)
    if target_type is not None:
        stmt = stmt.where(AuditRecord.target_type == target_type)
    if target_id is not None:
        stmt = stmt.where(AuditRecord.target_id == target_id)
    if since is not None:
        stmt = stmt.where(AuditRecord.at >= since)
    if until is not None:
        stmt = stmt.where(AuditRecord.at < until)
    async with db.transaction() as s:
        if starting_after is not None:
            after_at = await s.scalar(select(AuditRecord.at)
                                      .where(AuditRecord.id == starting_after))
            if after_at is None:
                return []
            stmt = stmt.where(or_(AuditRecord.at < after_at,
                                  and_(AuditRecord.at == after_at,
                                       AuditRecord.id < starting_after)))
        return [RecordView(id=r.id, chain=r.chain, seq=r.seq, at=r.at, actor=r.actor,
                           action=r.action, target_type=r.target_type, target_id=r.target_id,
                           detail=r.detail, hash=r.hash)
                for r in (await s.scalars(stmt))]


@dataclass(frozen=True)
class Break:
    chain: str
    seq: int
    record_id: str | None
    reason: str


@dataclass(frozen=True)
class Verification:
    chains: int
    records: int
    breaks: list[Break]

    @property
    def intact(self) -> bool:
        return not self.breaks


async def verify(db: Database) -> Verification:
    """Recomputes every chain; names the first broken record of each broken chain."""
    breaks: list[Break] = []
    total = 0
    async with db.transaction() as s:
        heads = (await s.execute(select(AuditChain).order_by(AuditChain.chain))).scalars().all()
        for head in heads:
            rows = (await s.execute(select(AuditRecord).where(AuditRecord.chain == head.chain)
                                    .order_by(AuditRecord.seq))).scalars().all()
            total += len(rows)
            found = _first_break(head, list(rows))
            if found is not None:
                breaks.append(found)
    return Verification(chains=len(heads), records=total, breaks=breaks)


async def chain_heads(db: Database) -> list[tuple[str, int, str]]:
    """(chain, last seq, head hash) of every chain: kept outside the database (printed by
    `fulema audit verify --heads`, shipped to the bank's log archive), they catch what the
    chains alone cannot: a whole chain deleted, or rewritten from its first record on."""
    async with db.transaction() as s:
        rows = await s.execute(select(AuditChain.chain, AuditChain.last_seq, AuditChain.head_hash)
                               .order_by(AuditChain.chain))
        return [(r[0], int(r[1]), r[2]) for r in rows]


def _first_break(head: AuditChain, rows: list[AuditRecord]) -> Break | None:
    prev = GENESIS
    for expected_seq, row in enumerate(rows, start=1):
        if row.seq != expected_seq:
            return Break(head.chain, expected_seq, None, "record missing (deleted)")
        if row.prev_hash != prev:
            return Break(head.chain, row.seq, row.id, "link to the previous record broken")
        digest = record_hash(chain=row.chain, seq=row.seq, at=row.at, actor=row.actor,
                             action=row.action, target_type=row.target_type,
                             target_id=row.target_id, detail=row.detail, prev_hash=row.prev_hash,
                             alg=row.alg) if row.alg in _DIGESTS else None
        if digest != row.hash:
            return Break(head.chain, row.seq, row.id, "content does not match its hash (edited)")
        prev = row.hash
    if head.last_seq != len(rows) or head.head_hash != prev:
        return Break(head.chain, len(rows) + 1, None, "last records missing (deleted)")
    return None
