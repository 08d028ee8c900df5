"""Page sessions and password hashes, as a login would use them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import FulemaError
from fulema.core.passwords import DUMMY_HASH, hash_password, verify_password
from fulema.web import sessions


def test_a_password_verifies_only_against_its_own_hash() -> None:
    stored = hash_password("correct-horse-42")
    assert stored.startswith("$argon2id$")
    assert "correct-horse-42" not in stored
    assert verify_password(stored, "correct-horse-42")
    assert not verify_password(stored, "correct-horse-43")
    assert not verify_password("not a hash", "correct-horse-42")
    assert not verify_password(DUMMY_HASH, "correct-horse-42")


@pytest.mark.parametrize("weak", ["short1", "onlyletterslong", "1234567890123", ""])
def test_a_weak_password_is_refused(weak: str) -> None:
    with pytest.raises(FulemaError) as caught:
        hash_password(weak)
    assert caught.value.code == "VALIDATION_ERROR"


async def test_a_session_lives_in_its_realm_until_it_ends(db: Database) -> None:
    cookie, session = await sessions.start(db, realm="portal", principal_id="mu_1")
    loaded = await sessions.load(db, realm="portal", cookie=cookie)
    assert loaded is not None
    assert loaded.principal_id == "mu_1"
    assert await sessions.load(db, realm="console", cookie=cookie) is None  # another realm
    assert await sessions.load(db, realm="portal", cookie=cookie + "x") is None
    assert await sessions.load(db, realm="portal", cookie="é" * 10) is None
    assert sessions.csrf_ok(session, session.csrf_token)
    assert not sessions.csrf_ok(session, "forged")
    assert not sessions.csrf_ok(session, None)
    await sessions.end(db, realm="portal", cookie=cookie)
    assert await sessions.load(db, realm="portal", cookie=cookie) is None


async def test_an_idle_session_expires_and_end_all_ends_every_one(db: Database) -> None:
    idle, _ = await sessions.start(db, realm="console", principal_id="op_0")
    clock.advance(sessions.IDLE + timedelta(seconds=1))
    assert await sessions.load(db, realm="console", cookie=idle) is None
    first, _ = await sessions.start(db, realm="console", principal_id="op_1")
    second, _ = await sessions.start(db, realm="console", principal_id="op_1")
    other, _ = await sessions.start(db, realm="console", principal_id="op_2")
    assert await sessions.end_all(db, realm="console", principal_id="op_1") == 2
    assert await sessions.load(db, realm="console", cookie=first) is None
    assert await sessions.load(db, realm="console", cookie=second) is None
    assert await sessions.load(db, realm="console", cookie=other) is not None
