"""Migration 0009 on a database that already holds plaintext: after `upgrade` no plaintext is
left (values sealed in place, their hashes filled) and the application reads every value as
before; `downgrade` gives the plaintext back. On every database."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from fulema.core import vault
from fulema.core.db import Database
from fulema.migrate import upgrade
from fulema.payments.models import Order
from tests.conftest import BACKENDS, backend_url

NOW = datetime(2026, 11, 1, 8)
ROWS = [
    ("INSERT INTO merchants (id, name, short_name, licence_no, legal_person, settlement_account, "
     "settlement_account_name, contact_name, contact_phone, mcc, status, version, created_at, "
     "updated_at) VALUES ('mch_old', 'n', 's', '91330100000000001X', 'p', '6222021234567891234', "
     "'n', 'c', '13812345678', '5812', 'ACTIVE', 1, :now, :now)"),
    ("INSERT INTO merchant_apps (app_id, merchant_id, name, secret, active, secret_rotated_at, "
     "created_at, updated_at) VALUES ('app_old', 'mch_old', 'default', 'plain-old-secret', "
     ":yes, :now, :now, :now)"),
    ("INSERT INTO orders (id, merchant_id, app_id, out_trade_no, request_hash, amount, subject, "
     "way_code, channel, status, payer_id, client_ip, refunded_amount, refund_pending_amount, "
     "expire_at, created_at, updated_at) VALUES ('ord_old', 'mch_old', 'app_old', 'T1', 'h', "
     "100, 's', 'JSAPI', 'wechat', 'SUCCESS', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', '127.0.0.1', 0, "
     "0, :now, :now, :now)"),
    ("INSERT INTO orders (id, merchant_id, app_id, out_trade_no, request_hash, amount, subject, "
     "way_code, channel, status, client_ip, refunded_amount, refund_pending_amount, "
     "expire_at, created_at, updated_at) VALUES ('ord_nopayer', 'mch_old', 'app_old', 'T2', "
     "'h', 100, 's', 'QR_DYNAMIC', 'wechat', 'CREATED', '127.0.0.1', 0, 0, :now, :now, :now)"),
]
SELECT = ("SELECT m.settlement_account, m.contact_phone, m.contact_phone_hash, a.secret, "
          "o.payer_id, o.payer_id_hash FROM merchants m JOIN merchant_apps a ON "
          "a.merchant_id = m.id JOIN orders o ON o.merchant_id = m.id WHERE o.id = 'ord_old'")


async def _fresh(url: str) -> None:
    import fulema.app  # noqa: F401 - every context's tables

    db = Database(url)
    await db.drop_all()
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await db.dispose()


async def _one(url: str, sql: str) -> tuple[str | None, ...]:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            return tuple((await conn.execute(text(sql))).one())
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_0009_seals_existing_plaintext_and_downgrade_opens_it(
        backend: str, tmp_path: Path) -> None:
    from alembic import command

    from fulema.migrate import alembic_config

    vault.install(vault.Keyring(vault.MasterKeys("m1", bytes(range(32))), cipher="SM4-GCM",
                                path=tmp_path / "keyring.json"))
    url = backend_url(backend, tmp_path)
    await _fresh(url)
    await asyncio.to_thread(upgrade, url, "0006")
    db = Database(url)
    async with db.engine.begin() as conn:
        for sql in ROWS:
            await conn.execute(text(sql), {"now": NOW, "yes": True})
    await db.dispose()

    await asyncio.to_thread(upgrade, url, "0009")

    account, phone, phone_hash, secret, payer, payer_hash = await _one(url, SELECT)
    for value, plain in ((account, "6222021234567891234"), (phone, "13812345678"),
                         (secret, "plain-old-secret"), (payer, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")):
        assert value is not None
        assert vault.is_sealed(value)
        assert plain not in value
    assert phone_hash == vault.blind_index("phone", "13812345678")
    assert payer_hash == vault.blind_index("payer_id", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    assert await _one(url, "SELECT payer_id, payer_id_hash FROM orders WHERE id = 'ord_nopayer'"
                      ) == (None, None)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0006")
    assert await _one(url, "SELECT m.settlement_account, m.contact_phone, a.secret, o.payer_id "
                           "FROM merchants m JOIN merchant_apps a ON a.merchant_id = m.id "
                           "JOIN orders o ON o.merchant_id = m.id WHERE o.id = 'ord_old'") == (
        "6222021234567891234", "13812345678", "plain-old-secret", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    await asyncio.to_thread(upgrade, url)
    # at head (later migrations add columns the ORM reads), the ORM opens the sealed value
    db = Database(url)
    async with db.transaction() as s:
        order = await s.get(Order, "ord_old")
        assert order is not None
        assert order.payer_id == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    await db.dispose()
