"""The audit trail as an auditor uses it: every operator action and every read of personal data
is there under the operator's own name; `fulema audit verify` (the command, as run on the
server) proves the trail intact, and names the record when a row was edited or deleted
directly in the database; admins search it by actor, target, action and time, page by page."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from fulema.cli import app as cli
from fulema.core import audit, gm
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from tests.security.operator_helpers import BOOTSTRAP, active_merchant, operator, ops_client


async def _verify(db_url: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["audit", "verify", "--heads"],
                                     env={"FULEMA_DATABASE_URL": db_url})
    return result.exit_code, result.output


def _url(db: Database, settings: Settings) -> str:
    """The test database's URL (SQLite: the file the settings name; others: the server's)."""
    url = db.engine.url.render_as_string(hide_password=False)
    return settings.database_url if url.startswith("sqlite") else url


async def test_every_merchant_action_is_in_the_trail_under_the_operators_name(
        db: Database, settings: Settings) -> None:
    reviewer = await operator(db, "yang.review", "reviewer", "risk")
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        store = await http.post(f"/ops/v1/merchants/{mid}/stores", headers=reviewer,
                                json={"name": "西湖店", "address": "杭州市西湖区 1 号"})
        sid = store.json()["id"]
        await http.post(f"/ops/v1/merchants/{mid}/stores/{sid}/terminals", headers=reviewer,
                        json={"kind": "CASHIER", "serial_no": "SN-1"})
        await http.post(f"/ops/v1/merchants/{mid}/plates", headers=reviewer,
                        json={"store_id": sid})
        await http.post(f"/ops/v1/merchants/{mid}/freeze", headers=reviewer,
                        json={"reason": "抽查"})
    mine = {r.action for r in await audit.search(db, actor="yang.review")}
    assert {"merchant.add_store", "merchant.add_terminal", "merchant.create_plate",
            "merchant.freeze"} <= mine
    boot = {r.action for r in await audit.search(db, actor="bootstrap-admin")}
    assert {"merchant.apply", "merchant.approve", "merchant.activate"} <= boot


async def test_reading_personal_data_is_recorded_before_it_is_shown(
        db: Database, settings: Settings) -> None:
    finance = await operator(db, "zheng.fin", "finance")
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        one = await http.get(f"/ops/v1/merchants/{mid}", headers=finance)
        assert one.status_code == 200
        page = await http.get("/ops/v1/merchants", headers=finance)
        assert page.status_code == 200
    reads = await audit.search(db, actor="zheng.fin", action="merchant.read")
    assert [(r.target_type, r.target_id) for r in reads] == [("merchant", mid)]
    (listing,) = await audit.search(db, actor="zheng.fin", action="merchant.read_list")
    assert listing.detail["merchant_ids"] == [mid]


async def test_verify_passes_an_intact_trail_and_names_an_edited_and_a_deleted_record(
        db: Database, settings: Settings) -> None:
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        for reason in ("一", "二", "三"):
            await http.post(f"/ops/v1/merchants/{mid}/freeze", json={"reason": reason},
                            headers=BOOTSTRAP)
            await http.post(f"/ops/v1/merchants/{mid}/unfreeze", headers=BOOTSTRAP)
    url = _url(db, settings)
    code, out = await _verify(url)
    assert code == 0, out
    records = len(await audit.search(db, limit=1000))
    assert f"audit trail intact: 1 chains, {records} records" in out
    assert out.startswith("head ")

    freezes = await audit.search(db, action="merchant.freeze")  # newest first
    edited, deleted = freezes[2], freezes[0]
    async with db.transaction() as s:  # an insider rewrites who froze the merchant
        await s.execute(update(audit.AuditRecord).where(audit.AuditRecord.id == edited.id)
                        .values(actor="someone-else"))
    code, out = await _verify(url)
    assert code == 1
    assert f"record {edited.id}" in out
    assert "edited" in out

    async with db.transaction() as s:  # put it back, then delete a later record instead
        await s.execute(update(audit.AuditRecord).where(audit.AuditRecord.id == edited.id)
                        .values(actor=edited.actor))
        await s.execute(delete(audit.AuditRecord).where(audit.AuditRecord.id == deleted.id))
    code, out = await _verify(url)
    assert code == 1
    assert f"at seq {deleted.seq}" in out
    assert "deleted" in out


async def test_admins_search_the_trail_by_actor_target_action_and_time(
        db: Database, settings: Settings) -> None:
    admin = await operator(db, "song.admin", "admin")
    risk = await operator(db, "bai.risk", "risk")
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        start = clock.now()
        clock.advance(timedelta(minutes=5))
        for reason in ("a", "b", "c"):
            await http.post(f"/ops/v1/merchants/{mid}/freeze", json={"reason": reason},
                            headers=risk)
            await http.post(f"/ops/v1/merchants/{mid}/unfreeze", headers=BOOTSTRAP)
        refused = await http.get("/ops/v1/audit", headers=risk)
        assert refused.json()["code"] == "OPERATOR_FORBIDDEN"

        async def search(**params: object) -> dict[str, object]:
            resp = await http.get("/ops/v1/audit", params=params, headers=admin)  # type: ignore[arg-type]
            assert resp.status_code == 200, resp.text
            body: dict[str, object] = resp.json()
            return body

        page1 = await search(actor="bai.risk", limit=2)
        assert [r["detail"]["reason"] for r in page1["data"]] == ["c", "b"]  # type: ignore[index]
        assert page1["has_more"] is True
        last = page1["data"][-1]["id"]  # type: ignore[index]
        page2 = await search(actor="bai.risk", limit=2, starting_after=last)
        assert [r["detail"]["reason"] for r in page2["data"]] == ["a"]  # type: ignore[index]
        assert page2["has_more"] is False

        by_target = await search(target_type="merchant", target_id=mid, action="merchant.")
        actions = [r["action"] for r in by_target["data"]]  # type: ignore[index]
        assert actions.count("merchant.freeze") == 3
        assert actions[-1] == "merchant.apply"
        before = await search(target_id=mid, until=(start + timedelta(minutes=1)).isoformat())
        assert {r["action"] for r in before["data"]} == {  # type: ignore[index]
            "merchant.apply", "merchant.approve", "merchant.activate"}
        after = await search(target_id=mid, since=(start + timedelta(minutes=1)).isoformat())
        assert len(after["data"]) == 6  # type: ignore[arg-type]
        naive = await http.get("/ops/v1/audit", params={"since": "2026-01-01T00:00:00"},
                               headers=admin)
        assert naive.json()["code"] == "VALIDATION_ERROR"
    (searched, *_) = await audit.search(db, actor="song.admin", action="audit.search")
    assert searched.target_type == "audit"


async def test_records_are_sm3_by_default_and_a_mixed_trail_still_verifies(db: Database) -> None:
    async def write(n: int) -> None:
        for i in range(n):
            async with db.transaction() as s:
                await audit.record(s, actor="kong.risk", action="merchant.freeze",
                                   target_type="merchant", target_id=f"mch_{i}")

    try:
        audit.use_algorithm("sha256")
        await write(2)
        audit.use_algorithm(Settings().audit_hash_algorithm)  # the default: SM3
        await write(2)
    finally:
        audit.use_algorithm("sm3")
    async with db.transaction() as s:
        rows = (await s.scalars(select(audit.AuditRecord).order_by(audit.AuditRecord.seq))).all()
    assert [r.alg for r in rows] == ["sha256", "sha256", "sm3", "sm3"]
    assert rows[2].hash == gm.sm3_hex(orjson.dumps({
        "chain": rows[2].chain, "seq": 3, "at": rows[2].at.isoformat(timespec="microseconds"),
        "actor": "kong.risk", "action": "merchant.freeze", "target_type": "merchant",
        "target_id": "mch_0", "detail": {}, "prev": rows[1].hash}, option=orjson.OPT_SORT_KEYS))
    assert (await audit.verify(db)).intact
    async with db.transaction() as s:  # relabelling a record's algorithm is an edit too
        await s.execute(update(audit.AuditRecord).where(audit.AuditRecord.id == rows[3].id)
                        .values(alg="sha256"))
    (broken,) = (await audit.verify(db)).breaks
    assert broken.record_id == rows[3].id
