"""Disaster recovery on two real PostgreSQL servers this test starts itself (a primary and its
streaming standby, on loopback): what the bank's DR officer checks is that a switchover loses
no acknowledged payment (RPO 0), that the platform follows to the new primary by itself, that
the old primary refuses writes afterwards, and that a switchover without a healthy standby is
refused without promoting anything."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from typer.testing import CliRunner

from fulema.cli import app as cli
from fulema.core.config import Settings
from fulema.drill import run_drill
from fulema.ops import dr
from tests.integration.pg_pair import PgPair, bindir, pg_pair

pytestmark = pytest.mark.skipif(bindir() is None,
                                reason="PostgreSQL server binaries (pg_config --bindir) missing")


@pytest.fixture
def pair() -> Iterator[PgPair]:
    with pg_pair() as started:
        yield started


async def test_a_switchover_promotes_the_standby_with_every_committed_row(pair: PgPair) -> None:
    conn = await asyncpg.connect(pair.primary)
    await conn.execute("CREATE TABLE ledger_probe (n int)")
    await conn.execute("INSERT INTO ledger_probe SELECT generate_series(1, 5000)")
    await conn.close()

    report = await dr.switchover([pair.primary, pair.standby])

    assert report.rpo_bytes == 0
    assert report.new_primary.endswith(pair.standby.split("@")[1])
    roles = [st.role for st in await dr.cluster_status([pair.primary, pair.standby])]
    assert roles == ["fenced", "primary"]
    new = await asyncpg.connect(pair.standby)
    assert await new.fetchval("SELECT count(*) FROM ledger_probe") == 5000
    await new.execute("INSERT INTO ledger_probe VALUES (5001)")  # takes writes
    await new.close()
    old = await asyncpg.connect(pair.primary)
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await old.execute("INSERT INTO ledger_probe VALUES (0)")
    await old.close()


async def test_the_platform_url_follows_the_primary(pair: PgPair) -> None:
    url = dr.platform_url([pair.primary, pair.standby], driver="postgresql")
    before = await asyncpg.connect(url)
    assert await before.fetchval("SELECT pg_is_in_recovery()") is False
    port_before = before._addr[1]
    await before.close()
    await dr.switchover([pair.primary, pair.standby])
    after = await asyncpg.connect(url)
    assert await after.fetchval("SELECT txid_current()") > 0
    assert after._addr[1] != port_before
    await after.close()


async def test_no_switchover_without_exactly_one_standby(pair: PgPair) -> None:
    with pytest.raises(dr.DrError, match="need exactly one primary"):
        await dr.switchover([pair.primary, pair.primary])
    with pytest.raises(dr.DrError, match="need exactly one primary"):
        await dr.switchover([pair.standby, pair.standby])
    statuses = await dr.cluster_status([pair.primary, pair.standby])
    assert [st.role for st in statuses] == ["primary", "standby"]  # nothing fenced or promoted


async def test_a_drill_under_payment_load_loses_nothing(pair: PgPair) -> None:
    report = await run_drill([pair.primary, pair.standby], Settings(), seconds=4, concurrency=4)
    assert report.acknowledged > 0
    assert report.missing == 0
    assert report.switchover.rpo_bytes == 0
    assert report.unsequenced_events == 0
    assert report.notified_after_switchover
    assert report.passed


def test_dr_status_command_names_each_role(pair: PgPair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULEMA_DR_NODES", f'["{pair.primary}", "{pair.standby}"]')
    result = CliRunner().invoke(cli, ["dr", "status"])
    assert result.exit_code == 0, result.output
    assert "primary" in result.output
    assert "standby" in result.output
    switched = CliRunner().invoke(cli, ["dr", "switchover", "--to", "standby"])
    assert switched.exit_code == 0, switched.output
    assert "RPO 0 bytes" in switched.output
    again = asyncio.run(dr.cluster_status([pair.primary, pair.standby]))
    assert [st.role for st in again] == ["fenced", "primary"]


def test_dr_commands_need_both_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULEMA_DR_NODES", "[]")
    result = CliRunner().invoke(cli, ["dr", "status"])
    assert result.exit_code == 2
    assert "FULEMA_DR_NODES" in result.output
