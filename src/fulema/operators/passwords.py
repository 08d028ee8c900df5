"""Operators' console passwords: set (by an admin or the CLI, audited), check at login with a
lockout, and the development-only demo operator.

Why a lockout and not only a slow hash: argon2id makes a stolen table expensive, but an online
guesser needs no table. After `MAX_FAILURES` wrong passwords in a row the operator cannot log
in for `LOCKOUT` (even with the right password), and the lock is an audit record, so the bank
sees someone trying. An unknown name costs the same argon2 verification (`DUMMY_HASH`) and
gets the same answer as a wrong password, so the page does not tell names apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.passwords import (
    DUMMY_HASH,
    check_strength,
    hash_password,
    needs_rehash,
    rehash,
    verify_password,
)
from fulema.core.web import OperatorIdentity
from fulema.operators import domain, service
from fulema.operators.domain import OperatorStatus
from fulema.operators.models import Operator

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)

# The demo operator (development only; docs/console.md): every role, a published password.
DEMO_OPERATOR_NAME = "demo.admin"
DEMO_OPERATOR_PASSWORD = "fulema-demo-2026"  # noqa: S105 - published, refused outside development


class LoginOutcome(StrEnum):
    OK = "OK"
    BAD_CREDENTIALS = "BAD_CREDENTIALS"  # unknown name, wrong password, no password, disabled
    LOCKED = "LOCKED"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    operator_id: str | None = None
    name: str | None = None


async def set_password(db: Database, *, name: str, password: str, actor: str) -> None:
    """Sets (or replaces) an operator's console password and clears a lockout. Every console
    session that began before this moment stops working (`identity` refuses it): a changed
    password must not leave old sessions open. The audit record says who set it, never the
    password or its hash."""
    check_strength(password)
    digest = hash_password(password)
    now = clock.now()
    async with db.transaction() as s:
        op = await s.scalar(select(Operator).where(Operator.name == name).with_for_update())
        if op is None:
            raise FulemaError(ErrorCode.OPERATOR_NOT_FOUND, f"no operator {name}")
        op.password_hash, op.password_changed_at = digest, now
        op.failed_logins, op.locked_until, op.updated_at = 0, None, now
        await audit.record(s, actor=actor, action="operator.set_password",
                           target_type="operator", target_id=name, detail={})


async def login(db: Database, *, name: str, password: str) -> LoginResult:
    """Checks a console login. Every failure of a known operator counts towards the lockout;
    the one that locks is audited (`operator.locked`), as is every success (`operator.login`)."""
    now = clock.now()
    async with db.transaction() as s:
        op = await s.scalar(select(Operator).where(Operator.name == name[:40]).with_for_update())
        if op is None or op.password_hash is None:
            verify_password(DUMMY_HASH, password)  # the same time as a wrong password
            return LoginResult(LoginOutcome.BAD_CREDENTIALS)
        if op.locked_until is not None and op.locked_until > now:
            verify_password(DUMMY_HASH, password)
            return LoginResult(LoginOutcome.LOCKED)
        good = verify_password(op.password_hash, password)
        if not good or op.status != OperatorStatus.ACTIVE.value:
            if not good:
                op.failed_logins += 1
                if op.failed_logins >= MAX_FAILURES:
                    op.failed_logins, op.locked_until = 0, now + LOCKOUT
                    await audit.record(s, actor=op.name, action="operator.locked",
                                       target_type="operator", target_id=op.name,
                                       detail={"until": op.locked_until.isoformat()})
                    return LoginResult(LoginOutcome.LOCKED)
            return LoginResult(LoginOutcome.BAD_CREDENTIALS)
        op.failed_logins, op.locked_until = 0, None
        if needs_rehash(op.password_hash):
            op.password_hash = rehash(password)
        await audit.record(s, actor=op.name, action="operator.login", target_type="operator",
                           target_id=op.name, detail={"via": "console"})
        return LoginResult(LoginOutcome.OK, operator_id=op.id, name=op.name)


async def identity(db: Database, *, operator_id: str,
                   session_started: datetime) -> OperatorIdentity | None:
    """The ACTIVE operator behind a console session, with its roles as they are now (a role
    taken away applies on the next page), or None: unknown, disabled, or its password changed
    after the session began. The console asks on every page, so this is what ends sessions;
    operators know nothing of the web's session store."""
    async with db.transaction() as s:
        op = await s.get(Operator, operator_id)
    if op is None or op.status != OperatorStatus.ACTIVE.value:
        return None
    if op.password_changed_at is not None and op.password_changed_at > session_started:
        return None
    return OperatorIdentity(name=op.name, roles=domain.decode_roles(op.roles))


async def seed_demo_operator(db: Database, *, settings: Settings) -> None:
    """`demo.admin` with every role and the published password, created once. Refused outside
    development, like the demo merchant."""
    if not settings.is_development:
        raise RuntimeError("the demo operator's password is public: set FULEMA_SEED_DEMO=false "
                           "outside development")
    async with db.transaction() as s:
        exists = await s.scalar(select(Operator.id).where(Operator.name == DEMO_OPERATOR_NAME))
    if exists:
        return
    try:
        await service.create_operator(db, name=DEMO_OPERATOR_NAME, display_name="演示管理员 Demo",
                                      roles=list(domain.ROLES), actor="demo-seed")
    except FulemaError as exc:  # another process seeded it between our look and our write
        if exc.code is not ErrorCode.OPERATOR_EXISTS:
            raise
        return
    await set_password(db, name=DEMO_OPERATOR_NAME, password=DEMO_OPERATOR_PASSWORD,
                       actor="demo-seed")
