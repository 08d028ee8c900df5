"""Portal users' rules, pure: roles and what each may do, login names, and the lockout.

Kept apart from I/O so a unit test runs them without a database (ARCHITECTURE: a pure domain).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum

from fulema.core.errors import ErrorCode, FulemaError


class UserRole(StrEnum):
    OWNER = "owner"  # everything, including users, credentials and notification settings
    CASHIER = "cashier"  # takings, orders, plates, speakers: reads only, no refund
    ACCOUNTANT = "accountant"  # reads, reports, statements and refunds


class UserStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


class Permission(StrEnum):
    REFUND = "refund"
    EXPORT = "export"  # reports and statements
    MANAGE = "manage"  # users, API credentials, notification settings


_GRANTS: dict[UserRole, frozenset[Permission]] = {
    UserRole.OWNER: frozenset(Permission),
    UserRole.ACCOUNTANT: frozenset({Permission.REFUND, Permission.EXPORT}),
    UserRole.CASHIER: frozenset(),
}

MAX_FAILURES = 5  # wrong passwords in a row before the lockout
LOCKOUT = timedelta(minutes=15)
_LOGIN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,31}", re.ASCII)


def may(role: str, permission: Permission) -> bool:
    try:
        return permission in _GRANTS[UserRole(role)]
    except ValueError:
        return False


def require(role: str, permission: Permission) -> None:
    if not may(role, permission):
        raise FulemaError(ErrorCode.PORTAL_FORBIDDEN,
                          f"the {role} role may not {permission.value}")


def check_login_name(name: str) -> str:
    """3-32 characters: lower-case ASCII letters, digits, '.', '_', '-'; starts with a letter or
    digit. Lower-case only, so 'Alice' and 'alice' cannot be two people."""
    if not _LOGIN_NAME.fullmatch(name):
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "login_name: 3-32 of a-z 0-9 . _ - (starting with a letter or digit)")
    return name


def check_role(role: str) -> UserRole:
    try:
        return UserRole(role)
    except ValueError:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "role: owner | cashier | accountant") from None


def is_locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and locked_until > now


def after_failure(failed_attempts: int, now: datetime) -> tuple[int, datetime | None]:
    """The counter and lock after one more wrong password: the MAX_FAILURES-th locks for
    LOCKOUT and resets the counter (the next wrong password after the lock counts from 1)."""
    failed = failed_attempts + 1
    if failed >= MAX_FAILURES:
        return 0, now + LOCKOUT
    return failed, None
