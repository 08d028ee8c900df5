"""Portal users (merchant users): created by an operator (an owner, usually) or by a merchant's
owner (cashiers and accountants), logging in with a password, locked after repeated failures.

Every login attempt is recorded (`merchant_user_logins`), whatever its outcome; the lockout
itself is an audit record. A user's sessions are ended by the portal when the password changes
(`password_changed_at`), the user is disabled, or the merchant is no longer ACTIVE: the portal
checks `principal` on every request, so a freeze ends them at once without this context
reaching into the web layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.passwords import DUMMY_HASH, hash_password, needs_rehash, rehash, verify_password
from fulema.merchants.domain import MerchantStatus
from fulema.merchants.lifecycle import lock_open, record
from fulema.merchants.models import Merchant, MerchantUser, MerchantUserLogin
from fulema.merchants.schemas import MerchantUserOut
from fulema.merchants.user_rules import (
    UserRole,
    UserStatus,
    after_failure,
    check_login_name,
    check_role,
    is_locked,
)

_TAKEN = "用户名已被使用 · This login name is taken"


@dataclass(frozen=True)
class Principal:
    """Who a portal session belongs to, as of now (read on every portal request)."""

    user: MerchantUserOut
    merchant_name: str
    merchant_status: str
    password_changed_at: datetime

    @property
    def may_use_portal(self) -> bool:
        return (self.user.status == UserStatus.ACTIVE
                and self.merchant_status == MerchantStatus.ACTIVE.value)


@dataclass(frozen=True)
class LoginView:
    login_name: str
    outcome: str
    client_ip: str
    at: datetime


def _view(u: MerchantUser) -> MerchantUserOut:
    """The one view of a portal user: what the operator API answers and the portal shows."""
    return MerchantUserOut(user_id=u.id, merchant_id=u.merchant_id, login_name=u.login_name,
                           display_name=u.display_name, role=u.role, status=u.status,
                           locked_until=u.locked_until, last_login_at=u.last_login_at,
                           created_at=u.created_at)


async def create_user(db: Database, *, merchant_id: str, login_name: str, display_name: str,
                      role: str, password: str, actor: str) -> MerchantUserOut:
    """A new ACTIVE portal user of an open merchant (MERCHANT_USER_EXISTS if the name is taken
    by anyone, on any merchant: login names are global)."""
    name = check_login_name(login_name)
    user_role = check_role(role)
    display = display_name.strip()
    if not 1 <= len(display) <= 32:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "display_name: 1-32 characters")
    password_hash = hash_password(password)  # VALIDATION_ERROR for a weak one
    try:
        async with db.transaction() as s:
            m = await lock_open(s, merchant_id, "add a portal user")
            if await s.scalar(select(MerchantUser.id).where(MerchantUser.login_name == name)):
                raise FulemaError(ErrorCode.MERCHANT_USER_EXISTS, _TAKEN)
            now = clock.now()
            user = MerchantUser(id=new_id("mu"), merchant_id=m.id, login_name=name,
                                display_name=display, role=user_role.value,
                                password_hash=password_hash, status=UserStatus.ACTIVE.value,
                                failed_attempts=0, locked_until=None, password_changed_at=now,
                                last_login_at=None, created_by=actor, created_at=now,
                                updated_at=now)
            s.add(user)
            await s.flush()
            await record(s, m, "create_user", m.status, f"{name} {user_role.value}", actor)
            return _view(user)
    except IntegrityError:  # a concurrent create took the name between our look and insert
        raise FulemaError(ErrorCode.MERCHANT_USER_EXISTS, _TAKEN) from None


async def authenticate(db: Database, *, login_name: str, password: str,
                       client_ip: str) -> MerchantUserOut:
    """The user for this name and password, or LOGIN_FAILED / LOGIN_LOCKED. The attempt is
    recorded whatever the outcome (committed before the error is raised)."""
    name = login_name.strip().lower()[:32]
    now = clock.now()
    outcome, error, view = "SUCCESS", None, None
    async with db.transaction() as s:
        user = await s.scalar(select(MerchantUser).where(MerchantUser.login_name == name)
                              .with_for_update())
        if user is None:
            verify_password(DUMMY_HASH, password)  # the same cost as a wrong password
            outcome, error = "UNKNOWN_NAME", ErrorCode.LOGIN_FAILED
        elif is_locked(user.locked_until, now):
            outcome, error = "LOCKED", ErrorCode.LOGIN_LOCKED
        elif not verify_password(user.password_hash, password):
            user.failed_attempts, locked = after_failure(user.failed_attempts, now)
            user.updated_at = now
            outcome, error = "BAD_PASSWORD", ErrorCode.LOGIN_FAILED
            if locked is not None:
                user.locked_until = locked
                outcome, error = "LOCKED_OUT", ErrorCode.LOGIN_LOCKED
                await audit.record(s, actor=f"portal:{name}", action="merchant_user.locked",
                                   target_type="merchant_user", target_id=user.id,
                                   detail={"until": locked.isoformat()})
        else:
            merchant = await s.get(Merchant, user.merchant_id)
            if (user.status != UserStatus.ACTIVE
                    or merchant is None or merchant.status != MerchantStatus.ACTIVE.value):
                outcome, error = "DISABLED", ErrorCode.LOGIN_FAILED
            else:
                user.failed_attempts, user.locked_until = 0, None
                user.last_login_at = user.updated_at = now
                if needs_rehash(user.password_hash):
                    user.password_hash = rehash(password)
                view = _view(user)
        s.add(MerchantUserLogin(id=new_id("mul"), login_name=name,
                                user_id=user.id if user else None,
                                merchant_id=user.merchant_id if user else None,
                                outcome=outcome, client_ip=client_ip[:64], at=now))
    if error is ErrorCode.LOGIN_LOCKED:
        raise FulemaError(error, "登录失败次数过多，账号已锁定 15 分钟 · Too many wrong passwords: "
                                 "locked for 15 minutes")
    if error is not None or view is None:
        raise FulemaError(ErrorCode.LOGIN_FAILED, "用户名或密码错误 · Wrong login name or password")
    return view


async def principal(db: Database, *, user_id: str) -> Principal | None:
    async with db.transaction() as s:
        row = (await s.execute(select(MerchantUser, Merchant)
                               .join(Merchant, Merchant.id == MerchantUser.merchant_id)
                               .where(MerchantUser.id == user_id))).first()
    if row is None:
        return None
    user, merchant = row
    return Principal(user=_view(user), merchant_name=merchant.name,
                     merchant_status=merchant.status,
                     password_changed_at=user.password_changed_at)


async def list_users(db: Database, *, merchant_id: str) -> list[MerchantUserOut]:
    async with db.transaction() as s:
        rows = await s.scalars(select(MerchantUser).where(MerchantUser.merchant_id == merchant_id)
                               .order_by(MerchantUser.created_at, MerchantUser.id))
        return [_view(u) for u in rows]


async def change_password(db: Database, *, user_id: str, old_password: str,
                          new_password: str) -> None:
    """The user's own change: the old password first (LOGIN_FAILED otherwise). Ends every
    session started before now (the portal compares `password_changed_at`)."""
    new_hash = hash_password(new_password)
    async with db.transaction() as s:
        user = await s.get(MerchantUser, user_id, with_for_update=True)
        if user is None:
            raise FulemaError(ErrorCode.MERCHANT_USER_NOT_FOUND)
        if not verify_password(user.password_hash, old_password):
            raise FulemaError(ErrorCode.LOGIN_FAILED, "原密码错误 · The current password is wrong")
        now = clock.now()
        user.password_hash, user.password_changed_at, user.updated_at = new_hash, now, now
        await audit.record(s, actor=f"portal:{user.login_name}",
                           action="merchant_user.password_changed", target_type="merchant_user",
                           target_id=user.id)


async def set_status(db: Database, *, merchant_id: str, user_id: str, status: str,
                     actor: str) -> MerchantUserOut:
    """Disable or re-enable a user of this merchant (MERCHANT_USER_NOT_FOUND for another's)."""
    try:
        new = UserStatus(status)
    except ValueError:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "status: ACTIVE | DISABLED") from None
    async with db.transaction() as s:
        m = await lock_open(s, merchant_id, "change a portal user")
        user = await s.get(MerchantUser, user_id)
        if user is None or user.merchant_id != m.id:
            raise FulemaError(ErrorCode.MERCHANT_USER_NOT_FOUND)
        if user.status != new.value:
            user.status, user.updated_at = new.value, clock.now()
            await record(s, m, "set_user_status", m.status, f"{user.login_name} {new.value}",
                         actor)
        return _view(user)


async def recent_logins(db: Database, *, user_id: str, limit: int = 10) -> list[LoginView]:
    async with db.transaction() as s:
        rows = await s.scalars(select(MerchantUserLogin)
                               .where(MerchantUserLogin.user_id == user_id)
                               .order_by(MerchantUserLogin.at.desc(), MerchantUserLogin.id.desc())
                               .limit(limit))
        return [LoginView(login_name=r.login_name, outcome=r.outcome, client_ip=r.client_ip,
                          at=r.at) for r in rows]


OWNER_CREATABLE = (UserRole.CASHIER.value, UserRole.ACCOUNTANT.value)
