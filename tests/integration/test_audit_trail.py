"""The audit trail on every database: what an auditor checks is that a record edited or
deleted directly in the database is caught by `verify`, which names the first broken record,
and that records commit with the action they audit or not at all."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, select, update

from fulema.core import audit
from fulema.core.db import Database


async def _write(db: Database, n: int, *, actor: str = "alice") -> list[str]:
    ids = []
    for i in range(n):
        async with db.transaction() as s:
            ids.append(await audit.record(s, actor=actor, action="merchant.freeze",
                                          target_type="merchant", target_id=f"mch_{i}",
                                          detail={"reason": f"case {i}"}))
    return ids


async def test_an_untouched_trail_verifies(db: Database) -> None:
    await _write(db, 5)
    result = await audit.verify(db)
    assert result.intact
    assert result.records == 5
    assert result.chains == 1


async def test_an_edited_record_is_named(db: Database) -> None:
    ids = await _write(db, 4)
    async with db.transaction() as s:
        await s.execute(update(audit.AuditRecord).where(audit.AuditRecord.id == ids[2])
                        .values(actor="mallory"))
    result = await audit.verify(db)
    assert not result.intact
    (broken,) = result.breaks
    assert broken.record_id == ids[2]
    assert broken.seq == 3
    assert "edited" in broken.reason


async def test_a_deleted_record_is_found(db: Database) -> None:
    ids = await _write(db, 4)
    async with db.transaction() as s:
        await s.execute(delete(audit.AuditRecord).where(audit.AuditRecord.id == ids[1]))
    (broken,) = (await audit.verify(db)).breaks
    assert broken.seq == 2
    assert "deleted" in broken.reason


async def test_deleting_the_last_records_is_found(db: Database) -> None:
    ids = await _write(db, 3)
    async with db.transaction() as s:
        await s.execute(delete(audit.AuditRecord).where(audit.AuditRecord.id == ids[2]))
    (broken,) = (await audit.verify(db)).breaks
    assert broken.seq == 3
    assert "deleted" in broken.reason


async def test_a_record_rolls_back_with_its_action(db: Database) -> None:
    await _write(db, 1)

    async def failing_action() -> None:
        async with db.transaction() as s:
            await audit.record(s, actor="bob", action="fee.change", target_type="merchant",
                               target_id="mch_x")
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        await failing_action()
    result = await audit.verify(db)
    assert result.intact
    assert result.records == 1


async def test_concurrent_writers_keep_one_unbroken_chain(db: Database) -> None:
    await asyncio.gather(*(_write(db, 5, actor=f"op{i}") for i in range(4)))
    result = await audit.verify(db)
    assert result.intact
    assert result.records == 20
    async with db.transaction() as s:
        seqs = sorted((await s.execute(select(audit.AuditRecord.seq))).scalars())
    assert seqs == list(range(1, 21))
