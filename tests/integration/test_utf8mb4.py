"""Chinese text survives a MySQL-protocol database whose default character set is latin1.

MariaDB and MySQL 5.7 installations often default to latin1; TDSQL and TiDB default to utf8mb4.
Each test makes its own latin1 database next to FULEMA_TEST_MYSQL_URL's, builds the schema the
way a deployment does (create_all, `alembic upgrade head`, or an old latin1 schema upgraded),
then checks information_schema and sends a Chinese merchant name and order subject through the
real HTTP API and reads them back.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import Table, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from fulema.app import create_app
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import MYSQL_COLLATION, Base, Database, _utf8mb4_on_mysql
from fulema.gateway.signing import sign_request
from fulema.merchants.demo_seed import DEMO_APP_ID, DEMO_SECRET
from fulema.migrate import check, upgrade
from tests.merchants.factories import application

pytestmark = pytest.mark.mysql

MERCHANT_NAME = "付了码测试商户"
SUBJECT = "付了码测试订单：小笼包两笼（含餐盒费）"
TOKEN = "test-operator"


@pytest.fixture
async def latin1_url() -> AsyncIterator[str]:
    """A fresh `<test database>_latin1` database created CHARACTER SET latin1, dropped after."""
    base = os.environ.get("FULEMA_TEST_MYSQL_URL")
    if not base:
        pytest.skip("FULEMA_TEST_MYSQL_URL is not set: no MariaDB/MySQL server to make a latin1 "
                    "database on")
    url = make_url(base)
    name = f"{url.database}_latin1"
    server = Database(base + "#nullpool")

    async def run(sql: str) -> None:
        async with server.engine.begin() as conn:
            await conn.execute(text(sql))

    await run(f"DROP DATABASE IF EXISTS `{name}`")
    await run(f"CREATE DATABASE `{name}` CHARACTER SET latin1 COLLATE latin1_swedish_ci")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await run(f"DROP DATABASE IF EXISTS `{name}`")
        await server.dispose()


async def _collations(url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(database default, table -> collation, table.column -> collation) from information_schema."""
    db = Database(url + "#nullpool")
    async with db.engine.connect() as conn:
        default = (await conn.execute(text(
            "SELECT default_collation_name FROM information_schema.schemata "
            "WHERE schema_name = DATABASE()"))).scalar_one()
        tables = dict((await conn.execute(text(
            "SELECT table_name, table_collation FROM information_schema.tables "
            "WHERE table_schema = DATABASE()"))).all())
        columns = {f"{t}.{c}": coll for t, c, coll in (await conn.execute(text(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND collation_name IS NOT NULL"))).all()}
    await db.dispose()
    return str(default), tables, columns


async def _assert_every_table_utf8mb4(url: str, *, with_alembic: bool) -> None:
    default, tables, columns = await _collations(url)
    assert default.startswith("latin1"), "the test database must keep its latin1 default"
    expected = set(Base.metadata.tables) | ({"alembic_version"} if with_alembic else set())
    assert set(tables) == expected
    assert {t: c for t, c in tables.items() if c != MYSQL_COLLATION} == {}
    assert columns, "no character columns found: information_schema query is wrong"
    assert {c: coll for c, coll in columns.items() if coll != MYSQL_COLLATION} == {}


async def _round_trip_chinese(url: str, tmp_path: Path) -> None:
    """Apply a merchant named in Chinese through the operator API, order with a Chinese subject
    through the signed merchant API, and read both back as they were sent."""
    settings = Settings(environment="test", public_base_url="http://testserver", data_dir=tmp_path,
                        database_url=url, operator_token=TOKEN, run_background=False,
                        seed_demo=True, enabled_channels=["bankpay"])
    db = Database(url)
    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    app = create_app(settings, db=db, http=http)
    transport.app = app
    ops = {"Authorization": f"Bearer {TOKEN}"}
    async with app.router.lifespan_context(app):  # seeds the demo merchant, as `fulema serve` does
        applied = await http.post("/ops/v1/merchants", headers=ops,
                                  json=application(name=MERCHANT_NAME, short_name="付了码"))
        assert applied.status_code == 201, applied.text
        merchant = await http.get(f"/ops/v1/merchants/{applied.json()['id']}", headers=ops)
        assert merchant.status_code == 200, merchant.text
        assert merchant.json()["name"] == MERCHANT_NAME
        assert merchant.json()["legal_person"] == "王小明"

        created = await _signed(http, "POST", "/api/v1/orders", {
            "out_trade_no": "UTF8MB4-1", "amount": 1250, "subject": SUBJECT,
            "way_code": "QR_DYNAMIC", "channel": "bankpay",
            "notify_url": "http://testserver/merchant/notify"})
        assert created.status_code == 200, created.text
        order_id = created.json()["order_id"]
        queried = await _signed(http, "GET", f"/api/v1/orders/{order_id}")
        assert queried.status_code == 200, queried.text
        assert queried.json()["subject"] == SUBJECT

        # utf8mb4_bin: an out_trade_no differing only in case is another order, as on
        # PostgreSQL and SQLite (a *_ci collation would answer the first order again).
        other = await _signed(http, "POST", "/api/v1/orders", {
            "out_trade_no": "utf8mb4-1", "amount": 1250, "subject": SUBJECT,
            "way_code": "QR_DYNAMIC", "channel": "bankpay",
            "notify_url": "http://testserver/merchant/notify"})
        assert other.status_code == 200, other.text
        assert other.json()["order_id"] != order_id
    await http.aclose()


async def _signed(http: httpx.AsyncClient, method: str, path: str,
                  body: dict[str, Any] | None = None) -> httpx.Response:
    raw = orjson.dumps(body) if body is not None else b""
    headers = sign_request(app_id=DEMO_APP_ID, secret=DEMO_SECRET, method=method, path=path,
                           body=raw, timestamp=clock.timestamp())
    return await http.request(method, path, content=raw, headers=headers)


async def test_create_all_on_a_latin1_database_makes_utf8mb4_tables(latin1_url: str,
                                                                     tmp_path: Path) -> None:
    import fulema.app  # noqa: F401 - every context's tables

    db = Database(latin1_url)
    await db.create_all()
    await db.dispose()

    await _assert_every_table_utf8mb4(latin1_url, with_alembic=False)
    await _round_trip_chinese(latin1_url, tmp_path)


async def test_alembic_upgrade_on_a_latin1_database_makes_utf8mb4_tables(latin1_url: str,
                                                                        tmp_path: Path) -> None:
    await asyncio.to_thread(upgrade, latin1_url)
    await asyncio.to_thread(check, latin1_url)  # models and migrations still agree

    await _assert_every_table_utf8mb4(latin1_url, with_alembic=True)
    await _round_trip_chinese(latin1_url, tmp_path)


async def _deployment_before_0003(url: str) -> None:
    """A deployment made before 0003: CREATE TABLE named no charset, so its tables took the
    database's latin1 default. Upgrade to 0002 the way that code did."""
    event.remove(Table, "before_create", _utf8mb4_on_mysql)
    try:
        await asyncio.to_thread(upgrade, url, "0002")
    finally:
        event.listen(Table, "before_create", _utf8mb4_on_mysql)


async def test_upgrade_converts_an_existing_latin1_deployment(latin1_url: str,
                                                              tmp_path: Path) -> None:
    await _deployment_before_0003(latin1_url)
    db = Database(latin1_url + "#nullpool")
    async with db.engine.begin() as conn:
        await conn.execute(text("INSERT INTO api_nonces (app_id, nonce, seen_at) "
                                "VALUES ('app_old', 'Nonce-Before-0003', '2026-11-25 10:00:00')"))
    _default, tables, _columns = await _collations(latin1_url)
    assert set(tables.values()) == {"latin1_swedish_ci"}
    with pytest.raises(DBAPIError, match="Incorrect string value"):  # what users met before
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE api_nonces SET app_id = '付了码' WHERE app_id = 'app_old'"))

    await asyncio.to_thread(upgrade, latin1_url)
    await asyncio.to_thread(check, latin1_url)

    await _assert_every_table_utf8mb4(latin1_url, with_alembic=True)
    async with db.engine.connect() as conn:
        kept = (await conn.execute(text("SELECT nonce FROM api_nonces WHERE app_id = 'app_old'"))
                ).scalar_one()
    await db.dispose()
    assert kept == "Nonce-Before-0003"
    await _round_trip_chinese(latin1_url, tmp_path)


async def test_an_upgrade_cut_short_is_finished_by_running_it_again(latin1_url: str,
                                                                    tmp_path: Path) -> None:
    # MySQL DDL does not roll back: leave 0003 as if stopped after its first table, with the
    # foreign keys to `merchants` dropped and `merchants` converted, the rest still latin1.
    await _deployment_before_0003(latin1_url)
    db = Database(latin1_url + "#nullpool")
    async with db.engine.begin() as conn:
        keys = (await conn.execute(text(
            "SELECT table_name, constraint_name FROM information_schema.referential_constraints "
            "WHERE constraint_schema = DATABASE() AND referenced_table_name = 'merchants'"))).all()
        assert len(keys) == 6
        for table, name in keys:
            await conn.execute(text(f"ALTER TABLE `{table}` DROP FOREIGN KEY `{name}`"))
        await conn.execute(text(
            "ALTER TABLE merchants CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    await db.dispose()

    await asyncio.to_thread(upgrade, latin1_url)
    await asyncio.to_thread(check, latin1_url)  # would name every foreign key still missing

    await _assert_every_table_utf8mb4(latin1_url, with_alembic=True)
    await _round_trip_chinese(latin1_url, tmp_path)
