"""The bank sets the argon2 cost of console passwords (FULEMA_PASSWORD_HASH_*): a raised cost
reaches each operator's stored hash at the next good login, and never through a wrong one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from fulema.core import passwords as core_passwords
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.operators import passwords
from fulema.operators.models import Operator
from tests.web.console_helpers import PASSWORD, operator


@pytest.fixture(autouse=True)
def _restore_cost(settings: Settings) -> Iterator[None]:
    yield
    core_passwords.configure(settings)


async def _hash_of(db: Database, name: str) -> str:
    async with db.transaction() as s:
        found = await s.scalar(select(Operator.password_hash).where(Operator.name == name))
    assert found is not None
    return found


async def test_a_raised_cost_rehashes_an_operator_at_the_next_good_login(
        db: Database, settings: Settings) -> None:
    core_passwords.configure(settings)  # 1 pass, 8 MiB (tests/conftest.py)
    await operator(db, "li.rev", "reviewer")
    before = await _hash_of(db, "li.rev")
    assert "m=8192,t=1" in before

    core_passwords.configure(settings.model_copy(update={"password_hash_time_cost": 2}))
    wrong = await passwords.login(db, name="li.rev", password="not-the-password-1")
    assert wrong.outcome.name == "BAD_CREDENTIALS"
    assert await _hash_of(db, "li.rev") == before

    good = await passwords.login(db, name="li.rev", password=PASSWORD)
    assert good.outcome.name == "OK"
    after = await _hash_of(db, "li.rev")
    assert "m=8192,t=2" in after
    again = await passwords.login(db, name="li.rev", password=PASSWORD)
    assert again.outcome.name == "OK"
    assert await _hash_of(db, "li.rev") == after


def test_the_cost_is_bounded() -> None:
    with pytest.raises(ValueError, match="password_hash_memory_kib"):
        Settings(password_hash_memory_kib=1024)
    with pytest.raises(ValueError, match="password_hash_time_cost"):
        Settings(password_hash_time_cost=0)
