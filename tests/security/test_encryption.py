"""Encryption at rest (core/vault.py): sealed values round-trip, never repeat, name their key,
refuse tampering and another purpose's key; rotation without downtime; master re-wrap; the
sealed columns in every database; the re-encryption job."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from fulema.core import vault, vault_jobs
from fulema.core.clock import clock
from fulema.core.db import Base, Database
from fulema.merchants import service as merchants
from tests.merchants.factories import OPERATOR, application

PURPOSE = st.sampled_from(vault.PURPOSES)


def _ring(tmp_path: Path, *, cipher: str = "SM4-GCM", master: bytes | None = None,
          kid: str = "m1", previous: tuple[tuple[str, bytes], ...] = (),
          delay: int = 60) -> vault.Keyring:
    return vault.Keyring(vault.MasterKeys(kid, master or bytes(range(32)), previous),
                         cipher=cipher, path=tmp_path / "keyring.json",
                         activation_delay_seconds=delay, reload_seconds=0)


@pytest.fixture
def ring(tmp_path: Path) -> vault.Keyring:
    return vault.install(_ring(tmp_path))


# --- the format and the properties ------------------------------------------------------------

@given(purpose=PURPOSE, value=st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_any_value_round_trips_and_two_seals_differ(purpose: str, value: str) -> None:
    first, second = vault.seal(purpose, value), vault.seal(purpose, value)
    assert vault.open_value(purpose, first) == value
    assert vault.open_value(purpose, second) == value
    assert first != second  # a fresh nonce every time: equal values do not show as equal
    assert len(first) <= vault.sealed_length(max(len(value), 1))


def test_a_sealed_value_names_its_format_and_key(ring: vault.Keyring) -> None:
    sealed = vault.seal("phone", "13812345678")
    prefix, kid, nonce, body = sealed.split(":")
    assert prefix == "v1"
    assert kid == ring.writing_key("phone").kid
    assert len(base64.b64decode(nonce)) == 12
    assert len(base64.b64decode(body)) == len("13812345678") + 16  # ciphertext and GCM tag
    assert "13812345678" not in sealed


@pytest.mark.parametrize("cipher", ["SM4-GCM", "AES-256-GCM"])
def test_either_cipher_seals_and_opens(tmp_path: Path, cipher: str) -> None:
    ring = vault.install(_ring(tmp_path, cipher=cipher))
    assert {k.cipher for k in ring.all_keys()} == {cipher}
    assert vault.open_value("bank_account", vault.seal("bank_account", "6222021234567891234")) == (
        "6222021234567891234")


def test_tampering_and_the_wrong_purpose_are_refused(ring: vault.Keyring) -> None:
    sealed = vault.seal("bank_account", "6222021234567891234")
    prefix, kid, nonce, body = sealed.split(":")
    raw = bytearray(base64.b64decode(body))
    raw[0] ^= 1
    with pytest.raises(vault.VaultError, match="authenticate"):
        vault.open_value("bank_account", ":".join([prefix, kid, nonce,
                                                   base64.b64encode(bytes(raw)).decode()]))
    with pytest.raises(vault.VaultError, match="another purpose"):
        vault.open_value("phone", sealed)  # copied into the phone column: does not open
    with pytest.raises(vault.VaultError, match="unknown data key"):
        vault.open_value("bank_account", f"v1:nosuchkey:{nonce}:{body}")


def test_the_blind_index_is_keyed_stable_and_per_purpose(ring: vault.Keyring) -> None:
    h = vault.blind_index("phone", "13812345678")
    assert h == vault.blind_index("phone", "13812345678")
    assert len(h) == 64
    assert int(h, 16) >= 0
    assert h != vault.blind_index("payer_id", "13812345678")
    assert h != vault.blind_index("phone", "13812345679")


# --- the keyring ------------------------------------------------------------------------------

def test_the_keyring_file_is_private_and_holds_only_wrapped_keys(ring: vault.Keyring) -> None:
    assert ring.path is not None
    assert oct(ring.path.stat().st_mode & 0o777) == "0o600"
    stored = ring.path.read_text()
    for key in ring.all_keys():
        assert base64.b64encode(key.key).decode() not in stored
        assert key.key.hex() not in stored


def test_another_master_key_cannot_open_the_keyring(tmp_path: Path) -> None:
    _ring(tmp_path)
    with pytest.raises(vault.VaultError):
        _ring(tmp_path, master=secrets.token_bytes(32))


def test_rotation_writes_with_the_new_key_only_once_active_and_reads_both(
        tmp_path: Path) -> None:
    ring = vault.install(_ring(tmp_path, delay=60))
    other_process = _ring(tmp_path)  # another process of the deployment, same keyring file
    old_kid = ring.writing_key("phone").kid
    before = vault.seal("phone", "13812345678")

    (new,) = ring.rotate(("phone",))
    assert vault.kid_of(vault.seal("phone", "13900000000")) == old_kid  # not active yet
    other_process.refresh(force=True)
    assert new.kid in {k.kid for k in other_process.all_keys()}  # known before it writes

    clock.advance(timedelta(seconds=61))
    after = vault.seal("phone", "13900000000")
    assert vault.kid_of(after) == new.kid
    assert other_process.writing_key("phone").kid == new.kid
    assert vault.open_value("phone", before) == "13812345678"  # old values still open
    assert vault.needs_reencryption("phone", before)
    assert not vault.needs_reencryption("phone", after)
    # the index key does not rotate: every stored hash stays valid
    assert ring.index_key("phone") == other_process.index_key("phone")


def test_a_master_key_change_rewraps_the_keyring_without_touching_data(tmp_path: Path) -> None:
    old_master = secrets.token_bytes(32)
    vault.install(_ring(tmp_path, master=old_master, kid="m1"))
    sealed = vault.seal("app_secret", "s3cr3t")
    new_master = secrets.token_bytes(32)
    moving = _ring(tmp_path, master=new_master, kid="m2", previous=(("m1", old_master),))
    assert moving.rewrap() == 2 * len(vault.PURPOSES)
    assert moving.rewrap() == 0
    only_new = vault.install(_ring(tmp_path, master=new_master, kid="m2"))
    assert {k.kid for k in only_new.all_keys()} == {k.kid for k in moving.all_keys()}
    assert vault.open_value("app_secret", sealed) == "s3cr3t"
    with pytest.raises(vault.VaultError, match="m2"):
        _ring(tmp_path, master=old_master, kid="m1")  # the old master alone no longer opens it


def test_master_keys_are_parsed_from_base64_or_hex_and_must_be_long_enough() -> None:
    raw = secrets.token_bytes(32)
    assert vault.parse_master_key(base64.b64encode(raw).decode()) == raw
    assert vault.parse_master_key(raw.hex()) == raw
    with pytest.raises(ValueError, match="16 bytes"):
        vault.parse_master_key(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="base64"):
        vault.parse_master_key("not a key!")


# --- the sealed columns, on every database ---------------------------------------------------

async def _raw(db: Database, sql: str, **params: str) -> list[tuple[str | None, ...]]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


async def test_merchant_account_phone_and_app_secret_are_sealed_in_the_database(
        db: Database, ring: vault.Keyring) -> None:
    m = await merchants.apply_merchant(db, operator=OPERATOR, **application(
        settlement_account="6222021234567891234", contact_phone="13812345678"))
    assert (m.settlement_account, m.contact_phone) == ("6222021234567891234", "13812345678")
    ((account, phone, phone_hash),) = await _raw(
        db, "SELECT settlement_account, contact_phone, contact_phone_hash FROM merchants "
            "WHERE id = :id", id=m.id)
    assert account is not None
    assert phone is not None
    assert vault.is_sealed(account)
    assert "6222021234567891234" not in account
    assert vault.is_sealed(phone)
    assert "13812345678" not in phone
    assert phone_hash == vault.blind_index("phone", "13812345678")

    issued = await merchants.create_app_credential(db, merchant_id=m.id, operator=OPERATOR)
    ((secret,),) = await _raw(db, "SELECT secret FROM merchant_apps WHERE app_id = :a",
                              a=issued.app.app_id)
    assert secret is not None
    assert vault.is_sealed(secret)
    assert issued.secret not in secret
    credential = await merchants.get_app_credential(db, app_id=issued.app.app_id)
    assert credential.secret == issued.secret  # opened to verify HMAC signatures


async def test_payer_ids_are_sealed_with_a_searchable_hash(db: Database,
                                                           ring: vault.Keyring) -> None:
    from fulema.core.money import Money
    from fulema.payments.models import Order

    now = clock.now()
    async with db.transaction() as s:
        s.add(Order(id="ord_sealed1", merchant_id="mch_x", app_id="app_x", store_id=None,
                    out_trade_no="T1", request_hash="h", amount=Money(100), subject="s",
                    way_code="JSAPI", channel="wechat", status="CREATED",
                    payer_id="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", client_ip="127.0.0.1",
                    refunded_amount=Money(0), refund_pending_amount=Money(0), expire_at=now,
                    created_at=now, updated_at=now))
    ((raw, digest),) = await _raw(db, "SELECT payer_id, payer_id_hash FROM orders")
    assert raw is not None
    assert vault.is_sealed(raw)
    assert "oUpF8" not in raw
    assert digest == vault.blind_index("payer_id", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    async with db.transaction() as s:
        order = await s.get(Order, "ord_sealed1")
        assert order is not None
        assert order.payer_id == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
        order.payer_id = "2088102146225135"  # the channel tells us who paid: hash follows
    ((digest,),) = await _raw(db, "SELECT payer_id_hash FROM orders")
    assert digest == vault.blind_index("payer_id", "2088102146225135")


async def test_reencryption_moves_every_value_to_the_current_key_and_seals_plaintext(
        db: Database, tmp_path: Path) -> None:
    ring = vault.install(_ring(tmp_path))
    m = await merchants.apply_merchant(db, operator=OPERATOR, **application(
        contact_phone="13812345678"))
    other = await merchants.apply_merchant(db, operator=OPERATOR, **application())
    # a row written as plaintext before encryption existed (or by an old process)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE merchants SET contact_phone = '13700000000', "
                                "contact_phone_hash = NULL WHERE id = :id"), {"id": other.id})
    ring.rotate(vault.PURPOSES, activate_in_seconds=0)
    specs = vault_jobs.sealed_columns(Base.metadata)
    assert {(s.table, s.column) for s in specs} >= {
        ("merchants", "settlement_account"), ("merchants", "contact_phone"),
        ("merchant_apps", "secret"), ("orders", "payer_id")}
    phone = next(s for s in specs if s.column == "contact_phone")
    assert phone.index_column == "contact_phone_hash"
    async with db.engine.connect() as conn:
        assert await conn.run_sync(vault_jobs.count_outdated, phone) == (2, 2)
        for spec in specs:
            await conn.run_sync(vault_jobs.reencrypt, spec, batch=1, commit=True)
        assert await conn.run_sync(vault_jobs.count_outdated, phone) == (0, 2)
    rows = dict((r[0], r[1:]) for r in await _raw(
        db, "SELECT id, contact_phone, contact_phone_hash FROM merchants"))
    assert all(vault.kid_of(v[0] or "") == ring.writing_key("phone").kid for v in rows.values())
    assert rows[other.id][1] == vault.blind_index("phone", "13700000000")
    page = await merchants.list_merchants(db, contact_phone="13700000000")
    assert [x.id for x in page.data] == [other.id]
    assert (await merchants.get_merchant(db, merchant_id=m.id)).merchant.contact_phone == (
        "13812345678")


# --- files the platform writes are the owner's alone ------------------------------------------

async def test_the_sqlite_file_its_wal_and_shm_and_the_key_files_are_0600(
        sqlite_db: Database, tmp_path: Path) -> None:
    await merchants.apply_merchant(sqlite_db, operator=OPERATOR, **application())
    files = [tmp_path / "test.db", tmp_path / "test.db-wal", tmp_path / "test.db-shm"]
    assert all(f.exists() for f in files)
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {
        f.name: "0o600" for f in files}

    from fulema.core import gm
    from fulema.core.config import Settings

    settings = Settings(environment="test", data_dir=tmp_path / "data")
    ring = settings.keyring()
    gm.load_or_create_sm2_key(settings.data_dir / "keys" / "x_sm2.key")
    for path in (ring.path, settings.data_dir / "keys" / "x_sm2.key"):
        assert path is not None
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct((settings.data_dir / "keys").stat().st_mode & 0o777) == "0o700"


def test_an_existing_world_readable_database_file_is_narrowed(tmp_path: Path) -> None:
    from fulema.core.db import make_sqlite_file_private

    path = tmp_path / "old.db"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    make_sqlite_file_private(f"sqlite+aiosqlite:///{path}")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_fulema_keys_rotate_reencrypt_and_status_from_the_command_line(
        sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from fulema.cli import app as cli

    monkeypatch.setenv("FULEMA_DATABASE_URL", sqlite_db.url)
    monkeypatch.setenv("FULEMA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FULEMA_CRYPTO_ACTIVATION_DELAY_SECONDS", "0")
    runner = CliRunner()

    def run(*args: str) -> Any:  # the CLI runs its own event loop: off this test's loop
        return asyncio.to_thread(runner.invoke, cli, list(args))

    first = await run("keys", "status")
    assert first.exit_code == 0, first.output
    await merchants.apply_merchant(sqlite_db, operator=OPERATOR, **application())

    rotated = await run("keys", "rotate", "--purpose", "phone")
    assert rotated.exit_code == 0, rotated.output
    assert rotated.output.startswith("new key tel-")
    assert "merchants.contact_phone: 1 of 1 to re-encrypt" in (await run("keys", "status")).output
    done = await run("keys", "reencrypt", "--batch", "10")
    assert "merchants.contact_phone: 1 re-encrypted" in done.output
    assert "merchants.settlement_account: 0 re-encrypted" in done.output
    assert "merchants.contact_phone: 0 of 1 to re-encrypt" in (await run("keys", "status")).output
    bad = await run("keys", "rotate", "--purpose", "nope")
    assert bad.exit_code == 2
    assert "unknown purpose" in bad.output
