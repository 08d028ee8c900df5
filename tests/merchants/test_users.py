"""Portal users in the merchants context: the pure rules, the service on every database, the
operator route and the `fulema merchant-user create` command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from typer.testing import CliRunner

from fulema.app import create_app
from fulema.cli import app as cli_app
from fulema.core import passwords
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import FulemaError
from fulema.merchants import user_rules, users
from fulema.merchants.domain import MerchantStatus
from fulema.merchants.models import MerchantUser
from fulema.merchants.user_rules import Permission, may
from tests.merchants.factories import OPERATOR, merchant_in

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def test_each_role_may_do_only_its_own_things() -> None:
    assert all(may("owner", p) for p in Permission)
    assert may("accountant", Permission.REFUND)
    assert may("accountant", Permission.EXPORT)
    assert not may("accountant", Permission.MANAGE)
    assert not any(may("cashier", p) for p in Permission)
    assert not may("root", Permission.REFUND)


def test_the_fifth_failure_locks_for_fifteen_minutes_and_resets_the_count() -> None:
    count, locked = 0, None
    for _ in range(4):
        count, locked = user_rules.after_failure(count, NOW)
        assert locked is None
    count, locked = user_rules.after_failure(count, NOW)
    assert (count, locked) == (0, NOW + timedelta(minutes=15))
    assert user_rules.is_locked(locked, NOW + timedelta(minutes=14, seconds=59))
    assert not user_rules.is_locked(locked, NOW + timedelta(minutes=15))


@pytest.mark.parametrize("name", ["ab", "Alice", "-lead", "a b", "名字名字", "x" * 33])
def test_a_malformed_login_name_is_refused(name: str) -> None:
    with pytest.raises(FulemaError) as caught:
        user_rules.check_login_name(name)
    assert caught.value.code == "VALIDATION_ERROR"


async def test_a_login_name_is_unique_across_merchants(db: Database) -> None:
    a = await merchant_in(db, MerchantStatus.ACTIVE)
    b = await merchant_in(db, MerchantStatus.ACTIVE)
    made = await users.create_user(db, merchant_id=a.id, login_name="shop-owner",
                                   display_name="王", role="owner", password="owner-pass-01",
                                   actor=OPERATOR)
    assert made.status == "ACTIVE"
    with pytest.raises(FulemaError) as caught:
        await users.create_user(db, merchant_id=b.id, login_name="shop-owner",
                                display_name="李", role="owner", password="owner-pass-01",
                                actor=OPERATOR)
    assert caught.value.code == "MERCHANT_USER_EXISTS"
    for bad in ({"role": "admin"}, {"password": "short"}, {"display_name": " "}):
        fields = {"login_name": "other-user", "display_name": "x", "role": "cashier",
                  "password": "owner-pass-01", **bad}
        with pytest.raises(FulemaError) as caught:
            await users.create_user(db, merchant_id=a.id, actor=OPERATOR, **fields)
        assert caught.value.code == "VALIDATION_ERROR"
    assert [u.login_name for u in await users.list_users(db, merchant_id=a.id)] == ["shop-owner"]
    closed = await merchant_in(db, MerchantStatus.CLOSED)
    with pytest.raises(FulemaError):
        await users.create_user(db, merchant_id=closed.id, login_name="late-user",
                                display_name="x", role="owner", password="owner-pass-01",
                                actor=OPERATOR)


async def test_concurrent_wrong_passwords_count_every_one(db: Database) -> None:
    m = await merchant_in(db, MerchantStatus.ACTIVE)
    await users.create_user(db, merchant_id=m.id, login_name="racer", display_name="r",
                            role="cashier", password="right-pass-01", actor=OPERATOR)

    async def wrong() -> str:
        try:
            await users.authenticate(db, login_name="racer", password="wrong-pass-01",
                                     client_ip="127.0.0.1")
        except FulemaError as exc:
            return exc.code.value
        return "OK"

    outcomes = await asyncio.gather(*(wrong() for _ in range(5)))
    assert sorted(outcomes) == ["LOGIN_FAILED"] * 4 + ["LOGIN_LOCKED"]
    with pytest.raises(FulemaError) as caught:
        await users.authenticate(db, login_name="racer", password="right-pass-01",
                                 client_ip="127.0.0.1")
    assert caught.value.code == "LOGIN_LOCKED"


async def _hash_of(db: Database, login_name: str) -> str:
    async with db.transaction() as s:
        found = await s.scalar(select(MerchantUser.password_hash)
                               .where(MerchantUser.login_name == login_name))
    assert found is not None
    return found


async def test_a_login_after_the_bank_changes_the_cost_rehashes_at_the_new_cost(
        db: Database, settings: Settings) -> None:
    m = await merchant_in(db, MerchantStatus.ACTIVE)
    await users.create_user(db, merchant_id=m.id, login_name="old-hash", display_name="o",
                            role="cashier", password="kept-pass-01", actor=OPERATOR)
    before = await _hash_of(db, "old-hash")
    assert "m=8,t=1" in before
    passwords.configure(settings.model_copy(update={"password_hash_time_cost": 2,
                                                    "password_hash_memory_kib": 8192}))
    with pytest.raises(FulemaError):
        await users.authenticate(db, login_name="old-hash", password="wrong-pass-01",
                                 client_ip="127.0.0.1")
    assert await _hash_of(db, "old-hash") == before  # a wrong password changes nothing
    await users.authenticate(db, login_name="old-hash", password="kept-pass-01",
                             client_ip="127.0.0.1")
    after = await _hash_of(db, "old-hash")
    assert "m=8192,t=2" in after
    await users.authenticate(db, login_name="old-hash", password="kept-pass-01",
                             client_ip="127.0.0.1")  # still the same password
    assert await _hash_of(db, "old-hash") == after  # at today's cost: not made again


@pytest.fixture
async def ops(sqlite_db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"mount_sandbox": False, "enabled_channels": []}),
                     db=sqlite_db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        yield client


async def test_an_operator_creates_a_merchants_owner(ops: httpx.AsyncClient,
                                                     sqlite_db: Database) -> None:
    m = await merchant_in(sqlite_db, MerchantStatus.ACTIVE)
    body = {"login_name": "api-owner", "display_name": "王", "role": "owner",
            "password": "owner-pass-01"}
    anonymous = await ops.post(f"/ops/v1/merchants/{m.id}/users", json=body)
    assert anonymous.status_code == 401
    auth = {"Authorization": "Bearer test-operator"}
    made = await ops.post(f"/ops/v1/merchants/{m.id}/users", json=body, headers=auth)
    assert made.status_code == 201, made.text
    assert "password" not in made.text
    assert "hash" not in made.text
    again = await ops.post(f"/ops/v1/merchants/{m.id}/users", json=body, headers=auth)
    assert again.json()["code"] == "MERCHANT_USER_EXISTS"
    listed = await ops.get(f"/ops/v1/merchants/{m.id}/users", headers=auth)
    assert [u["login_name"] for u in listed.json()["data"]] == ["api-owner"]
    events = (await ops.get(f"/ops/v1/merchants/{m.id}/events", headers=auth)).json()["data"]
    assert events[-1]["action"] == "create_user"


def test_the_cli_creates_a_portal_user(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = {"FULEMA_DATABASE_URL": url, "FULEMA_NEW_PASSWORD": "cli-owner-pass-1"}
    runner = CliRunner()
    assert runner.invoke(cli_app, ["migrate"], env=env).exit_code == 0

    async def merchant() -> str:
        db = Database(url)
        try:
            return (await merchant_in(db, MerchantStatus.ACTIVE)).id
        finally:
            await db.dispose()

    mid = asyncio.run(merchant())
    made = runner.invoke(cli_app, ["merchant-user", "create", mid, "cli-owner"], env=env)
    assert made.exit_code == 0, made.output
    assert "cli-owner owner" in made.output
    again = runner.invoke(cli_app, ["merchant-user", "create", mid, "cli-owner"], env=env)
    assert again.exit_code == 1
    assert "MERCHANT_USER_EXISTS" in again.output
